// Package pdf renders sealed bundles (package export/bundle) as PDF for
// people: an evidence report, a SOC 2 report, an executive debrief. It
// uses codeberg.org/go-pdf/fpdf, the maintained continuation of gofpdf,
// and fonts embedded in the package (DejaVu Sans, and Droid Sans Fallback
// for Chinese, Japanese and Korean: 4.9 MB that only programs importing
// this package carry). The same bundle always renders to the same bytes,
// and every page shows "Page N of M", the bundle's SHA-256 and the
// signing key's id.
//
// What the reports show people:
//
//   - The evidence report and the executive debrief carry the same
//     timeline chart, drawn with the PDF library's own lines: the run's
//     steps on a time axis from its start, cost and tokens accumulating
//     toward the budget limits of the policy snapshot (dashed, labelled
//     with the threshold and its policies, or "no limit in force"),
//     warnings, and the inflection point labelled with the policy that
//     stopped the run. Steps are grouped into at most 200 columns of the
//     axis, so that a run of 100,000 steps draws a few hundred segments.
//     The debrief, which has no step list, reads the steps from its chain.
//   - Titles and headings wrap, never cut. The SOC 2 report's population
//     and incident tables never cut an id or a time, which keep full
//     precision (an auditor samples from them): cells wrap and rows grow,
//     and a row is never split across pages.
//   - A SOC 2 report with no policy version in force during its period
//     flags it as missing evidence, in red.
//   - The SOC 2 report and the debrief end with a sign-off block for the
//     reviewer: name, role, date and signature, citing the bundle's hash.
//   - Times in prose, banners and key facts read to the second, or the
//     millisecond when they have a fraction (2026-03-01 09:00:06.123 UTC);
//     tables keep what auditors compare (RFC 3339 with every digit in the
//     SOC 2 tables, milliseconds in the step table).
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
