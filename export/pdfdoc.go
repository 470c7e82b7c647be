package export

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"codeberg.org/go-pdf/fpdf"
)

// Font families registered in every document.
const (
	primaryFamily  = "dejavu"
	fallbackFamily = "fallback"
)

type rgb struct{ r, g, b int }

// The palette: dark text on white, one accent, and status colours that
// read in greyscale too (the inflection row is also marked with ▶ and
// bold type, never by colour alone).
var (
	colText     = rgb{33, 37, 41}
	colMuted    = rgb{108, 117, 125}
	colAccent   = rgb{13, 71, 161}
	colRule     = rgb{206, 212, 218}
	colHeadFill = rgb{52, 58, 64}
	colZebra    = rgb{245, 246, 248}
	colWarnFill = rgb{255, 243, 205}
	colWarnText = rgb{133, 100, 4}
	colBadFill  = rgb{248, 215, 218}
	colBadText  = rgb{132, 32, 41}
	colBadEdge  = rgb{200, 35, 51}
	colOKFill   = rgb{209, 231, 221}
	colOKText   = rgb{15, 81, 50}
	colPanel    = rgb{241, 243, 245}
	colWhite    = rgb{255, 255, 255}
)

// doc wraps an fpdf document with what the reports share: fonts with a
// per-character fallback, text that fits its cell, wrapped paragraphs,
// page breaks with a running header, tables whose header repeats on every
// page, and the footer written on every page once the page count is known.
// Page breaks are made here (fpdf's automatic page break is off), so that
// nothing is ever split across pages by accident.
type doc struct {
	f        *fpdf.Fpdf
	s        *Sealed
	cov      *coverage
	fb       *coverage // nil without a fallback font
	fbTTF    []byte    // the fallback font, added to the document on first use
	fbLoaded bool

	style string
	size  float64
	font  string // family, style and size last selected, to skip redundant selections

	pageW, pageH float64
	margin       float64 // left and right
	top          float64
	bottom       float64 // lowest y content may reach
	cm           float64 // cell margin

	running string // running header on every page after the first
	onBreak func() // called after need makes a page break (repeats a table's header)
}

func (r *Renderer) newDoc(s *Sealed) (*doc, error) {
	cov, err := dejaVuCoverage()
	if err != nil {
		return nil, fmt.Errorf("%w: embedded font: %w", ErrRender, err)
	}
	h := s.Bundle.header()
	orientation := "P"
	if h.BundleType == TypeEvidence {
		orientation = "L" // the step table needs the width
	}
	f := fpdf.New(orientation, "mm", "A4", "")
	created := h.CreatedAt.UTC()
	f.SetCreationDate(created)
	f.SetModificationDate(created)
	f.SetCatalogSort(true)
	f.SetCompression(true)
	f.SetProducer("stopline export (codeberg.org/go-pdf/fpdf)", true)
	f.SetCreator("stopline", true)
	f.SetAuthor("stopline", true)
	f.SetTitle(docTitle(s.Bundle), true)
	f.SetSubject(fmt.Sprintf("%s %s, tenant %s, run %s", h.BundleType, h.BundleID, h.TenantID, h.RunID), true)
	f.SetKeywords("stopline bundle sha256 "+s.Hash, true)
	f.SetAutoPageBreak(false, 0)
	d := &doc{f: f, s: s, cov: cov, margin: 14, top: 14, cm: 1.2}
	d.pageW, d.pageH = f.GetPageSize()
	d.bottom = d.pageH - 20
	f.SetMargins(d.margin, d.top, d.margin)
	f.SetCellMargin(d.cm)

	fonts := []struct {
		family, style string
		ttf           []byte
	}{{primaryFamily, "", dejaVuSans}, {primaryFamily, "B", dejaVuSansBold}}
	// The fallback font is loaded only when a character needs it
	// (useSeg), so that a document without CJK text parses 3 MB less.
	d.fb, d.fbTTF = r.fallbackCov, r.fallback
	for _, ft := range fonts {
		// fpdf writes into the font bytes it is given when it subsets
		// them: each document gets its own copy, so that concurrent
		// renders never share them.
		f.AddUTF8FontFromBytes(ft.family, ft.style, bytes.Clone(ft.ttf))
		// A font that did not load is reported by selecting it, not by
		// loading it; selecting it now makes it an error here instead of
		// a panic on the first text.
		f.SetFont(ft.family, ft.style, 10)
		if err := f.Error(); err != nil {
			return nil, fmt.Errorf("%w: loading font %s %s: %w", ErrRender, ft.family, ft.style, err)
		}
	}
	d.setFont("", 9)
	return d, nil
}

func docTitle(b Bundle) string {
	h := b.header()
	subject := "run " + h.RunID
	if h.IncidentID != "" {
		subject = "incident " + h.IncidentID
	}
	switch b.Type() {
	case TypeSOC2:
		return "SOC 2 evidence report, " + subject
	case TypeExecutiveDebrief:
		return "Executive debrief, " + subject
	}
	return "Evidence report, " + subject
}

// setFont selects the primary font in a style ("" or "B") and size.
func (d *doc) setFont(style string, size float64) {
	d.style, d.size = style, size
	d.selectFamily(primaryFamily, style)
}

func (d *doc) selectFamily(family, style string) {
	key := fmt.Sprintf("%s/%s/%g", family, style, d.size)
	if key == d.font {
		return
	}
	d.font = key
	d.f.SetFont(family, style, d.size)
}

func (d *doc) textColor(c rgb) { d.f.SetTextColor(c.r, c.g, c.b) }
func (d *doc) fillColor(c rgb) { d.f.SetFillColor(c.r, c.g, c.b) }
func (d *doc) drawColor(c rgb) { d.f.SetDrawColor(c.r, c.g, c.b) }

// seg is a run of text set in one font.
type seg struct {
	text     string
	fallback bool
}

// simple reports whether s can be set as is in the primary font.
func (d *doc) simple(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == utf8.RuneError || !d.cov.has(c) {
			return false
		}
	}
	return true
}

// segments splits s into runs of the primary and the fallback font.
// Control characters become spaces; characters neither font has become
// U+FFFD (or '?'), so that nothing is silently dropped.
func (d *doc) segments(s string) []seg {
	var out []seg
	var b strings.Builder
	cur := false
	flush := func() {
		if b.Len() > 0 {
			out = append(out, seg{b.String(), cur})
			b.Reset()
		}
	}
	for _, c := range s {
		fb := false
		switch {
		case c < 0x20 || c == 0x7f:
			c = ' '
		case d.cov.has(c) && c != utf8.RuneError:
		case d.fb != nil && d.fb.has(c):
			fb = true
		case d.cov.has(utf8.RuneError):
			c = utf8.RuneError
		default:
			c = '?'
		}
		if fb != cur {
			flush()
			cur = fb
		}
		b.WriteRune(c)
	}
	flush()
	return out
}

func (d *doc) useSeg(fallback bool) {
	if fallback {
		if !d.fbLoaded {
			d.f.AddUTF8FontFromBytes(fallbackFamily, "", bytes.Clone(d.fbTTF)) // fpdf writes into it

			d.fbLoaded = true // a font that did not load fails the document (Render checks Error)
		}
		d.selectFamily(fallbackFamily, "")
	} else {
		d.selectFamily(primaryFamily, d.style)
	}
}

// width is the width of s in the current font and size.
func (d *doc) width(s string) float64 {
	if d.simple(s) {
		return d.f.GetStringWidth(s)
	}
	return d.segsWidth(d.segments(s))
}

func (d *doc) segsWidth(segs []seg) float64 {
	w := 0.0
	for _, sg := range segs {
		d.useSeg(sg.fallback)
		w += d.f.GetStringWidth(sg.text)
	}
	d.useSeg(false)
	return w
}

// fit returns s, cut with "…" if it is wider than a cell of width w.
func (d *doc) fit(s string, w float64) string {
	avail := w - 2*d.cm
	if d.width(s) <= avail {
		return s
	}
	rs := []rune(s)
	lo, hi := 0, len(rs)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if d.width(string(rs[:mid])+"…") <= avail {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return string(rs[:lo]) + "…"
}

// cell writes s in a cell like fpdf's CellFormat (align "L", "C" or "R";
// ln 0: to the right, 1: next line, 2: below), switching font for
// characters only the fallback font has.
func (d *doc) cell(w, h float64, s, border string, ln int, align string, fill bool) {
	if d.simple(s) {
		d.f.CellFormat(w, h, s, border, ln, align, fill, 0, "")
		return
	}
	segs := d.segments(s)
	if len(segs) == 1 && !segs[0].fallback {
		d.f.CellFormat(w, h, segs[0].text, border, ln, align, fill, 0, "")
		return
	}
	x, y := d.f.GetXY()
	d.f.CellFormat(w, h, "", border, 0, "", fill, 0, "")
	tw := d.segsWidth(segs)
	tx := x + d.cm
	switch align {
	case "R":
		tx = x + w - d.cm - tw
	case "C":
		tx = x + (w-tw)/2
	}
	d.f.SetCellMargin(0)
	for _, sg := range segs {
		d.useSeg(sg.fallback)
		sw := d.f.GetStringWidth(sg.text)
		d.f.SetXY(tx, y)
		d.f.CellFormat(sw, h, sg.text, "", 0, "L", false, 0, "")
		tx += sw
	}
	d.f.SetCellMargin(d.cm)
	d.useSeg(false)
	switch ln {
	case 0:
		d.f.SetXY(x+w, y)
	case 1:
		d.f.SetXY(d.margin, y+h)
	default:
		d.f.SetXY(x, y+h)
	}
}

// lines wraps s into lines no wider than w (paragraphs split at "\n";
// words too long for a line, and text without spaces such as CJK, are
// broken between characters).
func (d *doc) lines(s string, w float64) []string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			cand := word
			if line != "" {
				cand = line + " " + word
			}
			if d.width(cand) <= w {
				line = cand
				continue
			}
			if line != "" {
				out = append(out, line)
				line = ""
			}
			for d.width(word) > w {
				rs := []rune(word)
				n := 1
				for n < len(rs) && d.width(string(rs[:n+1])) <= w {
					n++
				}
				out = append(out, string(rs[:n]))
				word = string(rs[n:])
			}
			line = word
		}
		out = append(out, line)
	}
	return out
}

// para writes s wrapped to width w at the current x, breaking pages as
// needed, and leaves y below it.
func (d *doc) para(w, lineH float64, s string) {
	x := d.f.GetX()
	for _, l := range d.lines(s, w-2*d.cm) {
		d.need(lineH)
		d.f.SetX(x)
		d.cell(w, lineH, l, "", 2, "L", false)
	}
}

// need starts a new page unless h more millimetres fit on this one.
func (d *doc) need(h float64) bool {
	if d.f.GetY()+h <= d.bottom {
		return false
	}
	d.newPage()
	if d.onBreak != nil {
		d.onBreak()
	}
	return true
}

// newPage adds a page with the running header (on pages after the first).
func (d *doc) newPage() {
	d.f.AddPage()
	if d.f.PageNo() == 1 || d.running == "" {
		d.f.SetXY(d.margin, d.top)
		return
	}
	style, size := d.style, d.size
	d.setFont("", 7)
	d.textColor(colMuted)
	d.f.SetXY(d.margin, 8)
	d.cell(d.pageW-2*d.margin, 4, d.fit(d.running, d.pageW-2*d.margin), "", 0, "L", false)
	d.drawColor(colRule)
	d.f.SetLineWidth(0.2)
	d.f.Line(d.margin, 12.5, d.pageW-d.margin, 12.5)
	d.setFont(style, size)
	d.textColor(colText)
	d.f.SetXY(d.margin, d.top+1)
}

// footer writes the footer of page p of n: the bundle's hash, id and key,
// and "Page p of n".
func (d *doc) footer(p, n int) {
	d.font = "" // the page's own content stream has its own font state
	d.setFont("", 6.5)
	d.fillColor(colWhite)
	d.textColor(colMuted)
	d.drawColor(colRule)
	d.f.SetLineWidth(0.2)
	y := d.pageH - 14
	w := d.pageW - 2*d.margin
	d.f.Line(d.margin, y, d.pageW-d.margin, y)
	h := d.s.Bundle.header()
	signed := "unsigned"
	if id := d.s.KeyID(); id != "" {
		signed = "signed, ed25519 key " + id
	}
	d.f.SetXY(d.margin, y+1)
	d.cell(w-30, 3.6, "Bundle SHA-256 "+d.s.Hash, "", 0, "L", false)
	d.setFont("B", 7)
	d.textColor(colText)
	d.cell(30, 3.6, fmt.Sprintf("Page %d of %d", p, n), "", 1, "R", false)
	d.setFont("", 6.5)
	d.textColor(colMuted)
	d.f.SetX(d.margin)
	d.cell(w-30, 3.6, fmt.Sprintf("%s · %s · %s · created %s", h.BundleID, h.BundleType, signed, rfc3339(h.CreatedAt)), "", 0, "L", false)
	d.cell(30, 3.6, "stopline", "", 1, "R", false)
}

// output writes every page's footer, now that the page count is known,
// and returns the PDF.
func (d *doc) output() ([]byte, error) {
	n := d.f.PageCount()
	for p := 1; p <= n; p++ {
		d.f.SetPage(p)
		d.footer(p, n)
	}
	var buf bytes.Buffer
	if err := d.f.Output(&buf); err != nil {
		return nil, fmt.Errorf("%w: %s %s: %w", ErrRender, d.s.Bundle.Type(), d.s.Bundle.ID(), err)
	}
	return buf.Bytes(), nil
}

// --- building blocks ---

// title writes the report's title block on the first page.
func (d *doc) title(kicker, title, subtitle string) {
	w := d.pageW - 2*d.margin
	d.f.SetXY(d.margin, d.top)
	d.setFont("B", 8)
	d.textColor(colAccent)
	d.cell(w, 5, strings.ToUpper(kicker), "", 1, "L", false)
	d.setFont("B", 20)
	d.textColor(colText)
	d.cell(w, 10, d.fit(title, w), "", 1, "L", false)
	d.setFont("", 10)
	d.textColor(colMuted)
	d.para(w, 5, subtitle)
	d.drawColor(colAccent)
	d.f.SetLineWidth(0.6)
	y := d.f.GetY() + 1.5
	d.f.Line(d.margin, y, d.margin+28, y)
	d.f.SetY(y + 4)
	d.setFont("", 9)
	d.textColor(colText)
}

// heading writes a section heading, on a new page if less than minBelow
// millimetres would fit under it.
func (d *doc) heading(s string, minBelow float64) {
	d.need(9 + minBelow)
	d.f.SetX(d.margin)
	d.setFont("B", 12)
	d.textColor(colAccent)
	d.cell(d.pageW-2*d.margin, 7, d.fit(s, d.pageW-2*d.margin), "", 1, "L", false)
	d.f.SetY(d.f.GetY() + 1)
	d.setFont("", 9)
	d.textColor(colText)
}

// banner writes a full-width coloured box with bold text.
func (d *doc) banner(s string, fill, text, edge rgb) {
	w := d.pageW - 2*d.margin
	d.setFont("B", 10)
	ls := d.lines(s, w-8)
	h := float64(len(ls))*5 + 4
	d.need(h)
	x, y := d.margin, d.f.GetY()
	d.fillColor(fill)
	d.f.Rect(x, y, w, h, "F")
	d.fillColor(edge)
	d.f.Rect(x, y, 1.5, h, "F")
	d.textColor(text)
	d.f.SetXY(x+4, y+2)
	for _, l := range ls {
		d.f.SetX(x + 4)
		d.cell(w-6, 5, l, "", 2, "L", false)
	}
	d.f.SetXY(d.margin, y+h+3)
	d.setFont("", 9)
	d.textColor(colText)
}

// fact is one label and value of a key-facts list.
type fact struct{ label, value string }

// facts writes label/value rows at x, the value wrapped to valueW.
func (d *doc) facts(x float64, fs []fact, labelW, valueW, lineH float64) {
	for _, f := range fs {
		d.setFont("", 8.5)
		ls := d.lines(f.value, valueW-2*d.cm)
		d.need(float64(len(ls)) * lineH)
		y := d.f.GetY()
		d.f.SetXY(x, y)
		d.textColor(colMuted)
		d.cell(labelW, lineH, d.fit(f.label, labelW), "", 0, "L", false)
		d.textColor(colText)
		for _, l := range ls {
			d.f.SetX(x + labelW)
			d.cell(valueW, lineH, l, "", 2, "L", false)
		}
	}
	d.setFont("", 9)
}

// col is a table column.
type col struct {
	title string
	w     float64
	align string
}

func colsWidth(cols []col) float64 {
	w := 0.0
	for _, c := range cols {
		w += c.w
	}
	return w
}

// tableHeader writes a table's header row, white on dark.
func (d *doc) tableHeader(cols []col, h float64) {
	style, size := d.style, d.size
	d.setFont("B", size)
	d.fillColor(colHeadFill)
	d.textColor(colWhite)
	d.f.SetX(d.margin)
	for i, c := range cols {
		ln := 0
		if i == len(cols)-1 {
			ln = 1
		}
		d.cell(c.w, h, d.fit(c.title, c.w), "", ln, c.align, true)
	}
	d.setFont(style, size)
	d.textColor(colText)
}

// table starts a table: it writes the header and repeats it after every
// page break until endTable.
func (d *doc) table(cols []col, headerH float64) {
	d.need(headerH * 3)
	d.tableHeader(cols, headerH)
	d.onBreak = func() { d.tableHeader(cols, headerH) }
}

func (d *doc) endTable() {
	d.onBreak = nil
	d.f.SetY(d.f.GetY() + 4)
}

// row writes one single-line table row; texts that do not fit are cut
// with "…".
func (d *doc) row(cols []col, cells []string, h float64, fill *rgb) {
	d.need(h)
	if fill != nil {
		d.fillColor(*fill)
	}
	d.f.SetX(d.margin)
	for i, c := range cols {
		ln := 0
		if i == len(cols)-1 {
			ln = 1
		}
		d.cell(c.w, h, d.fit(cells[i], c.w), "", ln, c.align, fill != nil)
	}
}

// wrapRow writes one table row whose cells wrap onto several lines.
func (d *doc) wrapRow(cols []col, cells []string, lineH float64, fill *rgb) {
	wrapped := make([][]string, len(cols))
	n := 1
	for i, c := range cols {
		wrapped[i] = d.lines(cells[i], c.w-2*d.cm)
		n = max(n, len(wrapped[i]))
	}
	h := float64(n)*lineH + 1.5
	d.need(h)
	x, y := d.margin, d.f.GetY()
	if fill != nil {
		d.fillColor(*fill)
		d.f.Rect(x, y, colsWidth(cols), h, "F")
	}
	for i, c := range cols {
		d.f.SetXY(x, y+0.75)
		for _, l := range wrapped[i] {
			d.f.SetX(x)
			d.cell(c.w, lineH, l, "", 2, c.align, false)
		}
		x += c.w
	}
	d.drawColor(colRule)
	d.f.SetLineWidth(0.15)
	d.f.Line(d.margin, y+h, d.margin+colsWidth(cols), y+h)
	d.f.SetXY(d.margin, y+h)
}

// shortHash is the first n hex digits of a hash, or "—".
func shortHash(h string, n int) string {
	if h == "" {
		return "—"
	}
	if len(h) > n {
		return h[:n]
	}
	return h
}

// kpi is one figure of a row of boxes.
type kpi struct {
	label, value string
	fill, text   rgb
}

// kpis writes a row of figure boxes across the page.
func (d *doc) kpis(ks []kpi) {
	const gap, h = 4.0, 17.0
	d.need(h + 3)
	w := (d.pageW - 2*d.margin - gap*float64(len(ks)-1)) / float64(len(ks))
	y := d.f.GetY()
	for i, k := range ks {
		x := d.margin + float64(i)*(w+gap)
		d.fillColor(k.fill)
		d.f.Rect(x, y, w, h, "F")
		d.setFont("", 7.5)
		d.textColor(k.text)
		d.f.SetXY(x+1.5, y+2)
		d.cell(w-3, 4, d.fit(strings.ToUpper(k.label), w-3), "", 2, "L", false)
		d.setFont("B", 13)
		d.f.SetXY(x+1.5, y+7.5)
		d.cell(w-3, 7, d.fit(k.value, w-3), "", 2, "L", false)
	}
	d.setFont("", 9)
	d.textColor(colText)
	d.f.SetXY(d.margin, y+h+4)
}

// panel writes a paragraph in a shaded box.
func (d *doc) panel(s string, size float64) {
	w := d.pageW - 2*d.margin
	d.setFont("", size)
	lineH := size * 0.5
	ls := d.lines(s, w-8-2*d.cm)
	h := float64(len(ls))*lineH + 5
	d.need(h)
	x, y := d.margin, d.f.GetY()
	d.fillColor(colPanel)
	d.f.Rect(x, y, w, h, "F")
	d.fillColor(colAccent)
	d.f.Rect(x, y, 1.2, h, "F")
	d.textColor(colText)
	d.f.SetXY(x+4, y+2.5)
	for _, l := range ls {
		d.f.SetX(x + 4)
		d.cell(w-8, lineH, l, "", 2, "L", false)
	}
	d.f.SetXY(d.margin, y+h+4)
	d.setFont("", 9)
}
