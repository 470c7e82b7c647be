package export

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/words"
	"github.com/stopline/stopline/governance"
	"golang.org/x/mod/sumdb/note"
)

// Exporter builds bundles from a governance.Store, seals (hashes and
// signs) them, renders them as PDF with its Renderer and records every
// export in the store's export log. It is safe for concurrent use.
type Exporter struct {
	store    governance.Store
	clock    governance.Clock
	signers  []crypto.Signer
	keyIDs   []string
	renderer Renderer
	// logSigner signs the tenant log heads bundles carry (tenantlog.go).
	logSigner note.Signer
}

// Renderer renders a sealed bundle for people: package export/pdf's
// *pdf.Renderer is one. Render writes the whole document to w or returns
// an error; it must be safe for concurrent use, and should render the
// same bundle to the same bytes.
type Renderer interface {
	Render(w io.Writer, s *bundle.Sealed) error
}

// Option configures an Exporter.
type Option func(*Exporter) error

// New returns an Exporter over store. Defaults: the system clock for
// created_at; no signing key (bundles carry no signature: bundle.Verify
// reports bundle.ErrUnsigned, bundle.VerifyUnsigned still checks them);
// no PDF renderer (FormatPDF fails with ErrNoRenderer: pass
// WithRenderer, so that a program that never renders PDFs does not carry
// the PDF library and its fonts).
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

// WithSigner signs every sealed bundle with key: an ed25519 private key
// (ed25519.PrivateKey, as bundle.GenerateKey makes and
// bundle.ReadPrivateKeyFile reads) or any crypto.Signer whose public key
// is ed25519, such as a key held in a KMS. Given more than once, each key
// adds a signature, in the order given.
func WithSigner(key crypto.Signer) Option {
	return func(e *Exporter) error {
		if key == nil {
			return errors.New("WithSigner: nil key")
		}
		pub, ok := key.Public().(ed25519.PublicKey)
		if !ok || len(pub) != ed25519.PublicKeySize {
			return fmt.Errorf("WithSigner: a %T key, want ed25519", key.Public())
		}
		e.signers, e.keyIDs = append(e.signers, key), append(e.keyIDs, bundle.KeyID(pub))
		return nil
	}
}

// WithRenderer renders PDFs with r (by default there is none, and
// FormatPDF fails with ErrNoRenderer). pdf.New() returns the stopline
// renderer.
func WithRenderer(r Renderer) Option {
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

// Clock returns the exporter's clock.
func (e *Exporter) Clock() governance.Clock { return e.clock }

// Format is how an export is handed out.
type Format string

// Formats.
const (
	FormatJSON Format = "json" // the signed envelope (see bundle.Sealed.WriteTo)
	FormatPDF  Format = "pdf"  // a rendering of the bundle for people
)

// ParseFormat parses "json" or "pdf".
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatJSON, FormatPDF:
		return f, nil
	}
	return "", fmt.Errorf("%w: format %q (want json or pdf)", ErrInvalidRequest, s)
}

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
	// bundle.Verify checks). Off by default: content may hold personal
	// data.
	IncludeContent bool

	// From and To are the SOC2 compliance period [From, To). When both
	// are zero it is the calendar quarter (UTC) that contains the
	// incident. The incident must lie within the period.
	From, To time.Time
	// AuditorNotes are free text for the SOC2 bundle.
	AuditorNotes string
}

func (req *Request) validate(t bundle.Type) error {
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
	case t != bundle.TypeEvidence && req.IncidentID == "":
		return bad("a %s bundle is built for an incident; no incident id given", t)
	case t == bundle.TypeSOC2 && req.From.IsZero() != req.To.IsZero():
		return bad("compliance period needs both from and to, or neither")
	case t == bundle.TypeSOC2 && !req.From.IsZero() && !req.From.Before(req.To):
		return bad("compliance period start %s is not before its end %s", words.RFC3339(req.From), words.RFC3339(req.To))
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
func (e *Exporter) Build(ctx context.Context, t bundle.Type, req Request) (bundle.Bundle, error) {
	switch t {
	case bundle.TypeEvidence:
		return e.Evidence(ctx, req)
	case bundle.TypeSOC2:
		return e.SOC2(ctx, req)
	case bundle.TypeExecutiveDebrief:
		return e.ExecutiveDebrief(ctx, req)
	}
	return nil, fmt.Errorf("%w: bundle type %q", ErrInvalidRequest, t)
}

// Artifact is one export as handed out: the sealed bundle, the format,
// a content type and file name for HTTP, and the export log's entry.
// WriteTo writes its bytes.
type Artifact struct {
	Sealed      *bundle.Sealed
	Format      Format
	ContentType string // application/json or application/pdf
	Filename    string // e.g. evidence-INC-0001-BND-0123456789abcdef.pdf
	// Record is the entry written to the store's export log.
	Record governance.ExportRecord

	data []byte
}

// WriteTo writes the artifact's bytes (the JSON envelope or the PDF) to
// w. It may be called more than once and writes the same bytes each
// time.
func (a *Artifact) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(a.data)
	return int64(n), err
}

// Export builds the bundle, seals it with the exporter's keys, renders it
// in format f (the JSON envelope or a PDF) and records the export in the
// store's export log (who, when, bundle id and hash, key id). The same
// bundle handed out again in the same format is recorded once.
func (e *Exporter) Export(ctx context.Context, t bundle.Type, req Request, f Format) (*Artifact, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, err
	}
	if f == FormatPDF && e.renderer == nil {
		return nil, ErrNoRenderer
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
	var buf bytes.Buffer
	switch f {
	case FormatJSON:
		_, err = s.WriteTo(&buf)
		a.ContentType = "application/json"
	case FormatPDF:
		err = e.renderer.Render(&buf, s)
		a.ContentType = "application/pdf"
	}
	if err != nil {
		return nil, err
	}
	a.data = buf.Bytes()
	a.Filename = Filename(s, f)
	h := s.Header()
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

// Seal returns the bundle sealed by bundle.Seal with the exporter's keys.
func (e *Exporter) Seal(b bundle.Bundle) (*bundle.Sealed, error) {
	return bundle.Seal(b, e.signers...)
}

// Filename is the file name an artifact is handed out under:
// "<type>-<incident or run id>-<bundle id>.<format>", with any character
// other than letters, digits, '.', '_' and '-' replaced by '_'.
func Filename(s *bundle.Sealed, f Format) string {
	return filename(s.Header(), f)
}

func filename(h *bundle.Header, f Format) string {
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
