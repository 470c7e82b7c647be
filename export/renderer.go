package export

import (
	"bytes"
	"errors"
	"fmt"

	"codeberg.org/go-pdf/fpdf"
)

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
	fallback    []byte // TrueType font for characters DejaVu Sans lacks
	fallbackCov *coverage
}

// RenderOption configures a Renderer.
type RenderOption func(*Renderer) error

// NewRenderer returns a Renderer. Text is set in the embedded DejaVu Sans
// (Latin, Greek, Cyrillic, Hebrew, Arabic letters, common symbols), with
// the embedded Droid Sans Fallback for Chinese, Japanese and Korean;
// characters neither has (emoji, scripts outside the Basic Multilingual
// Plane) print as U+FFFD (�), never silently dropped. Right-to-left text
// is set in logical order, not shaped. The JSON bundle always keeps the
// exact text.
func NewRenderer(opts ...RenderOption) (*Renderer, error) {
	if _, err := dejaVuCoverage(); err != nil {
		return nil, fmt.Errorf("export: embedded font: %w", err)
	}
	cov, err := droidCoverage()
	if err != nil {
		return nil, fmt.Errorf("export: embedded fallback font: %w", err)
	}
	r := &Renderer{fallback: droidSansFallback, fallbackCov: cov}
	for _, o := range opts {
		if o == nil {
			return nil, errors.New("export: NewRenderer: nil RenderOption")
		}
		if err := o(r); err != nil {
			return nil, fmt.Errorf("export: NewRenderer: %w", err)
		}
	}
	return r, nil
}

// WithFallbackFont replaces the embedded Droid Sans Fallback with another
// TrueType font (.ttf bytes, glyf outlines), used, character by character,
// for text DejaVu Sans cannot show. Only the characters used are embedded
// in each PDF. The font is checked here: a font that cannot be read or
// loaded is an error now, never a failure on first use.
func WithFallbackFont(ttf []byte) RenderOption {
	return func(r *Renderer) error {
		cov, err := cmapCoverage(ttf)
		if err != nil {
			return fmt.Errorf("WithFallbackFont: %w", err)
		}
		font := bytes.Clone(ttf)
		// Load it once into a throwaway document so that a font fpdf
		// cannot use fails here.
		if err := tryFont(font); err != nil {
			return fmt.Errorf("WithFallbackFont: %w", err)
		}
		r.fallback, r.fallbackCov = font, cov
		return nil
	}
}

func tryFont(ttf []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("fpdf cannot load the font: %v", p)
		}
	}()
	f := fpdf.New("P", "mm", "A4", "")
	f.AddUTF8FontFromBytes(fallbackFamily, "", bytes.Clone(ttf)) // fpdf writes into it
	f.AddPage()
	f.SetFont(fallbackFamily, "", 10)
	f.CellFormat(10, 5, "A", "", 0, "L", false, 0, "")
	if err := f.Error(); err != nil {
		return fmt.Errorf("fpdf cannot load the font: %w", err)
	}
	return nil
}

// Render renders the sealed bundle as PDF: an evidence report, a SOC 2
// report or an executive debrief, by the bundle's type.
func (r *Renderer) Render(s *Sealed) (out []byte, err error) {
	if s == nil || s.Bundle == nil {
		return nil, fmt.Errorf("%w: nil bundle", ErrRender)
	}
	// fpdf reports most failures through Err, but some (a font that did
	// not load, an index past a font's width table) panic: every panic
	// becomes an error.
	defer func() {
		if p := recover(); p != nil {
			out, err = nil, fmt.Errorf("%w: %s %s: fpdf panicked: %v", ErrRender, s.Bundle.Type(), s.Bundle.ID(), p)
		}
	}()
	d, err := r.newDoc(s)
	if err != nil {
		return nil, err
	}
	switch b := s.Bundle.(type) {
	case *EvidenceBundle:
		renderEvidence(d, b)
	case *SOC2Bundle:
		renderSOC2(d, b)
	case *ExecutiveDebriefBundle:
		renderDebrief(d, b)
	default:
		return nil, fmt.Errorf("%w: unknown bundle %T", ErrRender, s.Bundle)
	}
	return d.output()
}
