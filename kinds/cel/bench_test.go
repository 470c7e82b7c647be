package cel_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	celgo "cel.dev/cel-go/cel"

	"github.com/stopline/stopline/kinds/cel"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

var benchT0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// benchExprs are 20 expressions over step, run and thresholds, all false
// on benchStep.
func benchExprs() []string {
	var out []string
	for i := range 20 {
		switch i % 4 {
		case 0:
			out = append(out, fmt.Sprintf("step.type == 'tool_call' && step.tool == 'shell%d'", i))
		case 1:
			out = append(out, fmt.Sprintf("run.total_cost_cents > thresholds.max_cost_cents + %d.0", i))
		case 2:
			out = append(out, fmt.Sprintf("step.tokens > %d && run.steps > 100", 1000+i))
		default:
			out = append(out, fmt.Sprintf("'env' in step.metadata && step.metadata.env == 'prod%d'", i))
		}
	}
	return out
}

func benchStep() *prevention.Step {
	st := &prevention.Step{
		RunID: "run-1", TenantID: "acme", SnapshotID: "SNAP-000000000000",
		Index: 10, Type: prevention.StepToolCall, Tool: "search",
		At: benchT0.Add(100 * time.Second), RunStartedAt: benchT0,
		Tokens: 500, CostCents: 1.5, TotalTokens: 5500, TotalCostCents: 16.5,
		Metadata: map[string]string{"env": "staging"},
	}
	return st
}

var benchThresholds = snapshot.Thresholds{"max_cost_cents": 1e9}

// BenchmarkTwentyExpressionsVsRawCEL alternates, in each iteration, one
// step evaluated by 20 expression policies through the engine and the
// same 20 programs evaluated by plain cel-go with one activation built
// for the step and shared by all of them: the floor. It reports both and
// their ratio (goal ≤ 1.5).
func BenchmarkTwentyExpressionsVsRawCEL(b *testing.B) {
	exprs := benchExprs()
	var ps []snapshot.Policy
	for i, e := range exprs {
		ps = append(ps, policy(fmt.Sprintf("p%02d", i), cel.KindName, fmt.Sprintf(`{"expr":%q}`, e)))
	}
	kinds, err := prevention.NewKinds(cel.Kind())
	if err != nil {
		b.Fatal(err)
	}
	snap, err := snapshot.New("acme", ps, benchThresholds, benchT0)
	if err != nil {
		b.Fatal(err)
	}
	eng, err := kinds.Compile(snap)
	if err != nil {
		b.Fatal(err)
	}

	env, err := celgo.NewEnv(
		celgo.Variable("step", celgo.MapType(celgo.StringType, celgo.DynType)),
		celgo.Variable("run", celgo.MapType(celgo.StringType, celgo.DynType)),
		celgo.Variable("thresholds", celgo.MapType(celgo.StringType, celgo.DoubleType)),
		celgo.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		b.Fatal(err)
	}
	var prgs []celgo.Program
	for _, e := range exprs {
		ast, iss := env.Compile(e)
		if iss.Err() != nil {
			b.Fatal(iss.Err())
		}
		prg, err := env.Program(ast, celgo.EvalOptions(celgo.OptOptimize))
		if err != nil {
			b.Fatal(err)
		}
		prgs = append(prgs, prg)
	}
	th := env.CELTypeAdapter().NativeToValue(map[string]float64(benchThresholds))
	ctx := context.Background()
	st := benchStep()
	raw := func() {
		act, _ := celgo.NewActivation(map[string]any{
			"step": map[string]any{
				"index": st.Index, "type": string(st.Type), "tool": st.Tool, "model": st.Model,
				"input": st.Input, "output": st.Output, "tokens": st.Tokens, "cost_cents": st.CostCents,
				"metadata": st.Metadata,
			},
			"run": map[string]any{
				"run_id": st.RunID, "tenant_id": st.TenantID, "snapshot_id": st.SnapshotID,
				"total_tokens": st.TotalTokens, "total_cost_cents": st.TotalCostCents,
				"steps": st.StepCount(), "elapsed_seconds": st.Elapsed().Seconds(),
			},
			"thresholds": th,
		})
		for _, p := range prgs {
			out, _, err := p.ContextEval(ctx, act)
			if err != nil || out.Value() != false {
				b.Fatalf("raw: %v %v", out, err)
			}
		}
	}
	governed := func() {
		ev, err := eng.Evaluate(ctx, st)
		if err != nil || ev.Decision.Action != prevention.Allow {
			b.Fatalf("engine: %v %v", ev.Decision, err)
		}
	}
	b.ReportAllocs()
	var rawNS, govNS time.Duration
	for b.Loop() {
		t := time.Now()
		raw()
		rawNS += time.Since(t)
		t = time.Now()
		governed()
		govNS += time.Since(t)
	}
	b.ReportMetric(float64(rawNS.Nanoseconds())/float64(b.N), "raw-ns/op")
	b.ReportMetric(float64(govNS.Nanoseconds())/float64(b.N), "governed-ns/op")
	b.ReportMetric(float64(govNS)/float64(rawNS), "ratio")
}
