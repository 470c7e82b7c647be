package cedar_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/kinds/cedar"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

var thresholds = snapshot.Thresholds{"max_tokens": 1000, "max_cost_cents": 150, "max_ratio": 0.5}

// params returns the JSON params of a cedar policy with the given text
// and extra params.
func params(t testing.TB, policies string, extra map[string]string) string {
	t.Helper()
	m := map[string]string{"policies": policies}
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
	kinds, err := prevention.NewKinds(cedar.Kind())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.New("acme", []snapshot.Policy{{ID: id, Kind: cedar.KindName, Params: json.RawMessage(params)}}, thresholds, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	e, err := kinds.Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func evaluate(t *testing.T, e *prevention.Engine, s *prevention.Step) prevention.Decision {
	t.Helper()
	ev, err := e.Evaluate(context.Background(), s)
	if err != nil {
		t.Fatalf("Evaluate(%+v): %v", s, err)
	}
	return ev.Decision
}

type stepCase struct {
	name  string
	step  prevention.Step
	block bool
}

func run(t *testing.T, e *prevention.Engine, cases []stepCase) {
	t.Helper()
	for _, tc := range cases {
		d := evaluate(t, e, &tc.step)
		if got := d.Action == prevention.Block; got != tc.block {
			t.Errorf("%s: decision %v, want block=%v", tc.name, d, tc.block)
		}
	}
}

const noShell = `@id("no-shell")
@message("shell is not allowed")
forbid(principal, action == Action::"tool_call", resource)
when { context.tool == "shell" };
`

// TestForbidWhen checks that a forbid with a when clause blocks exactly
// the steps on which its condition holds: the clause is evaluated, not
// dropped, so the kind neither blocks every tool call nor fails open.
func TestForbidWhen(t *testing.T) {
	e := compile(t, "guard", params(t, noShell, nil))
	run(t, e, []stepCase{
		{"shell call", prevention.Step{Type: prevention.StepToolCall, Tool: "shell"}, true},
		{"search call", prevention.Step{Type: prevention.StepToolCall, Tool: "search"}, false},
		{"shell result", prevention.Step{Type: prevention.StepToolResult, Tool: "shell"}, false},
		{"llm response", prevention.Step{Type: prevention.StepLLMResponse, Model: "m"}, false},
		{"message", prevention.Step{Type: prevention.StepMessage}, false},
	})
	d := evaluate(t, e, &prevention.Step{Type: prevention.StepToolCall, Tool: "shell"})
	if d.PolicyID != "guard" || d.Reason != prevention.ReasonPolicyBlock || d.Message != "forbidden by no-shell: shell is not allowed" {
		t.Fatalf("decision %+v, want guard, policy_block, \"forbidden by no-shell: shell is not allowed\"", d)
	}
}

// TestEntities checks the principal, action and resource of each kind
// of step, the resource fallback included.
func TestEntities(t *testing.T) {
	e := compile(t, "scopes", params(t, `
forbid(principal, action == Action::"tool_call", resource == Tool::"exec");
forbid(principal, action in [Action::"tool_result", Action::"tool_call"], resource == Tool::"rm");
forbid(principal, action == Action::"llm_response", resource == Model::"banned-model");
forbid(principal, action == Action::"message", resource == Step::"2");
forbid(principal == Run::"r-bad", action, resource is Tool);
forbid(principal, action, resource) when { resource is Model && context.model like "experimental-*" };
`, nil))
	run(t, e, []stepCase{
		{"exec call", prevention.Step{RunID: "r1", Type: prevention.StepToolCall, Tool: "exec"}, true},
		{"exec result", prevention.Step{RunID: "r1", Type: prevention.StepToolResult, Tool: "exec"}, false},
		{"rm result", prevention.Step{RunID: "r1", Type: prevention.StepToolResult, Tool: "rm"}, true},
		{"banned model", prevention.Step{RunID: "r1", Type: prevention.StepLLMResponse, Model: "banned-model"}, true},
		{"other model", prevention.Step{RunID: "r1", Type: prevention.StepLLMResponse, Model: "gpt"}, false},
		{"experimental model", prevention.Step{RunID: "r1", Type: prevention.StepLLMResponse, Model: "experimental-7"}, true},
		{"message 2", prevention.Step{RunID: "r1", Type: prevention.StepMessage, Index: 2}, true},
		{"message 3", prevention.Step{RunID: "r1", Type: prevention.StepMessage, Index: 3}, false},
		{"bad run's tool", prevention.Step{RunID: "r-bad", Type: prevention.StepToolCall, Tool: "search"}, true},
		{"bad run's message", prevention.Step{RunID: "r-bad", Type: prevention.StepMessage}, false},
	})
}

// TestUnlessAndWhenOnContext checks unless and when clauses over context
// attributes and metadata guarded with has.
func TestUnlessAndWhenOnContext(t *testing.T) {
	e := compile(t, "prod", params(t, `
@id("prod-needs-ticket")
forbid(principal, action == Action::"tool_call", resource)
when { context.metadata has env && context.metadata.env == "prod" }
unless { context.metadata has ticket };

@id("no-secrets-out")
forbid(principal, action, resource)
when { context.output like "*BEGIN PRIVATE KEY*" };
`, nil))
	call := func(md map[string]string) prevention.Step {
		return prevention.Step{Type: prevention.StepToolCall, Tool: "deploy", Metadata: md}
	}
	run(t, e, []stepCase{
		{"prod without ticket", call(map[string]string{"env": "prod"}), true},
		{"prod with ticket", call(map[string]string{"env": "prod", "ticket": "OPS-1"}), false},
		{"staging", call(map[string]string{"env": "staging"}), false},
		{"no metadata", call(nil), false},
		{"key in output", prevention.Step{Type: prevention.StepLLMResponse, Output: "here: -----BEGIN PRIVATE KEY-----"}, true},
		{"plain output", prevention.Step{Type: prevention.StepLLMResponse, Output: "hello"}, false},
	})
}

// TestNumbers checks the Long attributes: tokens, costs in millionths of
// a cent, steps, index, elapsed seconds, and whole-number thresholds.
func TestNumbers(t *testing.T) {
	e := compile(t, "numbers", params(t, `
@id("tokens") forbid(principal, action, resource) when { principal.total_tokens > context.thresholds.max_tokens };
@id("cost") forbid(principal, action, resource) when { principal.total_cost_micro_cents > context.thresholds.max_cost_cents * 1000000 };
@id("step-cost") forbid(principal, action, resource) when { context.cost_micro_cents >= 2500000 };
@id("big-step") forbid(principal, action, resource) when { context.tokens > 500 };
@id("steps") forbid(principal, action, resource) when { principal.steps > 10 || context.index >= 10 };
@id("elapsed") forbid(principal, action, resource) when { principal.elapsed_seconds >= 300 };
`, nil))
	start := time.Unix(1_700_000_000, 0)
	step := func(mod func(*prevention.Step)) prevention.Step {
		s := prevention.Step{Type: prevention.StepLLMResponse, Index: 1, At: start.Add(10 * time.Second), RunStartedAt: start,
			Tokens: 100, CostCents: 1, TotalTokens: 200, TotalCostCents: 2}
		mod(&s)
		return s
	}
	run(t, e, []stepCase{
		{"within every limit", step(func(*prevention.Step) {}), false},
		{"total tokens at the limit", step(func(s *prevention.Step) { s.TotalTokens = 1000 }), false},
		{"total tokens over", step(func(s *prevention.Step) { s.TotalTokens = 1001 }), true},
		{"total cost at the limit", step(func(s *prevention.Step) { s.TotalCostCents = 150 }), false},
		{"total cost a millionth of a cent over", step(func(s *prevention.Step) { s.TotalCostCents = 150.000001 }), true},
		{"step cost just under", step(func(s *prevention.Step) { s.CostCents = 2.499999 }), false},
		{"step cost 2.5 cents", step(func(s *prevention.Step) { s.CostCents = 2.5 }), true},
		{"step tokens", step(func(s *prevention.Step) { s.Tokens = 501 }), true},
		{"index 10", step(func(s *prevention.Step) { s.Index = 10 }), true},
		{"elapsed 299.9s", step(func(s *prevention.Step) { s.At = start.Add(299900 * time.Millisecond) }), false},
		{"elapsed 300s", step(func(s *prevention.Step) { s.At = start.Add(300 * time.Second) }), true},
	})
}

// TestMessageNamesEveryForbid checks that the message names each policy
// that forbade the step, in the order of the text, by @id or position.
func TestMessageNamesEveryForbid(t *testing.T) {
	e := compile(t, "multi", params(t, `
permit(principal, action, resource);
forbid(principal, action == Action::"tool_call", resource == Tool::"shell");
@id("shell-any") @message("no shell, ever") forbid(principal, action, resource == Tool::"shell");
@id("never-fires") forbid(principal, action, resource) when { context.tokens > 1000 };
`, map[string]string{"reason": "user_abort"}))
	d := evaluate(t, e, &prevention.Step{Type: prevention.StepToolCall, Tool: "shell"})
	if want := "forbidden by policy1; shell-any: no shell, ever"; d.Action != prevention.Block || d.Message != want || d.Reason != prevention.ReasonUserAbort {
		t.Fatalf("decision %+v, want a user_abort block with message %q", d, want)
	}
}

// TestPermitHasNoEffect checks that only forbid decides: a matching
// permit neither overrides a forbid nor allows anything by itself, and a
// permit that would fail is never evaluated.
func TestPermitHasNoEffect(t *testing.T) {
	e := compile(t, "guard", params(t, noShell+`
permit(principal, action == Action::"tool_call", resource == Tool::"shell");
permit(principal, action, resource) when { context.metadata.never_set == "x" };
`, nil))
	run(t, e, []stepCase{
		{"shell call", prevention.Step{Type: prevention.StepToolCall, Tool: "shell"}, true},
		{"search call", prevention.Step{Type: prevention.StepToolCall, Tool: "search"}, false},
		{"message", prevention.Step{Type: prevention.StepMessage}, false},
	})
}

// TestErroringForbidFailsClosed checks that a forbid whose condition
// raises an error on a step — which cedar-go skips, reporting it only in
// its diagnostics — fails the check instead of allowing the step, even
// when another forbid holds.
func TestErroringForbidFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name, policies string
		step           prevention.Step
		want           string
	}{
		{"missing metadata key", `@id("prod") forbid(principal, action, resource) when { context.metadata.env == "prod" };`,
			prevention.Step{Type: prevention.StepToolCall, Tool: "deploy"}, "env"},
		{"type error", `@id("typed") forbid(principal, action, resource) when { context.tool > 3 };`,
			prevention.Step{Type: prevention.StepToolCall, Tool: "deploy"}, "typed"},
		{"overflow", `@id("overflow") forbid(principal, action, resource) when { context.tokens * 9223372036854775807 > 0 };`,
			prevention.Step{Type: prevention.StepMessage, Tokens: 2}, "overflow"},
		{"error beside a forbid that holds", noShell + `@id("prod") forbid(principal, action, resource) when { context.metadata.env == "prod" };`,
			prevention.Step{Type: prevention.StepToolCall, Tool: "shell"}, "prod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := compile(t, "bad", params(t, tc.policies, nil))
			_, err := e.Evaluate(context.Background(), &tc.step)
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

// TestHonoursContext checks that a step whose context has ended is a
// failed check.
func TestHonoursContext(t *testing.T) {
	e := compile(t, "guard", params(t, noShell, nil))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.Evaluate(ctx, &prevention.Step{Type: prevention.StepMessage})
	if !errors.Is(err, prevention.ErrHookFailed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Evaluate error %v, want ErrHookFailed and context.Canceled", err)
	}
}

// TestCompileErrorsNameTheField checks that every problem the kind can
// see in a policy is found when it is compiled and names the param.
func TestCompileErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		name, params, field, want string
	}{
		{"missing policies", `{}`, "params.policies", "missing"},
		{"unknown param", params(t, noShell, map[string]string{"policy": "x"}), "params.policy", ""},
		{"bad reason", params(t, noShell, map[string]string{"reason": "completed"}), "params.reason", "completed"},
		{"syntax error", params(t, "permit(principal, action, resource);\n\nforbid(principal, action, resource)\n  when { context.tokens > 3 ;", nil), "params.policies", "line 4, column "},
		{"no forbid", params(t, "permit(principal, action, resource);", nil), "params.policies", "no forbid"},
		{"duplicate id", params(t, "@id(\"a\") forbid(principal, action, resource);\n@id(\"a\") forbid(principal, action, resource);", nil), "params.policies", "a second policy with id \"a\""},
		{"context typo", params(t, "forbid(principal, action, resource) when { context.tokenz > 5 };", nil), "params.policies", `"tokenz"`},
		{"record index typo", params(t, "forbid(principal, action, resource) when { context[\"toolz\"] == \"x\" };", nil), "params.policies", `"toolz"`},
		{"has typo", params(t, "forbid(principal, action, resource) when { context has toolz };", nil), "params.policies", `"toolz"`},
		{"has on resource", params(t, "forbid(principal, action, resource) when { resource has name };", nil), "params.policies", "resource has no attributes"},
		{"has unknown threshold", params(t, "forbid(principal, action, resource) when { context.thresholds has max_tokenz };", nil), "params.policies", "max_tokenz"},
		{"principal typo", params(t, "forbid(principal, action, resource) when { principal.total_tokenz > 5 };", nil), "params.policies", `"total_tokenz"`},
		{"resource attribute", params(t, "forbid(principal, action, resource) when { resource.name == \"shell\" };", nil), "params.policies", "resource has no attributes"},
		{"tag", params(t, "forbid(principal, action, resource) when { principal.getTag(\"x\") == 1 };", nil), "params.policies", "tags"},
		{"unknown threshold", params(t, "forbid(principal, action, resource) when { principal.total_tokens > context.thresholds.max_tokenz };", nil), "params.policies", "max_tokenz"},
		{"fractional threshold", params(t, "forbid(principal, action, resource) when { principal.total_tokens > context.thresholds.max_ratio };", nil), "params.policies", "not a whole number"},
		{"fractional threshold has", params(t, "forbid(principal, action, resource) when { context.thresholds has max_ratio };", nil), "params.policies", "not a whole number"},
		{"principal type", params(t, "forbid(principal == User::\"alice\", action, resource);", nil), "params.policies", "User"},
		{"principal is", params(t, "forbid(principal is User, action, resource);", nil), "params.policies", "never a User"},
		{"action typo", params(t, "forbid(principal, action == Action::\"tool_cal\", resource);", nil), "params.policies", "tool_cal"},
		{"action in set typo", params(t, "forbid(principal, action in [Action::\"tool_call\", Action::\"llm\"], resource);", nil), "params.policies", "llm"},
		{"resource type", params(t, "forbid(principal, action, resource == Run::\"r1\");", nil), "params.policies", "resource is never"},
		{"entity in condition", params(t, "forbid(principal, action, resource) when { resource == Took::\"shell\" };", nil), "params.policies", "Took"},
		{"action in condition", params(t, "forbid(principal, action, resource) when { action == Action::\"toolcall\" };", nil), "params.policies", "toolcall"},
		{"is in condition", params(t, "forbid(principal, action, resource) when { resource is Tools };", nil), "params.policies", "Tools"},
		{"bad decimal", params(t, "forbid(principal, action, resource) when { decimal(\"1.23456\").lessThan(decimal(\"2.0\")) };", nil), "params.policies", "decimal"},
		{"bad ip", params(t, "forbid(principal, action, resource) when { ip(\"300.1.1.1\").isLoopback() };", nil), "params.policies", "ip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kinds, err := prevention.NewKinds(cedar.Kind())
			if err != nil {
				t.Fatal(err)
			}
			snap, err := snapshot.New("acme", []snapshot.Policy{{ID: "p", Kind: cedar.KindName, Params: json.RawMessage(tc.params)}}, thresholds, time.Unix(0, 0))
			if err != nil {
				t.Fatal(err)
			}
			_, err = kinds.Compile(snap)
			var ve *snapshot.ValidationError
			if !errors.As(err, &ve) || ve.PolicyID != "p" || ve.Field != tc.field {
				t.Fatalf("Compile error %v, want a *snapshot.ValidationError of p naming %s", err, tc.field)
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
	e := compile(t, "guard", params(t, noShell, nil))
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
