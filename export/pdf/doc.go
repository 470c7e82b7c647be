// Package pdf renders sealed bundles (package export/bundle) as PDF for
// people: an evidence report, a SOC 2 report, an executive debrief. It
// uses codeberg.org/go-pdf/fpdf, the maintained continuation of gofpdf,
// and fonts embedded in the package (DejaVu Sans, and Droid Sans Fallback
// for Chinese, Japanese and Korean: 4.9 MB that only programs importing
// this package carry). The same bundle always renders to the same bytes,
// and every page shows "Page N of M", the bundle's SHA-256 and the
// signing key's id.
//
// The smallest use:
//
//	r, err := pdf.New()
//	if err != nil { ... }
//	err = r.Render(w, sealed) // sealed from bundle.Seal or bundle.Verify
//
// To export PDFs from a store, give the renderer to the exporter:
// export.New(store, export.WithRenderer(r)).
//
// A Renderer is safe for concurrent use.
package pdf
