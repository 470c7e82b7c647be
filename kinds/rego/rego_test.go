package rego_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/kinds/rego"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

var thresholds = snapshot.Thresholds{"max_tokens": 1000, "max_cost_cents": 2.5}

// params returns the JSON params of a rego policy with the given module
// and extra params.
func params(t testing.TB, module string, extra map[string]string) string {
	t.Helper()
	m := map[string]string{"module": module}
	for k, v := range extra {
		m[k] = v
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func compile(t testing.TB, id, params string) *prevention.Engine {
	t.Helper()
	kinds, err := prevention.NewKinds(rego.Kind())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.New("acme", []snapshot.Policy{{ID: id, Kind: rego.KindName, Params: json.RawMessage(params)}}, thresholds, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	e, err := kinds.Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// compileErr compiles a rego policy that must not compile and returns the
// field its error names.
func compileErr(t *testing.T, params string) (*snapshot.ValidationError, error) {
	t.Helper()
	kinds, err := prevention.NewKinds(rego.Kind())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.New("acme", []snapshot.Policy{{ID: "p", Kind: rego.KindName, Params: json.RawMessage(params)}}, thresholds, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	_, err = kinds.Compile(snap)
	var ve *snapshot.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Compile error %v, want a *snapshot.ValidationError", err)
	}
	return ve, err
}

func evaluate(t *testing.T, e *prevention.Engine, s *prevention.Step) prevention.Decision {
	t.Helper()
	ev, err := e.Evaluate(context.Background(), s)
	if err != nil {
		t.Fatalf("Evaluate(%+v): %v", s, err)
	}
	return ev.Decision
}

const noShell = `package stopline

deny contains msg if {
	input.step.type == "tool_call"
	input.step.tool == "shell"
	msg := "no shell"
}
`

// TestConditionalDeny checks that a deny rule with conditions blocks
// exactly the steps on which all of them hold: a rule's body is
// evaluated, not dropped, so the kind neither blocks everything nor fails
// open.
func TestConditionalDeny(t *testing.T) {
	e := compile(t, "no-shell", params(t, noShell, nil))
	for _, tc := range []struct {
		step  prevention.Step
		block bool
	}{
		{prevention.Step{Type: prevention.StepToolCall, Tool: "shell"}, true},
		{prevention.Step{Type: prevention.StepToolCall, Tool: "search"}, false},
		{prevention.Step{Type: prevention.StepToolResult, Tool: "shell"}, false},
		{prevention.Step{Type: prevention.StepLLMResponse, Model: "shell"}, false},
		{prevention.Step{Type: prevention.StepMessage}, false},
	} {
		d := evaluate(t, e, &tc.step)
		if got := d.Action == prevention.Block; got != tc.block {
			t.Errorf("%s %q: decision %v, want block=%v", tc.step.Type, tc.step.Tool, d, tc.block)
			continue
		}
		if tc.block && (d.PolicyID != "no-shell" || d.Reason != prevention.ReasonPolicyBlock || d.Message != "no shell") {
			t.Errorf("block decision %+v, want no-shell, policy_block, message \"no shell\"", d)
		}
	}
}

// TestInputDocument checks that every documented key of the input holds
// the step's, the run's and the snapshot's values.
func TestInputDocument(t *testing.T) {
	module := `package stopline

deny contains "step" if {
	input.step.index == 4
	input.step.type == "llm_response"
	input.step.tool == ""
	input.step.model == "gpt"
	input.step.input == "in"
	input.step.output == "out"
	input.step.tokens == 700
	input.step.cost_cents == 1.25
	input.step.metadata.env == "prod"
}

deny contains "run" if {
	input.run.run_id == "r1"
	input.run.tenant_id == "acme"
	input.run.snapshot_id == "s1"
	input.run.total_tokens == 1200
	input.run.total_cost_cents == 3.5
	input.run.steps == 5
	input.run.elapsed_seconds == 90.5
}

deny contains "thresholds" if {
	input.run.total_tokens > input.thresholds.max_tokens
	input.run.total_cost_cents > input.thresholds.max_cost_cents
}
`
	e := compile(t, "all", params(t, module, nil))
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := &prevention.Step{
		RunID: "r1", TenantID: "acme", SnapshotID: "s1", Index: 4, Type: prevention.StepLLMResponse,
		At: start.Add(90500 * time.Millisecond), RunStartedAt: start, Model: "gpt", Input: "in", Output: "out",
		Tokens: 700, CostCents: 1.25, TotalTokens: 1200, TotalCostCents: 3.5, Metadata: map[string]string{"env": "prod"},
	}
	if d := evaluate(t, e, s); d.Action != prevention.Block || d.Message != "run; step; thresholds" {
		t.Fatalf("decision %v, want a block with message \"run; step; thresholds\"", d)
	}
	// A metadata key the step lacks is undefined: the rule does not hold.
	s.Metadata = nil
	if d := evaluate(t, e, s); d.Message != "run; thresholds" {
		t.Fatalf("without metadata: decision %v, want message \"run; thresholds\"", d)
	}
}

// TestMultipleMessages checks that every message of the deny set is in
// the decision, sorted, and that an empty set allows.
func TestMultipleMessages(t *testing.T) {
	module := `package stopline

deny contains sprintf("metadata %s is set", [k]) if {
	some k, _ in input.step.metadata
	startswith(k, "secret")
}

deny contains "too many tokens" if input.step.tokens > 100
`
	e := compile(t, "multi", params(t, module, nil))
	d := evaluate(t, e, &prevention.Step{Type: prevention.StepMessage, Tokens: 101,
		Metadata: map[string]string{"secret_b": "x", "secret_a": "y", "public": "z"}})
	if want := "metadata secret_a is set; metadata secret_b is set; too many tokens"; d.Action != prevention.Block || d.Message != want {
		t.Fatalf("decision %v, want a block with message %q", d, want)
	}
	if d := evaluate(t, e, &prevention.Step{Type: prevention.StepMessage, Metadata: map[string]string{"public": "z"}}); d.Action != prevention.Allow {
		t.Fatalf("decision %v, want allow", d)
	}
}

// TestExplicitQueryAndReason checks a query naming another rule and
// another package, and the reason a Block carries.
func TestExplicitQueryAndReason(t *testing.T) {
	module := `package acme.guard

violations contains "over budget" if input.run.total_tokens > input.thresholds.max_tokens
`
	e := compile(t, "budget", params(t, module, map[string]string{"query": "data.acme.guard.violations", "reason": "budget_exceeded"}))
	d := evaluate(t, e, &prevention.Step{Type: prevention.StepMessage, TotalTokens: 1001})
	if d.Action != prevention.Block || d.Reason != prevention.ReasonBudgetExceeded || d.Message != "over budget" {
		t.Fatalf("decision %+v, want a budget_exceeded block", d)
	}
	if d := evaluate(t, e, &prevention.Step{Type: prevention.StepMessage, TotalTokens: 1000}); d.Action != prevention.Allow {
		t.Fatalf("decision %v at the limit, want allow", d)
	}
}

// TestDefaultQueryFollowsThePackage checks that the default query is the
// deny rule of the module's own package, and that a deny that is an
// array of strings is read as a set of messages.
func TestDefaultQueryFollowsThePackage(t *testing.T) {
	module := `package acme.agents.guard

deny := ["b", "a"] if input.step.type == "message"
`
	e := compile(t, "arr", params(t, module, nil))
	if d := evaluate(t, e, &prevention.Step{Type: prevention.StepMessage}); d.Action != prevention.Block || d.Message != "a; b" {
		t.Fatalf("decision %v, want a block with message \"a; b\"", d)
	}
	if d := evaluate(t, e, &prevention.Step{Type: prevention.StepToolCall, Tool: "x"}); d.Action != prevention.Allow {
		t.Fatalf("decision %v on an undefined deny, want allow", d)
	}
}

// TestHelperRulesAndFunctions checks that a module's own helper rules and
// functions, referred to by name or through data, are evaluated.
func TestHelperRulesAndFunctions(t *testing.T) {
	module := `package stopline

allowed := {"search", "calculator"}

risky(tool) if startswith(tool, "sudo_")

deny contains sprintf("tool %s is not allowed", [input.step.tool]) if {
	input.step.type == "tool_call"
	not allowed[input.step.tool]
	not risky(input.step.tool)
}

deny contains "risky tool" if {
	input.step.type == "tool_call"
	data.stopline.risky(input.step.tool)
}
`
	e := compile(t, "helpers", params(t, module, nil))
	for _, tc := range []struct{ tool, msg string }{
		{"search", ""},
		{"shell", "tool shell is not allowed"},
		{"sudo_rm", "risky tool"},
	} {
		d := evaluate(t, e, &prevention.Step{Type: prevention.StepToolCall, Tool: tc.tool})
		if (d.Action == prevention.Block) != (tc.msg != "") || d.Message != tc.msg {
			t.Errorf("tool %s: decision %v, want message %q", tc.tool, d, tc.msg)
		}
	}
}

// TestEvaluationErrorFailsClosed checks that a step on which the query
// cannot be evaluated is a failed check, never an allow.
func TestEvaluationErrorFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name, module, want string
	}{
		{"builtin error", `package stopline

deny contains "too large" if to_number(input.step.input) > 10
`, "to_number"},
		{"conflicting values", `package stopline

mode := "a" if input.step.tokens > 0
mode := "b" if input.step.tokens > 1

deny contains mode if input.step.type == "message"
`, "conflict"},
		{"not a set", `package stopline

deny := {"msg": "x"} if input.step.type == "message"
`, "an object"},
		{"not strings", `package stopline

deny contains input.step.tokens if input.step.type == "message"
`, "a number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := compile(t, "bad", params(t, tc.module, nil))
			_, err := e.Evaluate(context.Background(), &prevention.Step{Type: prevention.StepMessage, Tokens: 5, Input: "not a number"})
			var he *prevention.HookError
			if !errors.As(err, &he) || he.PolicyID != "bad" || he.Source != prevention.SourcePolicy {
				t.Fatalf("Evaluate error %v, want a *HookError of policy bad", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestHonoursContext checks that an ended context fails the check, both
// before evaluation and during a long one.
func TestHonoursContext(t *testing.T) {
	module := `package stopline

deny contains "never" if {
	count([x | some a in numbers.range(1, 3000); some b in numbers.range(1, 3000); x := a * b]) < 0
}
`
	e := compile(t, "slow", params(t, module, nil))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.Evaluate(ctx, &prevention.Step{Type: prevention.StepMessage})
	if !errors.Is(err, prevention.ErrHookFailed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: Evaluate error %v, want ErrHookFailed and context.Canceled", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = e.Evaluate(ctx, &prevention.Step{Type: prevention.StepMessage})
	if !errors.Is(err, prevention.ErrHookFailed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("deadline: Evaluate error %v, want ErrHookFailed and context.DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("evaluation went on %v after its deadline", took)
	}
}

// TestCompileErrorsNameTheField checks that every problem with a rego
// policy is found when it is compiled and names the param it is in.
func TestCompileErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, params, field, want string
	}{
		{"missing module", `{}`, "params.module", "missing"},
		{"empty module", `{"module": "  "}`, "params.module", "missing"},
		{"unknown param", params(t, noShell, map[string]string{"qurey": "data.stopline.deny"}), "params.qurey", ""},
		{"syntax error", params(t, "package stopline\n\ndeny contains msg if {\n\tinput.step.tool ==\n}\n", nil), "params.module", "line 5"},
		{"v0 syntax", params(t, "package stopline\n\ndeny[msg] { msg := \"x\" }\n", nil), "params.module", "rego_parse_error"},
		{"unsafe variable", params(t, "package stopline\n\ndeny contains msg if input.step.tool == \"shell\"\n", nil), "params.module", "unsafe"},
		{"unknown step key", params(t, "package stopline\n\ndeny contains \"x\" if input.step.tokenz > 5\n", nil), "params.module", "tokenz"},
		{"unknown threshold", params(t, "package stopline\n\ndeny contains \"x\" if input.run.total_tokens > input.thresholds.max_tokenz\n", nil), "params.module", "max_tokenz"},
		{"data outside the module", params(t, "package stopline\n\nimport data.other\n\ndeny contains \"x\" if other.blocked[input.step.tool]\n", nil), "params.module", "data.other.blocked"},
		{"misspelt rule", params(t, "package stopline\n\nallowed := {\"search\"}\n\ndeny contains \"x\" if data.stopline.alowed[input.step.tool]\n", nil), "params.module", "data.stopline.alowed"},
		{"network builtin", params(t, "package stopline\n\ndeny contains \"x\" if http.send({\"method\": \"get\", \"url\": \"http://127.0.0.1\"}).status_code == 200\n", nil), "params.module", "http.send"},
		{"no deny rule", params(t, "package stopline\n\nviolations contains \"x\" if input.step.tokens > 5\n", nil), "params.module", "has no rule deny"},
		{"query names no rule", params(t, noShell, map[string]string{"query": "data.stopline.violations"}), "params.query", "names no rule"},
		{"query names a package", params(t, noShell, map[string]string{"query": "data.stopline"}), "params.query", "names no rule"},
		{"query is not a reference", params(t, noShell, map[string]string{"query": "count(data.stopline.deny) > 0"}), "params.query", "not a reference"},
		{"query outside data", params(t, noShell, map[string]string{"query": "input.step"}), "params.query", "not a reference"},
		{"boolean rule", params(t, "package stopline\n\ndeny if input.step.tool == \"shell\"\n", nil), "params.module", "boolean"},
		{"bad reason", params(t, noShell, map[string]string{"reason": "completed"}), "params.reason", "completed"},
		{"unknown reason", params(t, noShell, map[string]string{"reason": "nope"}), "params.reason", "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ve, err := compileErr(t, tc.params)
			if ve.PolicyID != "p" || ve.Field != tc.field {
				t.Fatalf("error %v names policy %q field %q, want p %s", err, ve.PolicyID, ve.Field, tc.field)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestConcurrentEvaluation checks that one compiled policy evaluates
// steps of many runs at once (run with -race).
func TestConcurrentEvaluation(t *testing.T) {
	e := compile(t, "no-shell", params(t, noShell, nil))
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				tool := "search"
				if (g+i)%2 == 0 {
					tool = "shell"
				}
				ev, err := e.Evaluate(context.Background(), &prevention.Step{Type: prevention.StepToolCall, Tool: tool, Index: i})
				if err != nil {
					t.Error(err)
					return
				}
				if got, want := ev.Decision.Action == prevention.Block, tool == "shell"; got != want {
					t.Errorf("tool %s: decision %v", tool, ev.Decision)
					return
				}
			}
		})
	}
	wg.Wait()
}
