package pdf

import (
	"testing"
	"time"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/pdf/internal/layout"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

var t0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// A run of 100,000 steps is drawn from at most chartColumns columns, which
// keep the final totals, every warning and the inflection point.
func TestTimelineGroupsManySteps(t *testing.T) {
	const n = 100_000
	tl := newTimeline(t0, t0, nil)
	for i := 0; i < n; i++ {
		tl.add(stepPoint{At: t0.Add(time.Duration(i+1) * 36 * time.Millisecond), Index: i, TotalCost: float64(i+1) / 100, TotalTokens: int64(i+1) * 7,
			Warning: i%1000 == 0, Inflection: i == n-1, PolicyID: "step-limit", Reason: prevention.ReasonBudgetExceeded})
	}
	if len(tl.cols) == 0 || len(tl.cols) > chartColumns {
		t.Fatalf("%d columns, want 1 to %d", len(tl.cols), chartColumns)
	}
	steps, prevX := 0, -1.0
	for _, c := range tl.cols {
		if c.x <= prevX {
			t.Errorf("columns out of order: %v after %v", c.x, prevX)
		}
		prevX = c.x
		steps += c.n
	}
	last := tl.cols[len(tl.cols)-1]
	if steps != n || tl.steps != n || tl.warnings != 100 || tl.tokens != 7*n || last.tokens != 7*n || last.x != 1 {
		t.Errorf("steps %d/%d, warnings %d, tokens %d/%d, last x %v", steps, tl.steps, tl.warnings, tl.tokens, last.tokens, last.x)
	}
	if inf := tl.inflection; inf == nil || inf.step != n-1 || inf.x != 1 || inf.policyID != "step-limit" {
		t.Errorf("inflection %+v", tl.inflection)
	}
}

// One step, at the run's start instant: the axis spans a second and the
// step has its column.
func TestTimelineOneStep(t *testing.T) {
	tl := newTimeline(t0, t0, nil)
	tl.add(stepPoint{At: t0, TotalCost: 2, TotalTokens: 10, Inflection: true})
	if tl.span != time.Second || len(tl.cols) != 1 || tl.cols[0].x != 0 || tl.inflection == nil {
		t.Errorf("span %v, columns %+v, inflection %v", tl.span, tl.cols, tl.inflection)
	}
	// A step whose clock went back stays in the previous column.
	tl = newTimeline(t0, t0.Add(10*time.Second), nil)
	tl.add(stepPoint{At: t0.Add(8 * time.Second)})
	tl.add(stepPoint{At: t0.Add(2 * time.Second), TotalCost: 1})
	if len(tl.cols) != 1 || tl.cols[0].n != 2 || tl.cols[0].cost != 1 {
		t.Errorf("columns %+v", tl.cols)
	}
}

func TestBudgetLimits(t *testing.T) {
	src := `{"tenant_id": "acme", "thresholds": {"max_cost_cents": 100, "soft_cost": 50, "max_tokens": 5000, "max_steps": 20},
	"policies": [
	  {"id": "cost-budget", "kind": "budget", "params": {"metric": "cost_cents", "threshold": "max_cost_cents"}},
	  {"id": "cost-again", "kind": "budget", "params": {"metric": "cost_cents", "threshold": "max_cost_cents"}, "enforcement": "warn"},
	  {"id": "cost-soft", "kind": "budget", "params": {"metric": "cost_cents", "threshold": "soft_cost"}, "enforcement": "warn"},
	  {"id": "tokens", "kind": "budget", "params": {"metric": "tokens", "threshold": "max_tokens"}},
	  {"id": "steps", "kind": "budget", "params": {"metric": "steps", "threshold": "max_steps"}},
	  {"id": "pace", "kind": "rate_limit", "params": {"threshold": "max_steps"}}
	]}`
	kinds, err := prevention.NewKinds()
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Parse("p.json", []byte(src), t0, kinds)
	if err != nil {
		t.Fatal(err)
	}
	cost, tokens, steps := budgetLimits(snap)
	if len(cost) != 2 || cost[0].Threshold != "soft_cost" || cost[0].Blocks || cost[1].Value != 100 || !cost[1].Blocks ||
		len(cost[1].Policies) != 2 || cost[1].Policies[1] != "cost-again" {
		t.Errorf("cost limits %+v", cost)
	}
	if len(tokens) != 1 || tokens[0].Value != 5000 || len(steps) != 1 || steps[0].Policies[0] != "steps" {
		t.Errorf("token limits %+v, step limits %+v", tokens, steps)
	}
}

func TestAxisLabels(t *testing.T) {
	for _, tc := range []struct{ in, want float64 }{{0, 1}, {4.25, 5}, {100, 200}, {95, 100}, {2.3, 2.5}, {2.4, 5}, {0.003, 0.005}, {445, 500}} {
		if got := niceCeil(tc.in); got != tc.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if got := tokenCount(12500) + " " + tokenCount(2.5); got != "12,500 2.5" {
		t.Errorf("tokenCount: %q", got)
	}
	for _, tc := range []struct {
		d, span time.Duration
		want    string
	}{{0, time.Minute, "0"}, {1500 * time.Millisecond, 6 * time.Second, "+1.5 s"}, {750 * time.Millisecond, time.Second, "+0.75 s"}, {7500 * time.Millisecond, 30 * time.Second, "+7.5 s"}, {6 * time.Minute, 25 * time.Minute, "+6 min"}, {90 * time.Minute, 7 * time.Hour, "+1.5 h"}} {
		if got := elapsedLabel(tc.d, tc.span); got != tc.want {
			t.Errorf("elapsedLabel(%v, %v) = %q, want %q", tc.d, tc.span, got, tc.want)
		}
	}
}

// BenchmarkTimeline100k measures what the chart adds to the PDF of a run
// of 100,000 steps: grouping the evidence bundle's steps (evidence), or
// decoding the chain's records (debrief), and drawing the chart.
func BenchmarkTimeline100k(b *testing.B) {
	const n = 100_000
	ev := &bundle.Evidence{Steps: make([]bundle.TraceStepEvidence, n)}
	start := t0
	ev.Run.StartedAt = &start
	chain := make([]bundle.ChainRecord, n)
	for i := range ev.Steps {
		at := t0.Add(time.Duration(i+1) * 250 * time.Millisecond)
		ev.Steps[i] = bundle.TraceStepEvidence{StepIndex: i, Timestamp: at, TotalCost: float64(i) / 1000, TotalTokens: int64(i) * 7, Status: trace.StatusOK}
		r := trace.Record{TenantID: "acme", RunID: "RUN-0001", Seq: i + 1, Kind: trace.KindStep, At: at, SnapshotID: "SNAP-1", StepIndex: i,
			StepType: prevention.StepToolCall, Tool: "search", Tokens: 7, CostCents: 0.001, TotalTokens: int64(i) * 7, TotalCostCents: float64(i) / 1000, Status: trace.StatusOK}
		chain[i] = bundle.ChainRecord{Record: trace.Encode(nil, &r)}
	}
	r, err := New()
	if err != nil {
		b.Fatal(err)
	}
	doc := func(b *testing.B) *layout.Doc {
		d, err := layout.New(layout.Meta{Created: t0}, r.fonts)
		if err != nil {
			b.Fatal(err)
		}
		d.NewPage()
		return d
	}
	b.Run("evidence", func(b *testing.B) {
		d := doc(b)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			d.F.SetY(30)
			drawTimeline(d, evidenceTimeline(ev))
		}
	})
	b.Run("debrief", func(b *testing.B) {
		d := doc(b)
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			d.F.SetY(30)
			drawTimeline(d, chainTimeline(t0, chain, nil))
		}
	})
}
