// Package layout is the page-layout toolkit of stopline's PDFs, on
// codeberg.org/go-pdf/fpdf: fonts with a per-character fallback (cmap
// coverage), text that fits its cell, wrapped paragraphs, page breaks with
// a running header, tables whose header repeats on every page, key-fact
// lists, banners, figure boxes, sign-off blocks, and a footer written on
// every page once the page count is known. It knows nothing of bundles: package
// export/pdf lays its reports out with it.
package layout

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"codeberg.org/go-pdf/fpdf"
)

// Font families registered in every document.
const (
	primaryFamily  = "dejavu"
	fallbackFamily = "fallback"
)

// RGB is a colour.
type RGB struct{ R, G, B int }

// The palette: dark text on white, one accent, and status colours that
// read in greyscale too (the inflection row is also marked with ▶ and
// bold type, never by colour alone).
var (
	ColorText     = RGB{33, 37, 41}
	ColorMuted    = RGB{108, 117, 125}
	ColorAccent   = RGB{13, 71, 161}
	ColorRule     = RGB{206, 212, 218}
	ColorHeadFill = RGB{52, 58, 64}
	ColorZebra    = RGB{245, 246, 248}
	ColorWarnFill = RGB{255, 243, 205}
	ColorWarnText = RGB{133, 100, 4}
	ColorBadFill  = RGB{248, 215, 218}
	ColorBadText  = RGB{132, 32, 41}
	ColorBadEdge  = RGB{200, 35, 51}
	ColorOKFill   = RGB{209, 231, 221}
	ColorOKText   = RGB{15, 81, 50}
	ColorPanel    = RGB{241, 243, 245}
	ColorWhite    = RGB{255, 255, 255}
)

// Doc wraps an fpdf document with what the reports share: fonts with a
// per-character fallback, text that fits its cell, wrapped paragraphs,
// page breaks with a running header, tables whose header repeats on every
// page, and the footer written on every page once the page count is known.
// Page breaks are made here (fpdf's automatic page break is off), so that
// nothing is ever split across pages by accident.
type Doc struct {
	// F is the fpdf document, for what the building blocks do not do
	// (positions, lines).
	F *fpdf.Fpdf
	// PageW and PageH are the page's size, Margin the left and right
	// margin, CM the cell margin, in millimetres.
	PageW, PageH float64
	Margin       float64
	CM           float64
	// Running is the running header on every page after the first.
	Running string

	cov      *Coverage
	fb       *Coverage // nil without a fallback font
	fbTTF    []byte    // the fallback font, added to the document on first use
	fbLoaded bool

	style string
	size  float64
	font  string // family, style and size last selected, to skip redundant selections

	top     float64
	bottom  float64 // lowest y content may reach
	onBreak func()  // called after Need makes a page break (repeats a table's header)
}

// Fonts are the fonts of a document: DejaVu Sans (or another font with
// the same role) regular and bold, with the characters it has, and a
// fallback font (nil for none) for the characters it lacks, loaded only
// when a document needs it.
type Fonts struct {
	Regular, Bold    []byte
	Coverage         *Coverage
	Fallback         []byte
	FallbackCoverage *Coverage
}

// Meta describes a document: A4 landscape or portrait, its creation date
// (the document's only date, so that the same content renders to the
// same bytes), and its title, subject and keywords.
type Meta struct {
	Landscape                bool
	Created                  time.Time
	Title, Subject, Keywords string
}

// New starts a document. Its output is deterministic: the same calls
// give the same bytes.
func New(m Meta, fonts Fonts) (*Doc, error) {
	orientation := "P"
	if m.Landscape {
		orientation = "L"
	}
	f := fpdf.New(orientation, "mm", "A4", "")
	created := m.Created.UTC()
	f.SetCreationDate(created)
	f.SetModificationDate(created)
	f.SetCatalogSort(true)
	f.SetCompression(true)
	f.SetProducer("stopline export (codeberg.org/go-pdf/fpdf)", true)
	f.SetCreator("stopline", true)
	f.SetAuthor("stopline", true)
	f.SetTitle(m.Title, true)
	f.SetSubject(m.Subject, true)
	f.SetKeywords(m.Keywords, true)
	f.SetAutoPageBreak(false, 0)
	d := &Doc{F: f, cov: fonts.Coverage, Margin: 14, top: 14, CM: 1.2}
	d.PageW, d.PageH = f.GetPageSize()
	d.bottom = d.PageH - 20
	f.SetMargins(d.Margin, d.top, d.Margin)
	f.SetCellMargin(d.CM)

	faces := []struct {
		family, style string
		ttf           []byte
	}{{primaryFamily, "", fonts.Regular}, {primaryFamily, "B", fonts.Bold}}
	// The fallback font is loaded only when a character needs it
	// (useSeg), so that a document without such text parses megabytes
	// less.
	if fonts.Fallback != nil {
		d.fb, d.fbTTF = fonts.FallbackCoverage, fonts.Fallback
	}
	for _, ft := range faces {
		// fpdf writes into the font bytes it is given when it subsets
		// them: each document gets its own copy, so that concurrent
		// documents never share them.
		f.AddUTF8FontFromBytes(ft.family, ft.style, bytes.Clone(ft.ttf))
		// A font that did not load is reported by selecting it, not by
		// loading it; selecting it now makes it an error here instead of
		// a panic on the first text.
		f.SetFont(ft.family, ft.style, 10)
		if err := f.Error(); err != nil {
			return nil, fmt.Errorf("loading font %s %s: %w", ft.family, ft.style, err)
		}
	}
	d.SetFont("", 9)
	return d, nil
}

// SetFont selects the primary font in a style ("" or "B") and size.
func (d *Doc) SetFont(style string, size float64) {
	d.style, d.size = style, size
	d.selectFamily(primaryFamily, style)
}

func (d *Doc) selectFamily(family, style string) {
	key := fmt.Sprintf("%s/%s/%g", family, style, d.size)
	if key == d.font {
		return
	}
	d.font = key
	d.F.SetFont(family, style, d.size)
}

func (d *Doc) TextColor(c RGB) { d.F.SetTextColor(c.R, c.G, c.B) }
func (d *Doc) FillColor(c RGB) { d.F.SetFillColor(c.R, c.G, c.B) }
func (d *Doc) DrawColor(c RGB) { d.F.SetDrawColor(c.R, c.G, c.B) }

// seg is a run of text set in one font.
type seg struct {
	text     string
	fallback bool
}

// simple reports whether s can be set as is in the primary font.
func (d *Doc) simple(s string) bool {
	for _, c := range s {
		if c < 0x20 || c == 0x7f || c == utf8.RuneError || !d.cov.Has(c) {
			return false
		}
	}
	return true
}

// segments splits s into runs of the primary and the fallback font.
// Control characters become spaces; characters neither font has become
// U+FFFD (or '?'), so that nothing is silently dropped.
func (d *Doc) segments(s string) []seg {
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
		case d.cov.Has(c) && c != utf8.RuneError:
		case d.fb != nil && d.fb.Has(c):
			fb = true
		case d.cov.Has(utf8.RuneError):
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

func (d *Doc) useSeg(fallback bool) {
	if fallback {
		if !d.fbLoaded {
			d.F.AddUTF8FontFromBytes(fallbackFamily, "", bytes.Clone(d.fbTTF)) // fpdf writes into it

			d.fbLoaded = true // a font that did not load fails the document (Render checks Error)
		}
		d.selectFamily(fallbackFamily, "")
	} else {
		d.selectFamily(primaryFamily, d.style)
	}
}

// Width is the width of s in the current font and size.
func (d *Doc) Width(s string) float64 {
	if d.simple(s) {
		return d.F.GetStringWidth(s)
	}
	return d.segsWidth(d.segments(s))
}

func (d *Doc) segsWidth(segs []seg) float64 {
	w := 0.0
	for _, sg := range segs {
		d.useSeg(sg.fallback)
		w += d.F.GetStringWidth(sg.text)
	}
	d.useSeg(false)
	return w
}

// Fit returns s, cut with "…" if it is wider than a cell of width w.
func (d *Doc) Fit(s string, w float64) string {
	avail := w - 2*d.CM
	if d.Width(s) <= avail {
		return s
	}
	rs := []rune(s)
	lo, hi := 0, len(rs)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if d.Width(string(rs[:mid])+"…") <= avail {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return string(rs[:lo]) + "…"
}

// Cell writes s in a cell like fpdf's CellFormat (align "L", "C" or "R";
// ln 0: to the right, 1: next line, 2: below), switching font for
// characters only the fallback font has.
func (d *Doc) Cell(w, h float64, s, border string, ln int, align string, fill bool) {
	if d.simple(s) {
		d.F.CellFormat(w, h, s, border, ln, align, fill, 0, "")
		return
	}
	segs := d.segments(s)
	if len(segs) == 1 && !segs[0].fallback {
		d.F.CellFormat(w, h, segs[0].text, border, ln, align, fill, 0, "")
		return
	}
	x, y := d.F.GetXY()
	d.F.CellFormat(w, h, "", border, 0, "", fill, 0, "")
	tw := d.segsWidth(segs)
	tx := x + d.CM
	switch align {
	case "R":
		tx = x + w - d.CM - tw
	case "C":
		tx = x + (w-tw)/2
	}
	d.F.SetCellMargin(0)
	for _, sg := range segs {
		d.useSeg(sg.fallback)
		sw := d.F.GetStringWidth(sg.text)
		d.F.SetXY(tx, y)
		d.F.CellFormat(sw, h, sg.text, "", 0, "L", false, 0, "")
		tx += sw
	}
	d.F.SetCellMargin(d.CM)
	d.useSeg(false)
	switch ln {
	case 0:
		d.F.SetXY(x+w, y)
	case 1:
		d.F.SetXY(d.Margin, y+h)
	default:
		d.F.SetXY(x, y+h)
	}
}

// Lines wraps s into lines no wider than w (paragraphs split at "\n";
// words too long for a line, and text without spaces such as CJK, are
// broken between characters).
func (d *Doc) Lines(s string, w float64) []string {
	var out []string
	for _, para := range strings.Split(s, "\n") {
		line := ""
		for _, word := range strings.Fields(para) {
			cand := word
			if line != "" {
				cand = line + " " + word
			}
			if d.Width(cand) <= w {
				line = cand
				continue
			}
			if line != "" {
				out = append(out, line)
				line = ""
			}
			for d.Width(word) > w {
				rs := []rune(word)
				n := 1
				for n < len(rs) && d.Width(string(rs[:n+1])) <= w {
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

// Para writes s wrapped to width w at the current x, breaking pages as
// needed, and leaves y below it.
func (d *Doc) Para(w, lineH float64, s string) {
	x := d.F.GetX()
	for _, l := range d.Lines(s, w-2*d.CM) {
		d.Need(lineH)
		d.F.SetX(x)
		d.Cell(w, lineH, l, "", 2, "L", false)
	}
}

// Need starts a new page unless h more millimetres fit on this one.
func (d *Doc) Need(h float64) bool {
	if d.F.GetY()+h <= d.bottom {
		return false
	}
	d.NewPage()
	if d.onBreak != nil {
		d.onBreak()
	}
	return true
}

// NewPage adds a page with the running header (on pages after the first).
func (d *Doc) NewPage() {
	d.F.AddPage()
	if d.F.PageNo() == 1 || d.Running == "" {
		d.F.SetXY(d.Margin, d.top)
		return
	}
	style, size := d.style, d.size
	d.SetFont("", 7)
	d.TextColor(ColorMuted)
	d.F.SetXY(d.Margin, 8)
	d.Cell(d.PageW-2*d.Margin, 4, d.Fit(d.Running, d.PageW-2*d.Margin), "", 0, "L", false)
	d.DrawColor(ColorRule)
	d.F.SetLineWidth(0.2)
	d.F.Line(d.Margin, 12.5, d.PageW-d.Margin, 12.5)
	d.SetFont(style, size)
	d.TextColor(ColorText)
	d.F.SetXY(d.Margin, d.top+1)
}

// Output writes every page's footer with footer, now that the page count
// is known, and writes the PDF to w.
func (d *Doc) Output(w io.Writer, footer func(d *Doc, page, pages int)) error {
	n := d.F.PageCount()
	for p := 1; p <= n; p++ {
		d.F.SetPage(p)
		d.font = "" // the page's own content stream has its own font state
		footer(d, p, n)
	}
	// Close lays the document out whole (fonts subset, catalogs): an
	// error there writes nothing to w.
	d.F.Close()
	if err := d.F.Error(); err != nil {
		return err
	}
	return d.F.Output(w)
}

// --- building blocks ---

// Title writes the report's title block on the first page.
func (d *Doc) Title(kicker, title, subtitle string) {
	w := d.PageW - 2*d.Margin
	d.F.SetXY(d.Margin, d.top)
	d.SetFont("B", 8)
	d.TextColor(ColorAccent)
	d.Cell(w, 5, strings.ToUpper(kicker), "", 1, "L", false)
	d.SetFont("B", 20)
	d.TextColor(ColorText)
	// The title wraps, never cut: it names the run or incident.
	for _, l := range d.Lines(title, w-2*d.CM) {
		d.F.SetX(d.Margin)
		d.Cell(w, 9, l, "", 1, "L", false)
	}
	d.F.SetY(d.F.GetY() + 1)
	d.SetFont("", 10)
	d.TextColor(ColorMuted)
	d.Para(w, 5, subtitle)
	d.DrawColor(ColorAccent)
	d.F.SetLineWidth(0.6)
	y := d.F.GetY() + 1.5
	d.F.Line(d.Margin, y, d.Margin+28, y)
	d.F.SetY(y + 4)
	d.SetFont("", 9)
	d.TextColor(ColorText)
}

// Heading writes a section heading, on a new page if less than minBelow
// millimetres would fit under it.
// A heading wraps, never cut.
func (d *Doc) Heading(s string, minBelow float64) {
	w := d.PageW - 2*d.Margin
	d.SetFont("B", 12)
	ls := d.Lines(s, w-2*d.CM)
	d.Need(float64(len(ls))*7 + 2 + minBelow)
	d.TextColor(ColorAccent)
	for _, l := range ls {
		d.F.SetX(d.Margin)
		d.Cell(w, 7, l, "", 1, "L", false)
	}
	d.F.SetY(d.F.GetY() + 1)
	d.SetFont("", 9)
	d.TextColor(ColorText)
}

// Banner writes a full-width coloured box with bold text.
func (d *Doc) Banner(s string, fill, text, edge RGB) {
	w := d.PageW - 2*d.Margin
	d.SetFont("B", 10)
	ls := d.Lines(s, w-8)
	h := float64(len(ls))*5 + 4
	d.Need(h)
	x, y := d.Margin, d.F.GetY()
	d.FillColor(fill)
	d.F.Rect(x, y, w, h, "F")
	d.FillColor(edge)
	d.F.Rect(x, y, 1.5, h, "F")
	d.TextColor(text)
	d.F.SetXY(x+4, y+2)
	for _, l := range ls {
		d.F.SetX(x + 4)
		d.Cell(w-6, 5, l, "", 2, "L", false)
	}
	d.F.SetXY(d.Margin, y+h+3)
	d.SetFont("", 9)
	d.TextColor(ColorText)
}

// Fact is one label and value of a key-facts list.
type Fact struct{ Label, Value string }

// Facts writes label/value rows at x, the value wrapped to valueW.
func (d *Doc) Facts(x float64, fs []Fact, labelW, valueW, lineH float64) {
	for _, f := range fs {
		d.SetFont("", 8.5)
		ls := d.Lines(f.Value, valueW-2*d.CM)
		d.Need(float64(len(ls)) * lineH)
		y := d.F.GetY()
		d.F.SetXY(x, y)
		d.TextColor(ColorMuted)
		d.Cell(labelW, lineH, d.Fit(f.Label, labelW), "", 0, "L", false)
		d.TextColor(ColorText)
		for _, l := range ls {
			d.F.SetX(x + labelW)
			d.Cell(valueW, lineH, l, "", 2, "L", false)
		}
	}
	d.SetFont("", 9)
}

// Col is a table column: its title, width (mm) and alignment ("L", "C"
// or "R").
type Col struct {
	Title string
	W     float64
	Align string
}

// ColsWidth is the width of the columns together.
func ColsWidth(cols []Col) float64 {
	w := 0.0
	for _, c := range cols {
		w += c.W
	}
	return w
}

// tableHeader writes a table's header row, white on dark.
func (d *Doc) tableHeader(cols []Col, h float64) {
	style, size := d.style, d.size
	d.SetFont("B", size)
	d.FillColor(ColorHeadFill)
	d.TextColor(ColorWhite)
	d.F.SetX(d.Margin)
	for i, c := range cols {
		ln := 0
		if i == len(cols)-1 {
			ln = 1
		}
		d.Cell(c.W, h, d.Fit(c.Title, c.W), "", ln, c.Align, true)
	}
	d.SetFont(style, size)
	d.TextColor(ColorText)
}

// Table starts a table: it writes the header and repeats it after every
// page break until endTable.
func (d *Doc) Table(cols []Col, headerH float64) {
	d.Need(headerH * 3)
	d.tableHeader(cols, headerH)
	d.onBreak = func() { d.tableHeader(cols, headerH) }
}

func (d *Doc) EndTable() {
	d.onBreak = nil
	d.F.SetY(d.F.GetY() + 4)
}

// Row writes one single-line table row; texts that do not fit are cut
// with "…".
func (d *Doc) Row(cols []Col, cells []string, h float64, fill *RGB) {
	d.Need(h)
	if fill != nil {
		d.FillColor(*fill)
	}
	d.F.SetX(d.Margin)
	for i, c := range cols {
		ln := 0
		if i == len(cols)-1 {
			ln = 1
		}
		d.Cell(c.W, h, d.Fit(cells[i], c.W), "", ln, c.Align, fill != nil)
	}
}

// WrapRow writes one table row whose cells wrap onto several lines.
func (d *Doc) WrapRow(cols []Col, cells []string, lineH float64, fill *RGB) {
	wrapped := make([][]string, len(cols))
	n := 1
	for i, c := range cols {
		wrapped[i] = d.Lines(cells[i], c.W-2*d.CM)
		n = max(n, len(wrapped[i]))
	}
	h := float64(n)*lineH + 1.5
	d.Need(h)
	x, y := d.Margin, d.F.GetY()
	if fill != nil {
		d.FillColor(*fill)
		d.F.Rect(x, y, ColsWidth(cols), h, "F")
	}
	for i, c := range cols {
		d.F.SetXY(x, y+0.75)
		for _, l := range wrapped[i] {
			d.F.SetX(x)
			d.Cell(c.W, lineH, l, "", 2, c.Align, false)
		}
		x += c.W
	}
	d.DrawColor(ColorRule)
	d.F.SetLineWidth(0.15)
	d.F.Line(d.Margin, y+h, d.Margin+ColsWidth(cols), y+h)
	d.F.SetXY(d.Margin, y+h)
}

// KPI is one figure of a row of boxes.
type KPI struct {
	Label, Value string
	Fill, Text   RGB
}

// KPIs writes a row of figure boxes across the page.
func (d *Doc) KPIs(ks []KPI) {
	const gap, h = 4.0, 17.0
	d.Need(h + 3)
	w := (d.PageW - 2*d.Margin - gap*float64(len(ks)-1)) / float64(len(ks))
	y := d.F.GetY()
	for i, k := range ks {
		x := d.Margin + float64(i)*(w+gap)
		d.FillColor(k.Fill)
		d.F.Rect(x, y, w, h, "F")
		d.SetFont("", 7.5)
		d.TextColor(k.Text)
		d.F.SetXY(x+1.5, y+2)
		d.Cell(w-3, 4, d.Fit(strings.ToUpper(k.Label), w-3), "", 2, "L", false)
		// A value too wide is set smaller before it is cut.
		size := 13.0
		for d.SetFont("B", size); size > 9 && d.Width(k.Value) > w-3-2*d.CM; d.SetFont("B", size) {
			size -= 0.5
		}
		d.F.SetXY(x+1.5, y+7.5)
		d.Cell(w-3, 7, d.Fit(k.Value, w-3), "", 2, "L", false)
	}
	d.SetFont("", 9)
	d.TextColor(ColorText)
	d.F.SetXY(d.Margin, y+h+4)
}

// Panel writes a paragraph in a shaded box.
func (d *Doc) Panel(s string, size float64) {
	w := d.PageW - 2*d.Margin
	d.SetFont("", size)
	lineH := size * 0.5
	ls := d.Lines(s, w-8-2*d.CM)
	h := float64(len(ls))*lineH + 5
	d.Need(h)
	x, y := d.Margin, d.F.GetY()
	d.FillColor(ColorPanel)
	d.F.Rect(x, y, w, h, "F")
	d.FillColor(ColorAccent)
	d.F.Rect(x, y, 1.2, h, "F")
	d.TextColor(ColorText)
	d.F.SetXY(x+4, y+2.5)
	for _, l := range ls {
		d.F.SetX(x + 4)
		d.Cell(w-8, lineH, l, "", 2, "L", false)
	}
	d.F.SetXY(d.Margin, y+h+4)
	d.SetFont("", 9)
}

// SignOffHeight is the height of a SignOff block with the statement and
// fields given, for keeping a heading with it.
func (d *Doc) SignOffHeight(statement string, fields int) float64 {
	d.SetFont("", 8.5)
	n := len(d.Lines(statement, d.PageW-2*d.Margin-2*d.CM))
	return float64(n)*4.4 + 3 + float64((fields+1)/2)*signRowH + 2
}

const signRowH = 12.0

// SignOff writes a block for a reviewer to complete on paper, kept on
// one page: the statement, then for each field (name, role, date,
// signature) a line to write on with the field's label under it, two
// fields a row.
func (d *Doc) SignOff(statement string, fields []string) {
	w := d.PageW - 2*d.Margin
	d.Need(d.SignOffHeight(statement, len(fields)))
	d.SetFont("", 8.5)
	d.TextColor(ColorText)
	x := d.Margin
	for _, l := range d.Lines(statement, w-2*d.CM) {
		d.F.SetX(x)
		d.Cell(w, 4.4, l, "", 2, "L", false)
	}
	y := d.F.GetY() + 3
	const gap = 10.0
	colW := (w - gap) / 2
	d.DrawColor(ColorText)
	d.F.SetLineWidth(0.3)
	d.SetFont("", 7.5)
	d.TextColor(ColorMuted)
	for i, f := range fields {
		fx := x + float64(i%2)*(colW+gap)
		fy := y + float64(i/2)*signRowH
		d.F.Line(fx, fy+7, fx+colW, fy+7)
		d.F.SetXY(fx, fy+7.4)
		d.Cell(colW, 3.6, f, "", 0, "L", false)
	}
	d.F.SetLineWidth(0.2)
	d.SetFont("", 9)
	d.TextColor(ColorText)
	d.F.SetXY(d.Margin, y+float64((len(fields)+1)/2)*signRowH+2)
}
