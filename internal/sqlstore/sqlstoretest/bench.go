package sqlstoretest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// TwentyPolicies is a snapshot of 20 built-in non-text policies: budgets
// over tokens, cost and steps, rate limits, timeouts and tool lists, none
// of which a benchmark's steps reach.
func TwentyPolicies(tb testing.TB) *snapshot.PolicySnapshot {
	tb.Helper()
	var ps []string
	for i := 0; i < 4; i++ {
		ps = append(ps,
			fmt.Sprintf(`{"id":"tokens-%d","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}}`, i),
			fmt.Sprintf(`{"id":"cost-%d","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}}`, i),
			fmt.Sprintf(`{"id":"steps-%d","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}`, i),
			fmt.Sprintf(`{"id":"pace-%d","kind":"rate_limit","params":{"threshold":"max_steps_per_minute","window_seconds":60}}`, i),
			fmt.Sprintf(`{"id":"clock-%d","kind":"timeout","params":{"threshold":"max_duration_seconds"}}`, i))
	}
	ps[3] = `{"id":"tools","kind":"tool_allowlist","params":{"allow":["search","calculator"]}}`
	ps[4] = `{"id":"no-shell","kind":"tool_denylist","params":{"deny":["shell"]}}`
	doc := `{"tenant_id":"acme","thresholds":{"max_tokens":1e15,"max_cost_cents":1e15,"max_steps":1e15,` +
		`"max_steps_per_minute":1e15,"max_duration_seconds":1e15},"policies":[` + strings.Join(ps, ",") + `]}`
	snap, err := snapshot.Parse("bench.json", []byte(doc), time.Time{}, prevention.Builtin())
	if err != nil {
		tb.Fatal(err)
	}
	if snap.PolicyCount() != 20 {
		tb.Fatalf("%d policies", snap.PolicyCount())
	}
	return snap
}

// BenchStep is the step the governed-step benchmarks take: a tool call
// with a model, an input, tokens and a cost.
var BenchStep = governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Model: "gpt-4o-mini",
	Input: `{"q":"weather in Paris"}`, Tokens: 812, CostCents: 0.4}

// StartBenchRun starts a run of TwentyPolicies through a new Runner on st.
func StartBenchRun(tb testing.TB, st governance.Store) *governance.Run {
	tb.Helper()
	r, err := governance.NewRunner(st)
	if err != nil {
		tb.Fatal(err)
	}
	run, err := r.Start(context.Background(), governance.StartOptions{Snapshot: TwentyPolicies(tb)})
	if err != nil {
		tb.Fatal(err)
	}
	return run
}

// StepVsRaw runs b.N iterations of one raw insert and one governed step,
// timing each, so that both see the same disk, cache and write-ahead log
// growth, and reports raw-ns/op, governed-ns/op and their ratio, and the
// same from the median iteration of each (raw-p50-ns, governed-p50-ns,
// ratio-p50), which a burst of other work on a shared machine moves less.
func StepVsRaw(b *testing.B, raw func(*testing.B), run *governance.Run) {
	var rawNS, govNS time.Duration
	raws, govs := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		raw(b)
		t1 := time.Now()
		if _, err := run.Step(context.Background(), BenchStep); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		rawNS += t1.Sub(t0)
		govNS += t2.Sub(t1)
		raws, govs = append(raws, t1.Sub(t0)), append(govs, t2.Sub(t1))
	}
	b.ReportMetric(float64(rawNS.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(govNS.Nanoseconds())/float64(b.N), "governed-ns/op")
	b.ReportMetric(float64(govNS)/float64(rawNS), "ratio")
	rawP50, govP50 := Percentile(raws, 50), Percentile(govs, 50)
	b.ReportMetric(float64(rawP50.Nanoseconds()), "raw-p50-ns")
	b.ReportMetric(float64(govP50.Nanoseconds()), "governed-p50-ns")
	b.ReportMetric(float64(govP50)/float64(rawP50), "ratio-p50")
}

// Percentile returns the p-th percentile (0-100, nearest rank) of ds,
// which it sorts; 0 for none.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(math.Ceil(p/100*float64(len(ds)))) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// LogAppendVsStep measures what the tenant log adds to ending a run: in
// each iteration it starts (untimed) one run on withLog and one on
// withoutLog (stores alike but for the tenant log, on files or databases
// of their own), then times Finish on each (CloseRun with and without
// the append, in the same transaction) and one governed step of step (the
// 20 policies), alternating, so that all three see the same disk and
// cache. It reports each, the append (the difference of the two ends)
// and the append over a step: the goal is ≤ 0.05. It reports the same of
// the medians (-p50).
func LogAppendVsStep(b *testing.B, step *governance.Run, withLog, withoutLog governance.Store) {
	ctx := context.Background()
	snap := TwentyPolicies(b)
	runners := make([]*governance.Runner, 2)
	for i, st := range []governance.Store{withLog, withoutLog} {
		r, err := governance.NewRunner(st)
		if err != nil {
			b.Fatal(err)
		}
		runners[i] = r
	}
	var with, without, steps time.Duration
	ws, wos, ss := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		var runs [2]*governance.Run
		b.StopTimer()
		for k, r := range runners {
			run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
			if err != nil {
				b.Fatal(err)
			}
			runs[k] = run
		}
		b.StartTimer()
		// Alternate which end goes first.
		order := [2]int{0, 1}
		if i%2 == 1 {
			order = [2]int{1, 0}
		}
		for _, k := range order {
			t0 := time.Now()
			if _, err := runs[k].Finish(ctx); err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			if k == 0 {
				with, ws = with+d, append(ws, d)
			} else {
				without, wos = without+d, append(wos, d)
			}
		}
		t0 := time.Now()
		if _, err := step.Step(ctx, BenchStep); err != nil {
			b.Fatal(err)
		}
		d := time.Since(t0)
		steps, ss = steps+d, append(ss, d)
	}
	n := float64(b.N)
	b.ReportMetric(float64(with.Nanoseconds())/n, "close-with-log-ns/op")
	b.ReportMetric(float64(without.Nanoseconds())/n, "close-without-log-ns/op")
	b.ReportMetric(float64(steps.Nanoseconds())/n, "step-ns/op")
	b.ReportMetric(float64((with-without).Nanoseconds())/n, "append-ns/op")
	b.ReportMetric(float64(with-without)/float64(steps), "append/step")
	// Medians, which bursts of other work on a shared machine move less.
	wp, wop, sp := Percentile(ws, 50), Percentile(wos, 50), Percentile(ss, 50)
	b.ReportMetric(float64(wp.Nanoseconds()), "close-with-log-p50-ns")
	b.ReportMetric(float64(wop.Nanoseconds()), "close-without-log-p50-ns")
	b.ReportMetric(float64(sp.Nanoseconds()), "step-p50-ns")
	b.ReportMetric(float64(wp-wop)/float64(sp), "append/step-p50")
}
