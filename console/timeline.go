package console

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// The timeline picture's geometry, in SVG user units.
const (
	tlWidth   = 960
	tlHeight  = 300
	tlLeft    = 64
	tlRight   = 24
	tlTop     = 24
	tlAxisY   = 236 // the time axis, where the steps sit
	tlSlices  = 96  // clickable instants across the axis
	tlPlotTop = tlTop + 8
)

// maxDrawnSteps is how many steps a timeline draws as dots; a longer run
// draws only its warnings and its inflection point.
const maxDrawnSteps = 1000

// InflectionColor is the fill of the inflection marker, the one element
// of the picture in that colour (the browser tests look for it).
const InflectionColor = "#d7191c"

// timeline is what the run page's SVG is drawn from.
type timeline struct {
	Width, Height, Left, Right, AxisY, Top int
	Start, End                             string // RFC 3339, for the labels
	Steps                                  []tlStep
	Series                                 []tlSeries
	Slices                                 []tlSlice
	Ticks                                  []tlTick
	Markers                                []tlMarker
	Inflection                             *tlStep
	LimitY                                 int // the y of 100% of a limit
	Elided                                 int // allowed steps not drawn as dots (a long run)
	InflectionColor                        string
}

type tlStep struct {
	X, Y      float64
	Index     int
	Class     string // ok, warning, violation
	Title     string
	ExplainAt string
	Anchor    string // of the inflection's label: middle, or end near the right edge
}

type tlSeries struct {
	Name, Class string
	Points      string // SVG polyline points
	LabelX      float64
	Limit       string // "limit 100 cents", or "no limit: scaled to the maximum"
	LabelY      float64
}

type tlSlice struct {
	X, W      float64
	ExplainAt string
	Title     string
}

type tlTick struct {
	X      float64
	Label  string
	Anchor string
}

type tlMarker struct {
	X           float64
	Kind, Label string
}

// limitOf returns the limit of the first budget policy of snap on metric
// (tokens, cost_cents), and whether there is one.
func limitOf(snap *snapshot.PolicySnapshot, metric string) (float64, bool) {
	if snap == nil {
		return 0, false
	}
	for _, p := range snap.Policies() {
		if p.Kind != "budget" {
			continue
		}
		var params struct {
			Metric    string `json:"metric"`
			Threshold string `json:"threshold"`
		}
		if json.Unmarshal(p.ParamsJSON(), &params) != nil || params.Metric != metric {
			continue
		}
		if v, ok := snap.Threshold(params.Threshold); ok && v > 0 {
			return v, true
		}
	}
	return 0, false
}

// newTimeline lays out a run's step records on a time axis from its
// start to its end (or its last record), with cost and tokens as
// fractions of their limits (of their maximum without one).
func newTimeline(recs []trace.Record, snap *snapshot.PolicySnapshot, markers []Marker) *timeline {
	tl := &timeline{Width: tlWidth, Height: tlHeight, Left: tlLeft, Right: tlRight, AxisY: tlAxisY, Top: tlTop, InflectionColor: InflectionColor}
	if len(recs) == 0 {
		return tl
	}
	start, end := recs[0].At, recs[len(recs)-1].At
	for _, m := range markers {
		if m.At.After(end) {
			end = m.At
		}
	}
	if !end.After(start) {
		end = start.Add(time.Second)
	}
	last := end
	// Room after the last instant, so that the last step is not on the
	// frame and its label fits.
	end = end.Add(end.Sub(start) / 12)
	span := float64(end.Sub(start))
	plotW := float64(tlWidth - tlLeft - tlRight)
	xOf := func(t time.Time) float64 { return float64(tlLeft) + plotW*float64(t.Sub(start))/span }
	tl.Start, tl.End = start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339)

	var steps []trace.Record
	for _, r := range recs {
		if r.Kind == trace.KindStep {
			steps = append(steps, r)
		}
	}
	// A limit sits at 80% of the plot's height, so that a value past it
	// shows above the line.
	plotH := float64(tlAxisY - tlPlotTop)
	limitH := 0.8 * plotH
	tl.LimitY = int(float64(tlAxisY) - limitH)
	type metric struct {
		name, class, unit, key string
		value                  func(trace.Record) float64
	}
	for _, m := range []metric{
		{"cost", "cost", "cents", "cost_cents", func(r trace.Record) float64 { return r.TotalCostCents }},
		{"tokens", "tokens", "tokens", "tokens", func(r trace.Record) float64 { return float64(r.TotalTokens) }},
	} {
		limit, ok := limitOf(snap, m.key)
		s := tlSeries{Name: m.name, Class: m.class}
		maxV := 0.0
		for _, r := range steps {
			maxV = max(maxV, m.value(r))
		}
		if ok {
			s.Limit = fmt.Sprintf("%s limit %s %s", m.name, strconv.FormatFloat(limit, 'f', -1, 64), m.unit)
		} else {
			if maxV == 0 {
				continue
			}
			limit = maxV
			s.Limit = fmt.Sprintf("%s: no limit; scaled to its maximum, %s %s", m.name, strconv.FormatFloat(maxV, 'f', -1, 64), m.unit)
		}
		var pts []string
		pts = append(pts, fmt.Sprintf("%.1f,%d", float64(tlLeft), tlAxisY))
		prev := 0.0
		for _, r := range steps {
			x := xOf(r.At)
			y := float64(tlAxisY) - min(limitH*prev/limit, plotH)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y)) // a step: the total jumps at the step's time
			prev = m.value(r)
			y = float64(tlAxisY) - min(limitH*prev/limit, plotH)
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
		}
		pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(last), float64(tlAxisY)-min(limitH*prev/limit, plotH)))
		s.Points = strings.Join(pts, " ")
		s.LabelX, s.LabelY = xOf(last)+6, float64(tlAxisY)-min(limitH*prev/limit, plotH)+4
		tl.Series = append(tl.Series, s)
	}
	for _, r := range steps {
		st := tlStep{X: xOf(r.At), Y: float64(tlAxisY), Index: r.StepIndex, Class: string(r.Status), ExplainAt: r.At.UTC().Format(time.RFC3339Nano)}
		if st.Class == "" {
			st.Class = string(trace.StatusOK)
		}
		what := string(r.StepType)
		if r.Tool != "" {
			what += " " + r.Tool
		}
		if r.Model != "" {
			what += " " + r.Model
		}
		st.Title = fmt.Sprintf("step %d at %s: %s, %s", r.StepIndex, r.At.UTC().Format("15:04:05.000"), what, st.Class)
		for _, f := range r.Findings {
			st.Title += fmt.Sprintf("; %s %s by %s", f.Enforcement, f.Action, f.PolicyID)
		}
		if r.Inflection && r.Decision != nil && r.Decision.Action == prevention.Block {
			st.Title += fmt.Sprintf("; stopped by %s (%s)", r.Decision.PolicyID, r.Decision.Reason)
		}
		if len(steps) > maxDrawnSteps && st.Class == string(trace.StatusOK) && !r.Inflection {
			tl.Elided++ // the series still show the step; its dot would be noise
			continue
		}
		if r.Inflection {
			inf := st
			inf.Anchor = "middle"
			if inf.X > tlWidth-120 {
				inf.Anchor = "end"
			}
			tl.Inflection = &inf
			continue
		}
		tl.Steps = append(tl.Steps, st)
	}
	for _, r := range steps {
		if a := r.Approval; a != nil {
			label := fmt.Sprintf("step %d held, %s", r.StepIndex, a.Answer)
			if a.By != "" {
				label += " by " + a.By
			}
			tl.Markers = append(tl.Markers, tlMarker{X: xOf(a.RequestedAt), Kind: "hold", Label: label})
		}
	}
	for _, m := range markers {
		tl.Markers = append(tl.Markers, tlMarker{X: xOf(m.At), Kind: m.Kind, Label: m.Label})
	}
	sliceW := plotW / tlSlices
	for i := range tlSlices {
		at := start.Add(time.Duration(span * float64(i+1) / tlSlices))
		tl.Slices = append(tl.Slices, tlSlice{X: float64(tlLeft) + sliceW*float64(i), W: sliceW,
			ExplainAt: at.UTC().Format(time.RFC3339Nano), Title: "explain at " + at.UTC().Format("15:04:05.000")})
	}
	for i := 0; i <= 4; i++ {
		at := start.Add(time.Duration(span * float64(i) / 4))
		anchor := "middle"
		if i == 4 {
			anchor = "end"
		}
		tl.Ticks = append(tl.Ticks, tlTick{X: xOf(at), Label: at.UTC().Format("15:04:05"), Anchor: anchor})
	}
	return tl
}
