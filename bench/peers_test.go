package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	celgo "cel.dev/cel-go/cel"
	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// The 20 rules: seven kinds of rule, as teams write them, each with its
// own threshold (so no engine can share work between two of them):
//
//	tokens    the run's total tokens over a limit
//	cost      the run's total cost over a limit
//	steps     the run's step count over a limit
//	rate      steps in the trailing 60 s over a limit
//	timeout   seconds since the run started over a limit
//	allow     a tool call to a tool outside {search, calculator, browser}
//	deny      a tool call to shell or exec
//
// Every rule allows benchStep, so each engine evaluates all twenty.
type rule struct{ kind, threshold string }

func rules() []rule {
	kinds := []string{"tokens", "cost", "steps", "rate", "timeout", "allow", "deny"}
	out := make([]rule, 20)
	for i := range out {
		out[i] = rule{kind: kinds[i%len(kinds)], threshold: fmt.Sprintf("t%02d", i)}
	}
	return out
}

// thresholds are far above benchStep's values, each a little different.
func thresholds() map[string]float64 {
	th := map[string]float64{}
	for i, r := range rules() {
		th[r.threshold] = 1e6 + float64(i)
	}
	return th
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// benchStep is step 10 of a run, a tool call 100 s in, after ten steps
// 10 s apart: six of them in the last 60 s.
func benchStep() *prevention.Step {
	times := make([]int64, 10)
	for i := range times {
		times[i] = t0.Add(time.Duration(i) * 10 * time.Second).UnixNano()
	}
	st := &prevention.Step{
		RunID: "run-1", TenantID: "acme", SnapshotID: "SNAP-000000000000",
		Index: 10, Type: prevention.StepToolCall, Tool: "search",
		At: t0.Add(100 * time.Second), RunStartedAt: t0,
		Tokens: 500, CostCents: 1.5, TotalTokens: 5500, TotalCostCents: 16.5,
	}
	st.SetStepTimes(times)
	return st
}

// engine evaluates one step against the 20 rules; it returns whether any
// rule fired.
type engine struct {
	name string
	eval func(ctx context.Context, st *prevention.Step) (bool, error)
}

func stoplineEngine(tb testing.TB) engine {
	var ps []snapshot.Policy
	for i, r := range rules() {
		var kind, params string
		switch r.kind {
		case "tokens", "cost", "steps":
			metric := map[string]string{"tokens": "tokens", "cost": "cost_cents", "steps": "steps"}[r.kind]
			kind, params = "budget", fmt.Sprintf(`{"metric":%q,"threshold":%q}`, metric, r.threshold)
		case "rate":
			kind, params = "rate_limit", fmt.Sprintf(`{"threshold":%q,"window_seconds":60}`, r.threshold)
		case "timeout":
			kind, params = "timeout", fmt.Sprintf(`{"threshold":%q}`, r.threshold)
		case "allow":
			kind, params = "tool_allowlist", `{"allow":["search","calculator","browser"]}`
		case "deny":
			kind, params = "tool_denylist", `{"deny":["shell","exec"]}`
		}
		ps = append(ps, snapshot.Policy{ID: fmt.Sprintf("p%02d", i), Kind: kind, Params: json.RawMessage(params)})
	}
	snap, err := snapshot.New("acme", ps, thresholds(), t0)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := prevention.Builtin().Compile(snap)
	if err != nil {
		tb.Fatal(err)
	}
	return engine{"stopline", func(ctx context.Context, st *prevention.Step) (bool, error) {
		ev, err := e.Evaluate(ctx, st)
		return ev.Decision.Action == prevention.Block, err
	}}
}

// The other engines get the facts the rules read as their input: the
// step, the run's totals, the steps in the last 60 s (counted by the
// caller, as an integration would) and the thresholds.

func celEngine(tb testing.TB) engine {
	env, err := celgo.NewEnv(
		celgo.Variable("step", celgo.MapType(celgo.StringType, celgo.DynType)),
		celgo.Variable("run", celgo.MapType(celgo.StringType, celgo.DynType)),
		celgo.Variable("thresholds", celgo.MapType(celgo.StringType, celgo.DoubleType)),
		celgo.CrossTypeNumericComparisons(true),
	)
	if err != nil {
		tb.Fatal(err)
	}
	var prgs []celgo.Program
	for _, r := range rules() {
		var expr string
		th := "thresholds." + r.threshold
		switch r.kind {
		case "tokens":
			expr = "run.total_tokens > " + th
		case "cost":
			expr = "run.total_cost_cents > " + th
		case "steps":
			expr = "run.steps > " + th
		case "rate":
			expr = "run.steps_in_window > " + th
		case "timeout":
			expr = "run.elapsed_seconds > " + th
		case "allow":
			expr = "step.type == 'tool_call' && !(step.tool in ['search', 'calculator', 'browser'])"
		case "deny":
			expr = "step.type == 'tool_call' && step.tool in ['shell', 'exec']"
		}
		ast, iss := env.Compile(expr)
		if iss.Err() != nil {
			tb.Fatal(iss.Err())
		}
		prg, err := env.Program(ast, celgo.EvalOptions(celgo.OptOptimize))
		if err != nil {
			tb.Fatal(err)
		}
		prgs = append(prgs, prg)
	}
	th := env.CELTypeAdapter().NativeToValue(thresholds())
	return engine{"cel-go", func(ctx context.Context, st *prevention.Step) (bool, error) {
		act, err := celgo.NewActivation(map[string]any{
			"step": map[string]any{"type": string(st.Type), "tool": st.Tool, "index": st.Index},
			"run": map[string]any{
				"total_tokens": st.TotalTokens, "total_cost_cents": st.TotalCostCents, "steps": st.StepCount(),
				"steps_in_window": st.StepsInWindow(60 * time.Second), "elapsed_seconds": st.Elapsed().Seconds(),
			},
			"thresholds": th,
		})
		if err != nil {
			return false, err
		}
		fired := false
		for _, p := range prgs {
			out, _, err := p.ContextEval(ctx, act)
			if err != nil {
				return false, err
			}
			fired = fired || out.Value() == true
		}
		return fired, nil
	}}
}

func opaEngine(tb testing.TB) engine {
	var b strings.Builder
	b.WriteString("package bench\n\n")
	for _, r := range rules() {
		th := "input.thresholds." + r.threshold
		var cond string
		switch r.kind {
		case "tokens":
			cond = "input.run.total_tokens > " + th
		case "cost":
			cond = "input.run.total_cost_cents > " + th
		case "steps":
			cond = "input.run.steps > " + th
		case "rate":
			cond = "input.run.steps_in_window > " + th
		case "timeout":
			cond = "input.run.elapsed_seconds > " + th
		case "allow":
			cond = "input.step.type == \"tool_call\"\n\tnot input.step.tool in {\"search\", \"calculator\", \"browser\"}"
		case "deny":
			cond = "input.step.type == \"tool_call\"\n\tinput.step.tool in {\"shell\", \"exec\"}"
		}
		fmt.Fprintf(&b, "deny contains %q if {\n\t%s\n}\n\n", r.threshold, cond)
	}
	pq, err := rego.New(rego.Query("data.bench.deny"), rego.Module("bench.rego", b.String()),
		rego.SetRegoVersion(ast.RegoV1)).PrepareForEval(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	th := map[string]any{}
	for k, v := range thresholds() {
		th[k] = v
	}
	return engine{"opa", func(ctx context.Context, st *prevention.Step) (bool, error) {
		input := map[string]any{
			"step": map[string]any{"type": string(st.Type), "tool": st.Tool, "index": st.Index},
			"run": map[string]any{
				"total_tokens": st.TotalTokens, "total_cost_cents": st.TotalCostCents, "steps": st.StepCount(),
				"steps_in_window": st.StepsInWindow(60 * time.Second), "elapsed_seconds": st.Elapsed().Seconds(),
			},
			"thresholds": th,
		}
		rs, err := pq.Eval(ctx, rego.EvalInput(input))
		if err != nil {
			return false, err
		}
		if len(rs) != 1 || len(rs[0].Expressions) != 1 {
			return false, fmt.Errorf("opa: result %v", rs)
		}
		set, ok := rs[0].Expressions[0].Value.([]any)
		if !ok {
			return false, fmt.Errorf("opa: deny is %T", rs[0].Expressions[0].Value)
		}
		return len(set) > 0, nil
	}}
}

// cedarEngine: the run is the principal (with its totals), the step type
// the action, the tool the resource; cedar Longs, so costs and seconds are
// in millionths and the thresholds too. Only forbid decides: the set
// permits everything else.
func cedarEngine(tb testing.TB) engine {
	var b strings.Builder
	b.WriteString("permit(principal, action, resource);\n")
	for _, r := range rules() {
		th := "context.thresholds." + r.threshold
		var cond string
		switch r.kind {
		case "tokens":
			cond = "principal.total_tokens > " + th
		case "cost":
			cond = "principal.total_cost_micro > " + th + " * 1000000"
		case "steps":
			cond = "principal.steps > " + th
		case "rate":
			cond = "principal.steps_in_window > " + th
		case "timeout":
			cond = "principal.elapsed_micro > " + th + " * 1000000"
		case "allow":
			cond = `action == Action::"tool_call" && !(resource in [Tool::"search", Tool::"calculator", Tool::"browser"])`
		case "deny":
			cond = `action == Action::"tool_call" && resource in [Tool::"shell", Tool::"exec"]`
		}
		fmt.Fprintf(&b, "@id(%q)\nforbid(principal, action, resource) when { %s };\n", r.threshold, cond)
	}
	ps, err := cedar.NewPolicySetFromBytes("bench.cedar", []byte(b.String()))
	if err != nil {
		tb.Fatal(err)
	}
	thm := types.RecordMap{}
	for k, v := range thresholds() {
		thm[types.String(k)] = types.Long(v)
	}
	th := types.NewRecord(thm)
	return engine{"cedar-go", func(ctx context.Context, st *prevention.Step) (bool, error) {
		run := types.Entity{
			UID: types.NewEntityUID("Run", types.String(st.RunID)),
			Attributes: types.NewRecord(types.RecordMap{
				"total_tokens":     types.Long(st.TotalTokens),
				"total_cost_micro": types.Long(st.TotalCostCents * 1e6),
				"steps":            types.Long(st.StepCount()),
				"steps_in_window":  types.Long(st.StepsInWindow(60 * time.Second)),
				"elapsed_micro":    types.Long(st.Elapsed() / time.Microsecond),
			}),
		}
		entities := types.EntityMap{run.UID: run}
		req := types.Request{
			Principal: run.UID,
			Action:    types.NewEntityUID("Action", types.String(st.Type)),
			Resource:  types.NewEntityUID("Tool", types.String(st.Tool)),
			Context:   types.NewRecord(types.RecordMap{"thresholds": th}),
		}
		d, diag := cedar.Authorize(ps, entities, req)
		if len(diag.Errors) > 0 {
			return false, fmt.Errorf("cedar: %v", diag.Errors)
		}
		return d != cedar.Allow, nil
	}}
}

func engines(tb testing.TB) []engine {
	return []engine{stoplineEngine(tb), celEngine(tb), cedarEngine(tb), opaEngine(tb)}
}

// TestEnginesAgree: the four engines read the 20 rules the same way: all
// allow benchStep, and each rule kind fires in each engine on a step that
// breaks it.
func TestEnginesAgree(t *testing.T) {
	ctx := context.Background()
	es := engines(t)
	for _, e := range es {
		fired, err := e.eval(ctx, benchStep())
		if err != nil || fired {
			t.Errorf("%s on benchStep: fired %v, error %v", e.name, fired, err)
		}
	}
	breakers := map[string]func(*prevention.Step){
		"tokens":  func(s *prevention.Step) { s.TotalTokens = 2e6 },
		"cost":    func(s *prevention.Step) { s.TotalCostCents = 2e6 },
		"steps":   func(s *prevention.Step) { s.Index = 2e6 },
		"timeout": func(s *prevention.Step) { s.At = s.RunStartedAt.Add(2e6 * time.Second) },
		"allow":   func(s *prevention.Step) { s.Tool = "browser2" },
		"deny":    func(s *prevention.Step) { s.Tool = "shell" },
	}
	for kind, breakIt := range breakers {
		for _, e := range es {
			st := benchStep()
			breakIt(st)
			fired, err := e.eval(ctx, st)
			if err != nil || !fired {
				t.Errorf("%s, rule %s broken: fired %v, error %v", e.name, kind, fired, err)
			}
		}
	}
}

// BenchmarkTwentyRules evaluates benchStep against the same 20 rules in
// each engine, interleaved in every iteration so that all share the
// machine's state, and reports each engine's ns per step and its ratio to
// stopline's (opa/stopline = 79 means OPA takes 79 times as long).
func BenchmarkTwentyRules(b *testing.B) {
	ctx := context.Background()
	es := engines(b)
	st := benchStep()
	spent := make([]time.Duration, len(es))
	b.ReportAllocs()
	for b.Loop() {
		for i, e := range es {
			start := time.Now()
			if fired, err := e.eval(ctx, st); err != nil || fired {
				b.Fatalf("%s: fired %v, error %v", e.name, fired, err)
			}
			spent[i] += time.Since(start)
		}
	}
	for i, e := range es {
		b.ReportMetric(float64(spent[i].Nanoseconds())/float64(b.N), e.name+"-ns/op")
		if i > 0 {
			b.ReportMetric(float64(spent[i])/float64(spent[0]), e.name+"/stopline")
		}
	}
}

// BenchmarkEngine measures each engine alone, with its allocations.
func BenchmarkEngine(b *testing.B) {
	ctx := context.Background()
	for _, e := range engines(b) {
		b.Run(e.name, func(b *testing.B) {
			st := benchStep()
			b.ReportAllocs()
			for b.Loop() {
				if fired, err := e.eval(ctx, st); err != nil || fired {
					b.Fatalf("%s: fired %v, error %v", e.name, fired, err)
				}
			}
		})
	}
}
