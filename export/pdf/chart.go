package pdf

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"

	"github.com/stopline/stopline/export/internal/words"
	"github.com/stopline/stopline/export/pdf/internal/layout"
)

// The chart's colours. colorMarker, the inflection point's, is used
// nowhere else in the reports, so that the marker can be found on a
// rendered page; the inflection is also marked with ▶ and a label, never
// by colour alone.
var (
	colorCost       = layout.RGB{R: 13, G: 71, B: 161}
	colorCostFill   = layout.RGB{R: 219, G: 229, B: 245}
	colorTokens     = layout.RGB{R: 0, G: 121, B: 107}
	colorTokensFill = layout.RGB{R: 212, G: 237, B: 232}
	colorLimit      = layout.RGB{R: 191, G: 87, B: 0}
	colorMarker     = layout.RGB{R: 220, G: 20, B: 60}
	colorWarnMark   = layout.RGB{R: 232, G: 163, B: 0}
	colorTick       = layout.RGB{R: 134, G: 142, B: 150}
)

// The chart's geometry (mm).
const (
	chartLabelW = 22.0 // the value labels left of the plot
	chartLegend = 5.0  // the legend row
	chartMarkH  = 4.5  // the row of the inflection's label
	chartPanelH = 23.0 // each of the cost and tokens panels
	chartGap    = 3.5  // between the panels
	chartStripH = 7.0  // the step strip
	chartAxisH  = 4.0  // the time labels
	chartInfoH  = 4.5  // the line under the time labels
	// chartHeight is the chart's whole height.
	chartHeight = chartLegend + chartMarkH + 2*chartPanelH + chartGap + 2 + chartStripH + chartAxisH + chartInfoH + 2
)

// drawTimeline draws the timeline chart across the page below the
// current y (on a new page if it does not fit there), and leaves y below
// it: the run's steps on a time axis from its start; cumulative cost and
// tokens, each in a panel with the budget limits that applied (dashed,
// labelled with the threshold and its policies); warnings and the
// inflection point (labelled with the policy that stopped the run) in
// the step strip and across the panels. It draws at most chartColumns
// columns whatever the number of steps.
func drawTimeline(d *layout.Doc, tl *timeline) {
	w := d.PageW - 2*d.Margin
	d.Need(chartHeight)
	x0, y0 := d.Margin, d.F.GetY()
	px, pw := x0+chartLabelW, w-chartLabelW-1
	xOf := func(f float64) float64 { return px + f*pw }

	chartLegendRow(d, x0+chartLabelW, y0, tl)
	yMark := y0 + chartLegend
	yCost := yMark + chartMarkH
	yTok := yCost + chartPanelH + chartGap
	yStrip := yTok + chartPanelH + 2
	yAxis := yStrip + chartStripH

	costTop := niceCeil(max(tl.cost, maxLimit(tl.costLimits)))
	tokTop := niceCeil(max(float64(tl.tokens), maxLimit(tl.tokenLimits)))
	costY := chartPanel(d, px, yCost, pw, chartPanelH, costTop, tl, func(c *column) float64 { return c.cost },
		colorCost, colorCostFill, "Cost (¢)", "cost", tl.costLimits, func(v float64) string { return words.Decimal(v) + " ¢" })
	tokY := chartPanel(d, px, yTok, pw, chartPanelH, tokTop, tl, func(c *column) float64 { return float64(c.tokens) },
		colorTokens, colorTokensFill, "Tokens", "token", tl.tokenLimits, tokenCount)

	// The step strip: a tick per column that has steps, warnings and the
	// inflection as triangles.
	d.SetFont("", 6.5)
	d.TextColor(layout.ColorMuted)
	d.F.SetXY(x0, yStrip+1)
	d.Cell(chartLabelW-1, 3, "Steps", "", 2, "R", false)
	d.F.SetX(x0)
	d.Cell(chartLabelW-1, 3, words.Count(int64(tl.steps)), "", 0, "R", false)
	d.DrawColor(layout.ColorRule)
	d.F.SetLineWidth(0.2)
	d.F.Line(px, yStrip+chartStripH-1, px+pw, yStrip+chartStripH-1)
	d.DrawColor(colorTick)
	d.F.SetLineWidth(0.25)
	for i := range tl.cols {
		x := xOf(tl.cols[i].x)
		d.F.Line(x, yStrip+1.8, x, yStrip+chartStripH-1)
	}
	d.FillColor(colorWarnMark)
	for i := range tl.cols {
		if c := &tl.cols[i]; c.warn >= 0 {
			triangle(d, xOf(c.warn), yStrip+chartStripH-1, 2.4, true)
		}
	}
	if tl.steps == 0 {
		d.TextColor(layout.ColorMuted)
		d.F.SetXY(px, yStrip+1)
		d.Cell(pw, 4, "No step was recorded.", "", 0, "C", false)
	}

	// The time axis: elapsed time from the run's start.
	d.SetFont("", 6)
	d.TextColor(layout.ColorMuted)
	for i := 0; i <= 4; i++ {
		f := float64(i) / 4
		x := xOf(f)
		d.DrawColor(colorTick)
		d.F.SetLineWidth(0.2)
		d.F.Line(x, yAxis-1, x, yAxis-0.2)
		label := elapsedLabel(time.Duration(f*float64(tl.span)), tl.span)
		lw := d.Width(label) + 2*d.CM
		align, lx := "C", x-lw/2
		switch i {
		case 0:
			align, lx = "L", x-d.CM
		case 4:
			align, lx = "R", x-lw+d.CM
		}
		d.F.SetXY(lx, yAxis)
		d.Cell(lw, chartAxisH-0.5, label, "", 0, align, false)
	}
	d.SetFont("", 6.5)
	d.F.SetXY(x0, yAxis+chartAxisH)
	info := fmt.Sprintf("Time from the run's start (%s); the run started %s.", words.Seconds(tl.span.Seconds()), words.Stamp(tl.start))
	d.Cell(w/2, chartInfoH, info, "", 0, "L", false)
	d.Cell(w/2, chartInfoH, stepLimitText(tl), "", 0, "R", false)

	// The inflection point: a line across the panels and the strip, dots
	// on both lines, and its label above the panels.
	if inf := tl.inflection; inf != nil {
		x := xOf(inf.x)
		d.DrawColor(colorMarker)
		d.FillColor(colorMarker)
		d.F.SetLineWidth(0.45)
		d.F.Line(x, yCost, x, yStrip+chartStripH-1)
		d.F.Circle(x, costY(inf.cost), 0.9, "F")
		d.F.Circle(x, tokY(float64(inf.tokens)), 0.9, "F")
		triangle(d, x, yStrip+chartStripH-1, 2.8, true)
		triangle(d, x, yCost, 2.2, false)
		label := fmt.Sprintf("▶ step %d: stopped by policy %s", inf.step, orDash(inf.policyID))
		if inf.reason != "" {
			label += " (" + string(inf.reason) + ")"
		}
		d.SetFont("B", 6.5)
		lw := d.Width(label) + 2*d.CM
		lx := x + 1
		if x+1+lw > px+pw {
			lx = max(x-1-lw, x0)
		}
		d.TextColor(colorMarker)
		d.F.SetXY(lx, yMark)
		d.Cell(lw, chartMarkH-1, label, "", 0, "L", false)
	}

	d.F.SetDashPattern([]float64{}, 0)
	d.F.SetLineWidth(0.2)
	d.SetFont("", 9)
	d.TextColor(layout.ColorText)
	d.F.SetXY(d.Margin, y0+chartHeight)
}

// chartLegendRow writes the legend: what each line and mark means.
func chartLegendRow(d *layout.Doc, x, y float64, tl *timeline) {
	d.SetFont("", 6.5)
	d.TextColor(layout.ColorText)
	cy := y + chartLegend/2
	text := func(s string) {
		d.F.SetXY(x, y+0.5)
		sw := d.Width(s) + 2*d.CM
		d.Cell(sw, chartLegend-1, s, "", 0, "L", false)
		x += sw + 3
	}
	swatch := func(c layout.RGB, dashed bool) {
		d.DrawColor(c)
		d.F.SetLineWidth(0.6)
		if dashed {
			d.F.SetDashPattern([]float64{1.2, 0.8}, 0)
		}
		d.F.Line(x, cy, x+6, cy)
		d.F.SetDashPattern([]float64{}, 0)
		x += 6.5
	}
	mark := func(c layout.RGB) {
		d.FillColor(c)
		triangle(d, x+1.4, cy+1.1, 2.4, true)
		x += 3
	}
	swatch(colorCost, false)
	text("cost so far")
	swatch(colorTokens, false)
	text("tokens so far")
	swatch(colorLimit, true)
	text("budget limit")
	mark(colorWarnMark)
	text(words.Plural(tl.warnings, "warning", "warnings"))
	mark(colorMarker)
	if tl.inflection != nil {
		text("inflection point (policy stop)")
	} else {
		text("no policy stopped the run")
	}
}

// chartPanel draws one cumulative series as a staircase over the
// timeline's columns, with its limits, and returns the function that
// places a value on the panel's vertical axis.
func chartPanel(d *layout.Doc, x, y, w, h, top float64, tl *timeline, value func(*column) float64,
	line, fill layout.RGB, title, noun string, limits []limitLine, format func(float64) string) func(float64) float64 {
	yOf := func(v float64) float64 { return y + h - min(max(v/top, 0), 1)*h }
	xOf := func(f float64) float64 { return x + f*w }

	// Frame, mid gridline and value labels.
	d.DrawColor(layout.ColorRule)
	d.F.SetLineWidth(0.2)
	d.F.Rect(x, y, w, h, "D")
	d.F.Line(x, y+h/2, x+w, y+h/2)
	d.SetFont("", 6)
	d.TextColor(layout.ColorMuted)
	// The top value hangs from the frame and zero stands on it, so that
	// two panels' labels never meet.
	for i, v := range []float64{top, top / 2, 0} {
		d.F.SetXY(x-chartLabelW, y+float64(i)*(h-3)/2)
		d.Cell(chartLabelW-1, 3, format(v), "", 0, "R", false)
	}
	d.SetFont("B", 6.5)
	d.TextColor(line)
	d.F.SetXY(x-chartLabelW, y+h/2+1.6)
	d.Cell(chartLabelW-1, 3, title, "", 0, "R", false)

	// The staircase: flat between steps, up at each column's last step.
	pts := make([]fpdf.PointType, 0, 2*len(tl.cols)+3)
	pts = append(pts, fpdf.PointType{X: x, Y: yOf(0)})
	prev := yOf(0)
	for i := range tl.cols {
		c := &tl.cols[i]
		cx, cy := xOf(c.x), yOf(value(c))
		pts = append(pts, fpdf.PointType{X: cx, Y: prev}, fpdf.PointType{X: cx, Y: cy})
		prev = cy
	}
	pts = append(pts, fpdf.PointType{X: x + w, Y: prev})
	if len(tl.cols) > 0 {
		d.FillColor(fill)
		d.F.Polygon(append(pts, fpdf.PointType{X: x + w, Y: yOf(0)}), "F")
	}
	d.DrawColor(line)
	d.F.SetLineWidth(0.5)
	d.F.SetLineJoinStyle("round")
	d.F.MoveTo(pts[0].X, pts[0].Y)
	for _, p := range pts[1:] {
		d.F.LineTo(p.X, p.Y)
	}
	d.F.DrawPath("D")
	d.F.SetLineJoinStyle("miter")

	// The limits, dashed and labelled; or a word that there is none.
	d.SetFont("", 6)
	if len(limits) == 0 {
		d.TextColor(layout.ColorMuted)
		// Top left: a cumulative line starts at the bottom left.
		d.F.SetXY(x+0.5, y+0.6)
		d.Cell(w-2, 3, "no "+noun+" limit in force", "", 0, "L", false)
	}
	for _, l := range limits {
		ly := yOf(l.Value)
		d.DrawColor(colorLimit)
		d.F.SetLineWidth(0.35)
		d.F.SetDashPattern([]float64{1.2, 0.8}, 0)
		d.F.Line(x, ly, x+w, ly)
		d.F.SetDashPattern([]float64{}, 0)
		label := fmt.Sprintf("limit %s: %s (%s)", format(l.Value), l.Threshold, strings.Join(l.Policies, ", "))
		if !l.Blocks {
			label += ", warns only"
		}
		ty := ly - 3.1
		if ty < y+0.3 {
			ty = ly + 0.3
		}
		d.TextColor(colorLimit)
		d.F.SetXY(x+1, ty)
		d.Cell(w-2, 2.8, label, "", 0, "R", false)
	}
	return yOf
}

// triangle draws a filled triangle of side s in the fill colour, its
// base centred on (x, y): pointing up from the base when up, else down
// from it.
func triangle(d *layout.Doc, x, y, s float64, up bool) {
	h := s * 0.87
	if up {
		h = -h
	}
	d.F.Polygon([]fpdf.PointType{{X: x - s/2, Y: y}, {X: x + s/2, Y: y}, {X: x, Y: y + h}}, "F")
}

// stepLimitText states the step limits in force.
func stepLimitText(tl *timeline) string {
	if len(tl.stepLimits) == 0 {
		return "No step limit in force."
	}
	parts := make([]string, len(tl.stepLimits))
	for i, l := range tl.stepLimits {
		parts[i] = fmt.Sprintf("%s %s (%s)", l.Threshold, words.Decimal(l.Value), strings.Join(l.Policies, ", "))
	}
	return "Step limit: " + strings.Join(parts, ", ") + "."
}

// tokenCount spells a token count on the axis: "12,500", or "2.5" on
// the axis of a run with next to no tokens.
func tokenCount(v float64) string {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return words.Count(int64(v))
	}
	return words.Decimal(v)
}

func maxLimit(ls []limitLine) float64 {
	m := 0.0
	for _, l := range ls {
		m = max(m, l.Value)
	}
	return m
}

// niceCeil is the top of a value axis: a round number (1, 2, 2.5 or 5
// times a power of ten) at least 5% above v, or 1 for nothing to show.
func niceCeil(v float64) float64 {
	if !(v > 0) || math.IsInf(v, 0) {
		return 1
	}
	v *= 1.05
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*e >= v {
			return m * e
		}
	}
	return 10 * e
}

// elapsedLabel spells an offset on a time axis of the given span:
// seconds, minutes or hours, as the span calls for ("+1.5 s", "+12 min",
// "+3.5 h").
func elapsedLabel(d, span time.Duration) string {
	scale := 10.0 // tenths
	if span < 10*time.Second {
		scale = 100
	}
	num := func(v float64, unit string) string {
		return "+" + strconv.FormatFloat(math.Round(v*scale)/scale, 'f', -1, 64) + " " + unit
	}
	switch {
	case d == 0:
		return "0"
	case span < 2*time.Minute:
		return num(d.Seconds(), "s")
	case span < 2*time.Hour:
		return num(d.Minutes(), "min")
	default:
		return num(d.Hours(), "h")
	}
}

// timelineSection writes the timeline chart under its heading.
func timelineSection(d *layout.Doc, tl *timeline) {
	d.Heading("The run over time: steps, cost and tokens toward their limits", chartHeight)
	drawTimeline(d, tl)
	d.F.SetY(d.F.GetY() + 2)
}
