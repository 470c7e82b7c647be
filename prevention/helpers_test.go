package prevention_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stopline/stopline/kinds/cel"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// kinds are the built-in kinds and CEL expressions.
var kinds = func() *prevention.Kinds {
	k, err := prevention.NewKinds(cel.Kind())
	if err != nil {
		panic(err)
	}
	return k
}()

// t0 is the start of every scripted run.
var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// thresholds used by most tests.
var testThresholds = snapshot.Thresholds{
	"max_tokens":           35,
	"max_cost_cents":       150,
	"max_steps":            3,
	"max_duration_seconds": 600,
	"max_steps_per_window": 3,
}

func policy(id, kind, params string) snapshot.Policy {
	return snapshot.Policy{ID: id, Kind: kind, Params: json.RawMessage(params)}
}

func newSnapshot(t testing.TB, th snapshot.Thresholds, ps ...snapshot.Policy) *snapshot.PolicySnapshot {
	t.Helper()
	if th == nil {
		th = testThresholds
	}
	snap, err := snapshot.New("acme", ps, th, t0)
	if err != nil {
		t.Fatalf("snapshot.New: %v", err)
	}
	return snap
}

func compile(t testing.TB, th snapshot.Thresholds, ps ...snapshot.Policy) *prevention.Engine {
	t.Helper()
	e, err := kinds.Compile(newSnapshot(t, th, ps...))
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return e
}

// stepSpec is one step of a scripted run.
type stepSpec struct {
	at     time.Duration // since the run's start
	typ    prevention.StepType
	tool   string
	output string
	tokens int64
	cost   float64
}

// script is a run of eight steps, 10 tokens and 25 cents each:
//
//	0 llm_response      at 0s
//	1 tool_call search  at 10s
//	2 tool_result       at 20s
//	3 llm_response      at 21s
//	4 tool_call calc.   at 22s
//	5 tool_result       at 23s, output holds an SSN
//	6 tool_call browser at 400s
//	7 tool_call shell   at 700s
var script = []stepSpec{
	{at: 0, typ: prevention.StepLLMResponse, output: "let me search", tokens: 10, cost: 25},
	{at: 10 * time.Second, typ: prevention.StepToolCall, tool: "search", tokens: 10, cost: 25},
	{at: 20 * time.Second, typ: prevention.StepToolResult, tool: "search", output: "3 results", tokens: 10, cost: 25},
	{at: 21 * time.Second, typ: prevention.StepLLMResponse, output: "now compute", tokens: 10, cost: 25},
	{at: 22 * time.Second, typ: prevention.StepToolCall, tool: "calculator", tokens: 10, cost: 25},
	{at: 23 * time.Second, typ: prevention.StepToolResult, tool: "calculator", output: "customer 123-45-6789", tokens: 10, cost: 25},
	{at: 400 * time.Second, typ: prevention.StepToolCall, tool: "browser", tokens: 10, cost: 25},
	{at: 700 * time.Second, typ: prevention.StepToolCall, tool: "shell", tokens: 10, cost: 25},
}

// runScript evaluates the steps in order, as the runner does, and returns
// the index of the step that stopped the run (-1 if none) and its
// evaluation.
func runScript(t testing.TB, e *prevention.Engine, specs []stepSpec) (int, prevention.Evaluation) {
	t.Helper()
	var (
		times  []int64
		tokens int64
		cost   float64
	)
	for i, sp := range specs {
		tokens += sp.tokens
		cost += sp.cost
		st := &prevention.Step{
			RunID: "run-1", TenantID: "acme", SnapshotID: e.Snapshot().ID(),
			Index: i, Type: sp.typ, At: t0.Add(sp.at), RunStartedAt: t0,
			Tool: sp.tool, Output: sp.output, Tokens: sp.tokens, CostCents: sp.cost,
			TotalTokens: tokens, TotalCostCents: cost,
		}
		st.SetStepTimes(times)
		ev, err := e.Evaluate(context.Background(), st)
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if ev.Decision.Action == prevention.Block {
			return i, ev
		}
		times = append(times, st.At.UnixNano())
	}
	return -1, prevention.Evaluation{}
}

// counter is a hook that allows every step and counts its calls.
type counter struct{ n int }

func (c *counter) Evaluate(context.Context, *prevention.Step) (prevention.Decision, error) {
	c.n++
	return prevention.Allowed(), nil
}
