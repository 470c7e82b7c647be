package pdf

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/words"
	"github.com/stopline/stopline/export/pdf/internal/layout"
)

// ErrRender: a PDF could not be rendered.
var ErrRender = errors.New("pdf: rendering PDF")

// Renderer renders sealed bundles as PDF with codeberg.org/go-pdf/fpdf
// (the maintained continuation of gofpdf). It is safe for concurrent use;
// each Render builds its own document.
//
// Output is deterministic: the same sealed bundle always renders to the
// same bytes. The document's creation and modification dates are the
// bundle's created_at (UTC), resource catalogs are written in sorted
// order, and nothing random is written.
//
// Every page carries "Page N of M", the bundle's SHA-256 and id, and the
// signing key's id when the bundle is signed, so that a printed page can
// be tied back to its JSON bundle.
type Renderer struct {
	fonts layout.Fonts
}

// Option configures a Renderer.
type Option func(*Renderer) error

// New returns a Renderer. Text is set in the embedded DejaVu Sans
// (Latin, Greek, Cyrillic, Hebrew, Arabic letters, common symbols), with
// the embedded Droid Sans Fallback for Chinese, Japanese and Korean;
// characters neither has (emoji, scripts outside the Basic Multilingual
// Plane) print as U+FFFD (�), never silently dropped. Right-to-left text
// is set in logical order, not shaped. The JSON bundle always keeps the
// exact text.
func New(opts ...Option) (*Renderer, error) {
	cov, err := dejaVuCoverage()
	if err != nil {
		return nil, fmt.Errorf("pdf: embedded font: %w", err)
	}
	fb, err := droidCoverage()
	if err != nil {
		return nil, fmt.Errorf("pdf: embedded fallback font: %w", err)
	}
	r := &Renderer{fonts: layout.Fonts{
		Regular: dejaVuSans, Bold: dejaVuSansBold, Coverage: cov,
		Fallback: droidSansFallback, FallbackCoverage: fb,
	}}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("pdf: New: nil Option")
		}
		if err := o(r); err != nil {
			return nil, fmt.Errorf("pdf: New: %w", err)
		}
	}
	return r, nil
}

// WithFallbackFont replaces the embedded Droid Sans Fallback with another
// TrueType font (.ttf bytes, glyf outlines), used, character by character,
// for text DejaVu Sans cannot show. Only the characters used are embedded
// in each PDF. The font is checked here: a font that cannot be read or
// loaded is an error now, never a failure on first use.
func WithFallbackFont(ttf []byte) Option {
	return func(r *Renderer) error {
		cov, err := layout.CoverageOf(ttf)
		if err != nil {
			return fmt.Errorf("WithFallbackFont: %w", err)
		}
		font := bytes.Clone(ttf)
		if err := layout.CheckFallback(font); err != nil {
			return fmt.Errorf("WithFallbackFont: %w", err)
		}
		r.fonts.Fallback, r.fonts.FallbackCoverage = font, cov
		return nil
	}
}

// Render writes the sealed bundle to w as PDF: an evidence report, a SOC
// 2 report or an executive debrief, by the bundle's type. Nothing is
// written when rendering fails.
func (r *Renderer) Render(w io.Writer, s *bundle.Sealed) (err error) {
	if s == nil || s.Bundle == nil {
		return fmt.Errorf("%w: nil bundle", ErrRender)
	}
	// fpdf reports most failures through Err, but some (a font that did
	// not load, an index past a font's width table) panic: every panic
	// becomes an error.
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %s %s: fpdf panicked: %v", ErrRender, s.Bundle.Type(), s.Bundle.ID(), p)
		}
	}()
	h := s.Header()
	d, err := layout.New(layout.Meta{
		Landscape: h.BundleType == bundle.TypeEvidence, // the step table needs the width
		Created:   h.CreatedAt,
		Title:     docTitle(h),
		Subject:   fmt.Sprintf("%s %s, tenant %s, run %s", h.BundleType, h.BundleID, h.TenantID, h.RunID),
		Keywords:  "stopline bundle sha256 " + s.Hash,
	}, r.fonts)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRender, err)
	}
	switch b := s.Bundle.(type) {
	case *bundle.Evidence:
		renderEvidence(d, s, b)
	case *bundle.SOC2:
		renderSOC2(d, s, b)
	case *bundle.ExecutiveDebrief:
		renderDebrief(d, s, b)
	default:
		return fmt.Errorf("%w: unknown bundle %T", ErrRender, s.Bundle)
	}
	// fpdf writes the document only when it is whole and without error:
	// a failure writes nothing to w.
	if err := d.Output(w, func(d *layout.Doc, p, n int) { footer(d, s, p, n) }); err != nil {
		return fmt.Errorf("%w: %s %s: %w", ErrRender, s.Bundle.Type(), s.Bundle.ID(), err)
	}
	return nil
}

func docTitle(h *bundle.Header) string {
	subject := "run " + h.RunID
	if h.IncidentID != "" {
		subject = "incident " + h.IncidentID
	}
	switch h.BundleType {
	case bundle.TypeSOC2:
		return "SOC 2 evidence report, " + subject
	case bundle.TypeExecutiveDebrief:
		return "Executive debrief, " + subject
	}
	return "Evidence report, " + subject
}

// footer writes the footer of page p of n: the bundle's hash, id and key,
// and "Page p of n".
func footer(d *layout.Doc, s *bundle.Sealed, p, n int) {
	d.SetFont("", 6.5)
	d.FillColor(layout.ColorWhite)
	d.TextColor(layout.ColorMuted)
	d.DrawColor(layout.ColorRule)
	d.F.SetLineWidth(0.2)
	y := d.PageH - 14
	w := d.PageW - 2*d.Margin
	d.F.Line(d.Margin, y, d.PageW-d.Margin, y)
	h := s.Header()
	signed := "unsigned"
	if id := s.KeyID(); id != "" {
		signed = "signed, ed25519 key " + id
	}
	d.F.SetXY(d.Margin, y+1)
	d.Cell(w-30, 3.6, "Bundle SHA-256 "+s.Hash, "", 0, "L", false)
	d.SetFont("B", 7)
	d.TextColor(layout.ColorText)
	d.Cell(30, 3.6, fmt.Sprintf("Page %d of %d", p, n), "", 1, "R", false)
	d.SetFont("", 6.5)
	d.TextColor(layout.ColorMuted)
	d.F.SetX(d.Margin)
	d.Cell(w-30, 3.6, fmt.Sprintf("%s · %s · %s · created %s", h.BundleID, h.BundleType, signed, words.Stamp(h.CreatedAt)), "", 0, "L", false)
	d.Cell(30, 3.6, "stopline", "", 1, "R", false)
}
