package export

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
)

// Exporter builds bundles from a governance.Store, seals (hashes and
// signs) them, renders them as PDF and records every export in the
// store's export log. It is safe for concurrent use.
type Exporter struct {
	store    governance.Store
	clock    governance.Clock
	signers  []*Signer
	renderer *Renderer
}

// Option configures an Exporter.
type Option func(*Exporter) error

// New returns an Exporter over store. Defaults: the system clock for
// created_at, no signing key (envelopes carry no signature and Verify
// reports ErrUnsigned; VerifyUnsigned still checks them), and a Renderer
// with the embedded DejaVu Sans fonts and no CJK fallback font.
func New(store governance.Store, opts ...Option) (*Exporter, error) {
	if store == nil {
		return nil, errors.New("export: New: nil store")
	}
	e := &Exporter{store: store, clock: systemClock{}}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("export: New: nil Option")
		}
		if err := o(e); err != nil {
			return nil, fmt.Errorf("export: New: %w", err)
		}
	}
	if e.renderer == nil {
		r, err := NewRenderer()
		if err != nil {
			return nil, fmt.Errorf("export: New: %w", err)
		}
		e.renderer = r
	}
	return e, nil
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// WithClock sets the clock that gives each bundle its created_at (default:
// the system clock). Bundles built at the same instant from the same
// records by the same person for the same reason are identical.
func WithClock(c governance.Clock) Option {
	return func(e *Exporter) error {
		if c == nil {
			return errors.New("WithClock: nil clock")
		}
		e.clock = c
		return nil
	}
}

// WithSigner signs every sealed bundle with key (an ed25519 private key,
// as GenerateKey makes and ReadPrivateKeyFile reads). Given more than
// once, each key adds a signature, in the order given.
func WithSigner(key ed25519.PrivateKey) Option {
	return func(e *Exporter) error {
		s, err := NewSigner(key)
		if err != nil {
			return fmt.Errorf("WithSigner: %w", err)
		}
		e.signers = append(e.signers, s)
		return nil
	}
}

// WithRenderer sets the PDF renderer (default: NewRenderer()). Use it to
// add a fallback font for scripts DejaVu Sans does not cover, such as CJK.
func WithRenderer(r *Renderer) Option {
	return func(e *Exporter) error {
		if r == nil {
			return errors.New("WithRenderer: nil renderer")
		}
		e.renderer = r
		return nil
	}
}

// Store returns the exporter's store.
func (e *Exporter) Store() governance.Store { return e.store }

// Renderer returns the exporter's PDF renderer.
func (e *Exporter) Renderer() *Renderer { return e.renderer }

// Request says what to export, for whom, and why.
type Request struct {
	// TenantID is required: only this tenant's runs and incidents are
	// read; another tenant's ids are not found.
	TenantID string
	// IncidentID is the incident to export. An evidence bundle may name
	// RunID instead, for any run with or without an incident; if both are
	// given they must agree.
	IncidentID string
	RunID      string
	// ExportedBy says who the bundle is handed to or who asked for it
	// (default "system"); Reason why. Both are part of the bundle.
	ExportedBy string
	Reason     string
	// IncludeContent adds each step's stored input, output and metadata
	// to evidence and SOC2 bundles (bound by the content hash, which
	// Verify checks). Off by default: content may hold personal data.
	IncludeContent bool

	// From and To are the SOC2 compliance period [From, To). When both
	// are zero it is the calendar quarter (UTC) that contains the
	// incident. The incident must lie within the period.
	From, To time.Time
	// AuditorNotes are free text for the SOC2 bundle.
	AuditorNotes string
}

func (req *Request) validate(t BundleType) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
	}
	switch {
	case !t.Valid():
		return bad("bundle type %q", t)
	case req.TenantID == "":
		return bad("no tenant")
	case req.IncidentID == "" && req.RunID == "":
		return bad("no incident or run id")
	case t != TypeEvidence && req.IncidentID == "":
		return bad("a %s bundle is built for an incident; no incident id given", t)
	case t == TypeSOC2 && req.From.IsZero() != req.To.IsZero():
		return bad("compliance period needs both from and to, or neither")
	case t == TypeSOC2 && !req.From.IsZero() && !req.From.Before(req.To):
		return bad("compliance period start %s is not before its end %s", rfc3339(req.From), rfc3339(req.To))
	}
	return nil
}

func exportedBy(req *Request) string {
	if req.ExportedBy == "" {
		return "system"
	}
	return req.ExportedBy
}

// Build builds a bundle of type t (see Evidence, SOC2, ExecutiveDebrief).
func (e *Exporter) Build(ctx context.Context, t BundleType, req Request) (Bundle, error) {
	switch t {
	case TypeEvidence:
		return e.Evidence(ctx, req)
	case TypeSOC2:
		return e.SOC2(ctx, req)
	case TypeExecutiveDebrief:
		return e.ExecutiveDebrief(ctx, req)
	}
	return nil, fmt.Errorf("%w: bundle type %q", ErrInvalidRequest, t)
}

// Artifact is one export as handed out: the sealed bundle and the bytes
// in the requested format, with a content type and file name for HTTP.
type Artifact struct {
	Sealed      *Sealed
	Format      Format
	Data        []byte
	ContentType string // application/json or application/pdf
	Filename    string // e.g. evidence-INC-0001-BND-0123456789abcdef.pdf
	// Record is the entry written to the store's export log.
	Record governance.ExportRecord
}

// Export builds the bundle, seals it with the exporter's keys, renders it
// in format f (the JSON envelope or a PDF) and records the export in the
// store's export log (who, when, bundle id and hash, key id). The same
// bundle handed out again in the same format is recorded once.
func (e *Exporter) Export(ctx context.Context, t BundleType, req Request, f Format) (*Artifact, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, err
	}
	b, err := e.Build(ctx, t, req)
	if err != nil {
		return nil, err
	}
	s, err := e.Seal(b)
	if err != nil {
		return nil, err
	}
	a := &Artifact{Sealed: s, Format: f}
	switch f {
	case FormatJSON:
		a.Data, a.ContentType = s.Envelope(), "application/json"
	case FormatPDF:
		if a.Data, err = e.renderer.Render(s); err != nil {
			return nil, err
		}
		a.ContentType = "application/pdf"
	}
	a.Filename = Filename(s, f)
	h := b.header()
	a.Record = governance.ExportRecord{
		TenantID: h.TenantID, BundleID: h.BundleID, BundleType: string(h.BundleType), Format: string(f),
		BundleHash: s.Hash, RunID: h.RunID, IncidentID: h.IncidentID, KeyID: s.KeyID(),
		ExportedBy: h.ExportedBy, Reason: h.ExportReason, CreatedAt: h.CreatedAt,
	}
	if err := e.store.RecordExport(ctx, a.Record); err != nil && !errors.Is(err, governance.ErrExportExists) {
		return nil, fmt.Errorf("export: recording export %s of %s: %w", h.BundleID, h.TenantID, err)
	}
	return a, nil
}

// Seal returns the bundle's canonical JSON, its SHA-256 and a signature by
// each of the exporter's keys.
func (e *Exporter) Seal(b Bundle) (*Sealed, error) {
	return Seal(b, e.signers...)
}

// Filename is the file name an artifact is handed out under:
// "<type>-<incident or run id>-<bundle id>.<format>", with any character
// other than letters, digits, '.', '_' and '-' replaced by '_'.
func Filename(s *Sealed, f Format) string {
	h := s.Bundle.header()
	subject := h.IncidentID
	if subject == "" {
		subject = h.RunID
	}
	name := fmt.Sprintf("%s-%s-%s.%s", h.BundleType, subject, h.BundleID, f)
	out := []byte(name)
	for i, c := range out {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-'
		if !ok {
			out[i] = '_'
		}
	}
	return string(out)
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
