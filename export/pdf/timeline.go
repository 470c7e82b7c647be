package pdf

import (
	"encoding/json"
	"math"
	"slices"
	"time"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// chartColumns bounds what the timeline chart draws: a run's steps are
// grouped into this many columns of the time axis (steps closer in time
// than a column's width share one), so that a run of a million steps
// draws as few segments as one of two hundred: each cumulative line is a
// staircase of at most 2×chartColumns+1 segments.
const chartColumns = 200

// stepPoint is what the timeline chart reads of one step.
type stepPoint struct {
	At          time.Time
	Index       int
	TotalCost   float64
	TotalTokens int64
	Warning     bool
	Inflection  bool
	PolicyID    string // of the deciding decision
	Reason      prevention.RunTerminationReason
}

// column is the steps of one column of the time axis.
type column struct {
	n      int     // steps in the column
	x      float64 // axis fraction (0: run start, 1: axis end) of its last step
	cost   float64 // cumulative cost after its last step
	tokens int64   // cumulative tokens after its last step
	warn   float64 // axis fraction of its first warning, or -1
}

// limitLine is a budget limit the chart draws: the threshold's value,
// its name and the policies that apply it.
type limitLine struct {
	Value     float64
	Threshold string
	Policies  []string
	Blocks    bool // false when every policy applying it only warns or monitors
}

// inflectionMark is the step a policy stopped the run at.
type inflectionMark struct {
	x        float64
	step     int
	cost     float64
	tokens   int64
	policyID string
	reason   prevention.RunTerminationReason
}

// timeline is a run's steps as the chart shows them: on a time axis from
// the run's start, cumulative cost and tokens with the limits that
// applied, warnings, and the inflection point. It holds at most
// chartColumns columns whatever the number of steps.
type timeline struct {
	start    time.Time
	span     time.Duration
	steps    int
	warnings int
	cols     []column // nonempty columns, in time order
	last     int      // the column index of cols' last
	cost     float64  // final cumulative cost
	tokens   int64    // final cumulative tokens

	costLimits, tokenLimits, stepLimits []limitLine
	inflection                          *inflectionMark
}

// newTimeline starts the timeline of a run: its axis runs from start
// to end (the later of the run's end and its last step), and spans at
// least a second. Steps are added in chain order with add.
func newTimeline(start, end time.Time, snap *snapshot.PolicySnapshot) *timeline {
	tl := &timeline{start: start, span: max(end.Sub(start), time.Second)}
	if snap != nil {
		tl.costLimits, tl.tokenLimits, tl.stepLimits = budgetLimits(snap)
	}
	return tl
}

// add adds the next step of the run, in its column.
func (tl *timeline) add(p stepPoint) {
	x := min(max(float64(p.At.Sub(tl.start))/float64(tl.span), 0), 1)
	b := min(int(x*chartColumns), chartColumns-1)
	// A clock that went back keeps a step in the column of the one before
	// it, so that columns stay in order.
	if len(tl.cols) == 0 || b > tl.last {
		tl.cols = append(tl.cols, column{warn: -1})
		tl.last = b
	}
	c := &tl.cols[len(tl.cols)-1]
	c.n++
	c.x = max(x, c.x)
	c.cost, c.tokens = p.TotalCost, p.TotalTokens
	if p.Warning {
		tl.warnings++
		if c.warn < 0 {
			c.warn = x
		}
	}
	if p.Inflection && tl.inflection == nil {
		tl.inflection = &inflectionMark{x: x, step: p.Index, cost: p.TotalCost, tokens: p.TotalTokens, policyID: p.PolicyID, reason: p.Reason}
	}
	tl.steps++
	tl.cost, tl.tokens = p.TotalCost, p.TotalTokens
}

// budgetLimits are the snapshot's budget limits on cost, tokens and
// steps, each threshold once, lowest first.
func budgetLimits(snap *snapshot.PolicySnapshot) (cost, tokens, steps []limitLine) {
	add := func(ls []limitLine, p snapshot.Policy, name string, v float64) []limitLine {
		blocks := p.Enforcement.Effective() == snapshot.EnforceBlock
		for i := range ls {
			if ls[i].Threshold == name {
				ls[i].Policies = append(ls[i].Policies, p.ID)
				ls[i].Blocks = ls[i].Blocks || blocks
				return ls
			}
		}
		return append(ls, limitLine{Value: v, Threshold: name, Policies: []string{p.ID}, Blocks: blocks})
	}
	for _, p := range snap.Policies() {
		if p.Kind != "budget" {
			continue
		}
		var params struct {
			Metric    string `json:"metric"`
			Threshold string `json:"threshold"`
		}
		if json.Unmarshal(p.ParamsJSON(), &params) != nil {
			continue
		}
		v, ok := snap.Threshold(params.Threshold)
		if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		switch params.Metric {
		case "cost_cents":
			cost = add(cost, p, params.Threshold, v)
		case "tokens":
			tokens = add(tokens, p, params.Threshold, v)
		case "steps":
			steps = add(steps, p, params.Threshold, v)
		}
	}
	byValue := func(a, b limitLine) int {
		if a.Value != b.Value {
			if a.Value < b.Value {
				return -1
			}
			return 1
		}
		if a.Threshold < b.Threshold {
			return -1
		}
		return 1
	}
	slices.SortFunc(cost, byValue)
	slices.SortFunc(tokens, byValue)
	slices.SortFunc(steps, byValue)
	return cost, tokens, steps
}

// evidenceTimeline is the timeline of an evidence bundle's steps.
func evidenceTimeline(b *bundle.Evidence) *timeline {
	start, end := runStart(&b.Run), runStart(&b.Run)
	if b.Run.EndedAt != nil {
		end = *b.Run.EndedAt
	}
	if n := len(b.Steps); n > 0 && b.Steps[n-1].Timestamp.After(end) {
		end = b.Steps[n-1].Timestamp
	}
	tl := newTimeline(start, end, b.Snapshot)
	for i := range b.Steps {
		s := &b.Steps[i]
		tl.add(stepPoint{At: s.Timestamp, Index: s.StepIndex, TotalCost: s.TotalCost, TotalTokens: s.TotalTokens,
			Warning: s.Status == trace.StatusWarning, Inflection: s.IsInflection, PolicyID: s.Decision.PolicyID, Reason: s.Decision.Reason})
	}
	return tl
}

// chainTimeline is the timeline of a bundle's chain (the executive
// debrief carries no step list): its step records, decoded one at a time.
// Records that do not decode are left out; bundle.Verify has checked the
// chain of a verified bundle.
func chainTimeline(start time.Time, chain []bundle.ChainRecord, snap *snapshot.PolicySnapshot) *timeline {
	var dec trace.Decoder
	end := start
	if n := len(chain); n > 0 {
		if r, err := dec.Decode(chain[n-1].Record, chain[n-1].PrevHash, chain[n-1].Hash); err == nil && r.At.After(end) {
			end = r.At
		}
	}
	tl := newTimeline(start, end, snap)
	for _, c := range chain {
		r, err := dec.Decode(c.Record, c.PrevHash, c.Hash)
		if err != nil || r.Kind != trace.KindStep {
			continue
		}
		p := stepPoint{At: r.At, Index: r.StepIndex, TotalCost: r.TotalCostCents, TotalTokens: r.TotalTokens,
			Warning: r.Status == trace.StatusWarning, Inflection: r.Inflection}
		if r.Decision != nil {
			p.PolicyID, p.Reason = r.Decision.PolicyID, r.Decision.Reason
		}
		tl.add(p)
	}
	return tl
}
