package prevention_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// block returns the Decision the engine gives for a Block of an enforced
// policy with the given id.
func block(id string, reason prevention.RunTerminationReason, threshold string, limit, observed float64, msg string) prevention.Decision {
	return prevention.Decision{
		Action: prevention.Block, Reason: reason, PolicyID: id, Source: prevention.SourcePolicy,
		Threshold: threshold, Limit: limit, Observed: observed, Message: msg,
		Enforcement: snapshot.EnforceBlock,
	}
}

func TestKindBoundaries(t *testing.T) {
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	// earlier returns step times d ago, for rate limits.
	earlier := func(ds ...time.Duration) []int64 {
		var ts []int64
		for _, d := range ds {
			ts = append(ts, at(time.Minute-d).UnixNano())
		}
		return ts
	}
	tests := []struct {
		name   string
		policy snapshot.Policy
		step   prevention.Step
		times  []int64 // earlier step times
		want   prevention.Decision
	}{
		{
			name:   "tokens at limit",
			policy: policy("tok", "budget", `{"metric":"tokens","threshold":"max_tokens"}`),
			step:   prevention.Step{Index: 4, TotalTokens: 35},
			want:   prevention.Allowed(),
		},
		{
			name:   "tokens over limit",
			policy: policy("tok", "budget", `{"metric":"tokens","threshold":"max_tokens"}`),
			step:   prevention.Step{Index: 4, TotalTokens: 36},
			want:   block("tok", prevention.ReasonBudgetExceeded, "max_tokens", 35, 36, "cumulative tokens 36 exceeds max_tokens 35"),
		},
		{
			name:   "cost at limit",
			policy: policy("cost", "budget", `{"metric":"cost_cents","threshold":"max_cost_cents"}`),
			step:   prevention.Step{TotalCostCents: 150},
			want:   prevention.Allowed(),
		},
		{
			name:   "cost over limit",
			policy: policy("cost", "budget", `{"metric":"cost_cents","threshold":"max_cost_cents"}`),
			step:   prevention.Step{TotalCostCents: 151},
			want:   block("cost", prevention.ReasonBudgetExceeded, "max_cost_cents", 150, 151, "cumulative cost_cents 151 exceeds max_cost_cents 150"),
		},
		{
			name:   "cost over limit by a fraction",
			policy: policy("cost", "budget", `{"metric":"cost_cents","threshold":"max_cost_cents"}`),
			step:   prevention.Step{TotalCostCents: 150.25},
			want:   block("cost", prevention.ReasonBudgetExceeded, "max_cost_cents", 150, 150.25, "cumulative cost_cents 150.25 exceeds max_cost_cents 150"),
		},
		{
			name:   "steps: step 2 is the third",
			policy: policy("steps", "budget", `{"metric":"steps","threshold":"max_steps"}`),
			step:   prevention.Step{Index: 2},
			want:   prevention.Allowed(),
		},
		{
			name:   "steps: step 3 is the fourth",
			policy: policy("steps", "budget", `{"metric":"steps","threshold":"max_steps"}`),
			step:   prevention.Step{Index: 3},
			want:   block("steps", prevention.ReasonBudgetExceeded, "max_steps", 3, 4, "cumulative steps 4 exceeds max_steps 3"),
		},
		{
			name:   "rate at limit",
			policy: policy("pace", "rate_limit", `{"threshold":"max_steps_per_window","window_seconds":60}`),
			step:   prevention.Step{Index: 3, At: at(time.Minute)},
			times:  earlier(60*time.Second, 59*time.Second, 30*time.Second), // the first lies outside
			want:   prevention.Allowed(),
		},
		{
			name:   "rate over limit",
			policy: policy("pace", "rate_limit", `{"threshold":"max_steps_per_window","window_seconds":60}`),
			step:   prevention.Step{Index: 3, At: at(time.Minute)},
			times:  earlier(59*time.Second, 30*time.Second, time.Second),
			want:   block("pace", prevention.ReasonRateLimited, "max_steps_per_window", 3, 4, "4 steps in the last 60s exceed max_steps_per_window 3"),
		},
		{
			name:   "rate window defaults to 60s",
			policy: policy("pace", "rate_limit", `{"threshold":"max_steps_per_window"}`),
			step:   prevention.Step{Index: 3, At: at(time.Minute)},
			times:  earlier(59*time.Second, 30*time.Second, time.Second),
			want:   block("pace", prevention.ReasonRateLimited, "max_steps_per_window", 3, 4, "4 steps in the last 60s exceed max_steps_per_window 3"),
		},
		{
			name:   "rate in a short window",
			policy: policy("pace", "rate_limit", `{"threshold":"max_steps_per_window","window_seconds":2}`),
			step:   prevention.Step{Index: 3, At: at(time.Minute)},
			times:  earlier(59*time.Second, 30*time.Second, time.Second),
			want:   prevention.Allowed(),
		},
		{
			name:   "timeout at limit",
			policy: policy("clock", "timeout", `{"threshold":"max_duration_seconds"}`),
			step:   prevention.Step{At: at(600 * time.Second), RunStartedAt: t0},
			want:   prevention.Allowed(),
		},
		{
			name:   "timeout over limit",
			policy: policy("clock", "timeout", `{"threshold":"max_duration_seconds"}`),
			step:   prevention.Step{At: at(600*time.Second + 500*time.Millisecond), RunStartedAt: t0},
			want:   block("clock", prevention.ReasonTimeout, "max_duration_seconds", 600, 600.5, "run elapsed 600.5s exceeds max_duration_seconds 600s"),
		},
		{
			name:   "content clean",
			policy: policy("ssn", "content", `{"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}`),
			step:   prevention.Step{Output: "order 1234-56-789 shipped", Input: "123-45-6789"},
			want:   prevention.Allowed(),
		},
		{
			name:   "content match",
			policy: policy("ssn", "content", `{"patterns":["(?i)password","\\b\\d{3}-\\d{2}-\\d{4}\\b"]}`),
			step:   prevention.Step{Output: "ssn 123-45-6789"},
			want:   block("ssn", prevention.ReasonPolicyBlock, "", 0, 0, "output matches content pattern #1"),
		},
		{
			name:   "content names the first field that matches",
			policy: policy("secrets", "content", `{"fields":["output","input"],"patterns":["(?i)password"],"reason":"system_failure"}`),
			step:   prevention.Step{Input: "my PASSWORD is", Output: "ok"},
			want:   block("secrets", prevention.ReasonSystemFailure, "", 0, 0, "input matches content pattern #0"),
		},
		{
			name:   "allowlist allows a listed tool",
			policy: policy("tools", "tool_allowlist", `{"allow":["search","calculator"]}`),
			step:   prevention.Step{Type: prevention.StepToolCall, Tool: "calculator"},
			want:   prevention.Allowed(),
		},
		{
			name:   "allowlist blocks another tool",
			policy: policy("tools", "tool_allowlist", `{"allow":["search","calculator"]}`),
			step:   prevention.Step{Type: prevention.StepToolCall, Tool: "shell"},
			want:   block("tools", prevention.ReasonPolicyBlock, "", 0, 0, `tool "shell" is not in the allowlist`),
		},
		{
			name:   "allowlist ignores tool results",
			policy: policy("tools", "tool_allowlist", `{"allow":["search","calculator"]}`),
			step:   prevention.Step{Type: prevention.StepToolResult, Tool: "shell"},
			want:   prevention.Allowed(),
		},
		{
			name:   "empty allowlist blocks every tool call",
			policy: policy("tools", "tool_allowlist", `{"allow":[]}`),
			step:   prevention.Step{Type: prevention.StepToolCall, Tool: "search"},
			want:   block("tools", prevention.ReasonPolicyBlock, "", 0, 0, `tool "search" is not in the allowlist`),
		},
		{
			name:   "denylist allows another tool",
			policy: policy("no-shell", "tool_denylist", `{"deny":["shell"]}`),
			step:   prevention.Step{Type: prevention.StepToolCall, Tool: "search"},
			want:   prevention.Allowed(),
		},
		{
			name:   "denylist blocks a listed tool",
			policy: policy("no-shell", "tool_denylist", `{"deny":["shell"]}`),
			step:   prevention.Step{Type: prevention.StepToolCall, Tool: "shell"},
			want:   block("no-shell", prevention.ReasonPolicyBlock, "", 0, 0, `tool "shell" is in the denylist`),
		},
		{
			name:   "denylist ignores other step types",
			policy: policy("no-shell", "tool_denylist", `{"deny":["shell"]}`),
			step:   prevention.Step{Type: prevention.StepLLMResponse, Tool: "shell"},
			want:   prevention.Allowed(),
		},
		{
			name:   "expression false",
			policy: policy("no-shell", "expression", `{"expr":"step.type == 'tool_call' && step.tool == 'shell'"}`),
			step:   prevention.Step{Type: prevention.StepToolCall, Tool: "search"},
			want:   prevention.Allowed(),
		},
		{
			name:   "expression true",
			policy: policy("no-shell", "expression", `{"expr":"step.type == 'tool_call' && step.tool == 'shell'"}`),
			step:   prevention.Step{Type: prevention.StepToolCall, Tool: "shell"},
			want:   block("no-shell", prevention.ReasonPolicyBlock, "", 0, 0, "expression is true: step.type == 'tool_call' && step.tool == 'shell'"),
		},
		{
			name: "expression over run, thresholds and metadata",
			policy: policy("prod-spend", "expression", `{
				"expr": "'env' in step.metadata && step.metadata.env == 'prod' && run.total_cost_cents * 2.0 > thresholds.max_cost_cents && run.steps >= 2 && step.index == 1 && step.tokens > 5",
				"message": "prod spend", "reason": "budget_exceeded"}`),
			step: prevention.Step{Index: 1, Tokens: 10, TotalCostCents: 76, Metadata: map[string]string{"env": "prod"}},
			want: block("prod-spend", prevention.ReasonBudgetExceeded, "", 0, 0, "prod spend"),
		},
		{
			name:   "expression with absent metadata",
			policy: policy("prod", "expression", `{"expr":"'env' in step.metadata && step.metadata.env == 'prod'"}`),
			step:   prevention.Step{},
			want:   prevention.Allowed(),
		},
		{
			name:   "expression over ids and elapsed time",
			policy: policy("late", "expression", `{"expr":"run.tenant_id == 'acme' && run.run_id == 'r' && run.snapshot_id != '' && run.elapsed_seconds > 1.5 && run.total_tokens == 7 && step.model == 'm' && step.input == 'i' && step.output == 'o' && step.cost_cents == 0.5"}`),
			step:   prevention.Step{RunID: "r", TenantID: "acme", SnapshotID: "SNAP-x", RunStartedAt: t0, At: at(2 * time.Second), TotalTokens: 7, Model: "m", Input: "i", Output: "o", CostCents: 0.5},
			want:   block("late", prevention.ReasonPolicyBlock, "", 0, 0, "expression is true: "+"run.tenant_id == 'acme' && run.run_id == 'r' && run.snapshot_id != '' && run.elapsed_seconds > 1.5 && run.total_tokens == 7 && step.model == 'm' && step.input == 'i' && step.output == 'o' && step.cost_cents == 0.5"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := compile(t, nil, tt.policy)
			step := tt.step
			step.SetStepTimes(tt.times)
			ev, err := e.Evaluate(context.Background(), &step)
			if err != nil {
				t.Fatal(err)
			}
			want := prevention.Evaluation{Decision: tt.want}
			if tt.want.Action != prevention.Allow {
				want.Findings = []prevention.Decision{tt.want}
			}
			if diff := cmp.Diff(want, ev); diff != "" {
				t.Errorf("Evaluate (-want +got):\n%s", diff)
			}
		})
	}
}

// TestKindStopsAt runs the same scripted run under one policy at a time
// and checks the step at which each stops it.
func TestKindStopsAt(t *testing.T) {
	tests := []struct {
		policy snapshot.Policy
		want   int // index of the blocked step, -1 for none
		reason prevention.RunTerminationReason
	}{
		{policy("tokens", "budget", `{"metric":"tokens","threshold":"max_tokens"}`), 3, prevention.ReasonBudgetExceeded},
		{policy("cost", "budget", `{"metric":"cost_cents","threshold":"max_cost_cents"}`), 6, prevention.ReasonBudgetExceeded},
		{policy("steps", "budget", `{"metric":"steps","threshold":"max_steps"}`), 3, prevention.ReasonBudgetExceeded},
		{policy("pace", "rate_limit", `{"threshold":"max_steps_per_window","window_seconds":20}`), 4, prevention.ReasonRateLimited},
		{policy("clock", "timeout", `{"threshold":"max_duration_seconds"}`), 7, prevention.ReasonTimeout},
		{policy("ssn", "content", `{"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}`), 5, prevention.ReasonPolicyBlock},
		{policy("ssn-in", "content", `{"fields":["input","tool","model"],"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}`), -1, ""},
		{policy("tools", "tool_allowlist", `{"allow":["search","calculator"]}`), 6, prevention.ReasonPolicyBlock},
		{policy("no-shell", "tool_denylist", `{"deny":["shell"]}`), 7, prevention.ReasonPolicyBlock},
		{policy("no-shell-expr", "expression", `{"expr":"step.type == 'tool_call' && step.tool == 'shell'"}`), 7, prevention.ReasonPolicyBlock},
		{policy("spend", "expression", `{"expr":"run.total_cost_cents > thresholds.max_cost_cents","reason":"budget_exceeded"}`), 6, prevention.ReasonBudgetExceeded},
		{policy("roomy", "budget", `{"metric":"tokens","threshold":"max_duration_seconds"}`), -1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.policy.ID, func(t *testing.T) {
			got, ev := runScript(t, compile(t, nil, tt.policy), script)
			if got != tt.want {
				t.Fatalf("stopped at step %d, want %d (%v)", got, tt.want, ev.Decision)
			}
			if got >= 0 && (ev.Decision.Reason != tt.reason || ev.Decision.PolicyID != tt.policy.ID) {
				t.Errorf("decision %v, want reason %s by %s", ev.Decision, tt.reason, tt.policy.ID)
			}
		})
	}
}

// TestContentMessageHidesMatch checks that a content Block never repeats
// the text it matched, in any field of the decision.
func TestContentMessageHidesMatch(t *testing.T) {
	const secret = "123-45-6789"
	e := compile(t, nil, policy("no-ssn", "content", `{"fields":["input","output"],"patterns":["\\d{3}-\\d{2}-\\d{4}","\\bssn\\b"]}`))
	for _, field := range []string{"input", "output"} {
		t.Run(field, func(t *testing.T) {
			step := &prevention.Step{Type: prevention.StepToolResult}
			if field == "input" {
				step.Input = "the ssn is " + secret
			} else {
				step.Output = "the number is " + secret + "."
			}
			ev, err := e.Evaluate(context.Background(), step)
			if err != nil {
				t.Fatal(err)
			}
			d := ev.Decision
			if d.Action != prevention.Block {
				t.Fatalf("decision %v, want a block", d)
			}
			if s := d.String(); strings.Contains(s, secret) || strings.Contains(s, "6789") {
				t.Errorf("decision %q contains the matched secret", s)
			}
			if !strings.Contains(d.Message, field) || !strings.Contains(d.Message, "#0") {
				t.Errorf("message %q should name field %s and pattern #0", d.Message, field)
			}
		})
	}
}

func TestRequiresApproval(t *testing.T) {
	bad := []struct{ params, field string }{
		{`{}`, "params"},
		{`{"tools": []}`, "params.tools"},
		{`{"tools": [""]}`, "params.tools[0]"},
		{`{"arguments": ["("]}`, "params.arguments[0]"},
		{`{"arguments": []}`, "params.arguments"},
		{`{"threshold": "nope"}`, "params.threshold"},
		{`{"tools": ["x"], "hold_seconds": 0}`, "params.hold_seconds"},
		{`{"tools": ["x"], "hold_seconds": 700000}`, "params.hold_seconds"},
		{`{"tools": ["x"], "step_types": ["tool"]}`, "params.step_types[0]"},
		{`{"tools": ["x"], "Tools": ["y"]}`, "params"},
		{`{"tools": ["x"], "holdseconds": 5}`, "params.holdseconds"},
	}
	for _, tc := range bad {
		doc := `{"tenant_id": "t", "thresholds": {"big": 5}, "policies": [{"id": "p", "kind": "requires_approval", "params": ` + tc.params + `}]}`
		_, err := snapshot.Parse("f.json", []byte(doc), time.Now(), prevention.Builtin())
		var ve *snapshot.ValidationError
		if !errors.As(err, &ve) || !strings.HasPrefix(ve.Field, tc.field) {
			t.Errorf("%s: %v, want a ValidationError on %s", tc.params, err, tc.field)
		}
	}
	doc := `{"tenant_id": "t", "thresholds": {"big": 5}, "policies": [
		{"id": "hold", "kind": "requires_approval", "params": {"tools": ["wire"], "arguments": ["\"amount\":\\s*\\d{4,}"], "hold_seconds": 30}},
		{"id": "warn-hold", "kind": "requires_approval", "params": {"threshold": "big"}, "enforcement": "warn"},
		{"id": "mon-hold", "kind": "requires_approval", "params": {"tools": ["wire"]}, "enforcement": "monitor"}]}`
	snap, err := snapshot.Parse("f.json", []byte(doc), time.Now(), prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	eng, err := prevention.Builtin().Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	eval := func(s prevention.Step) prevention.Evaluation {
		t.Helper()
		ev, err := eng.Evaluate(context.Background(), &s)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	ev := eval(prevention.Step{Type: prevention.StepToolCall, Tool: "wire", Input: `{"amount": 12000}`})
	if d := ev.Decision; d.Action != prevention.HoldForApproval || d.PolicyID != "hold" || d.HoldSeconds != 30 || strings.Contains(d.Message, "12000") {
		t.Errorf("held: %+v", ev)
	}
	if len(ev.Findings) != 2 || ev.Findings[1].Enforcement != snapshot.EnforceMonitor {
		t.Errorf("findings: %+v", ev.Findings)
	}
	// A small amount: only the monitor-mode policy finds it.
	if ev := eval(prevention.Step{Type: prevention.StepToolCall, Tool: "wire", Input: `{"amount": 12}`}); ev.Decision.Action != prevention.Allow || len(ev.Findings) != 1 {
		t.Errorf("small amount: %+v", ev)
	}
	// Arguments the tool reads as the same JSON are held whatever their
	// spelling; JSON with no one reading is held for a person to read.
	for _, in := range []string{`{"am\u006funt": 12000}`, `{"amount": 1.2e4}`, `{"amount": 12000.0}`,
		`{"amount": 12, "amount": 12000}`, `{"amount": 12000`} {
		if ev := eval(prevention.Step{Type: prevention.StepToolCall, Tool: "wire", Input: in}); ev.Decision.Action != prevention.HoldForApproval || ev.Decision.PolicyID != "hold" {
			t.Errorf("%s: %+v", in, ev.Decision)
		}
	}
	// A warn-mode hold is a warning.
	if ev := eval(prevention.Step{Type: prevention.StepToolCall, Tool: "search", CostCents: 6}); ev.Decision.Action != prevention.Warn {
		t.Errorf("warn-mode hold: %+v", ev)
	}
	if b, _ := prevention.HoldForApproval.MarshalText(); string(b) != "hold" {
		t.Errorf("HoldForApproval marshals as %q", b)
	}
}
