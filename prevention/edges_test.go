package prevention_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

func evalOne(t *testing.T, e *prevention.Engine, st *prevention.Step) prevention.Evaluation {
	t.Helper()
	st.RunID, st.TenantID, st.SnapshotID, st.At, st.RunStartedAt = "r", "acme", e.Snapshot().ID(), t0, t0
	ev, err := e.Evaluate(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// TestBudgetComparesIntegersExactly: a token count above 2^53 is not
// rounded to the float64 limit before the comparison.
func TestBudgetComparesIntegersExactly(t *testing.T) {
	const limit = 1 << 53
	e := compile(t, snapshot.Thresholds{"max": limit}, policy("tokens", "budget", `{"metric":"tokens","threshold":"max"}`))
	if ev := evalOne(t, e, &prevention.Step{Type: prevention.StepLLMResponse, Tokens: limit, TotalTokens: limit}); ev.Decision.Action != prevention.Allow {
		t.Errorf("exactly the limit: %v", ev.Decision)
	}
	if ev := evalOne(t, e, &prevention.Step{Type: prevention.StepLLMResponse, Tokens: limit + 1, TotalTokens: limit + 1}); ev.Decision.Action != prevention.Block {
		t.Errorf("2^53+1 tokens passed a limit of 2^53: %v", ev.Decision)
	}
	// A fractional limit: 2.5 steps allow 2 and block the third.
	e = compile(t, snapshot.Thresholds{"max": 2.5}, policy("steps", "budget", `{"metric":"steps","threshold":"max"}`))
	if ev := evalOne(t, e, &prevention.Step{Type: prevention.StepMessage, Index: 1}); ev.Decision.Action != prevention.Allow {
		t.Errorf("step 2 of 2.5: %v", ev.Decision)
	}
	if ev := evalOne(t, e, &prevention.Step{Type: prevention.StepMessage, Index: 2}); ev.Decision.Action != prevention.Block {
		t.Errorf("step 3 of 2.5: %v", ev.Decision)
	}
}

// TestDenylistCatchesLookAlikes: a deny list compares normalized names;
// an allow list admits exactly what it lists.
func TestDenylistCatchesLookAlikes(t *testing.T) {
	deny := compile(t, nil, policy("no-shell", "tool_denylist", `{"deny":["Shell"]}`))
	allow := compile(t, nil, policy("only-search", "tool_allowlist", `{"allow":["search"]}`))
	for _, name := range []string{"shell", "Shell", "SHELL", "shell ", " shell", "ｓｈｅｌｌ", "ＳＨＥＬＬ", "\u017fhell"} {
		if ev := evalOne(t, deny, &prevention.Step{Type: prevention.StepToolCall, Tool: name}); ev.Decision.Action != prevention.Block {
			t.Errorf("deny [Shell]: %q passed", name)
		}
	}
	if ev := evalOne(t, deny, &prevention.Step{Type: prevention.StepToolCall, Tool: "shellcheck"}); ev.Decision.Action != prevention.Allow {
		t.Errorf("deny [Shell]: shellcheck blocked: %v", ev.Decision)
	}
	for _, name := range []string{"Search", "search ", "ｓｅａｒｃｈ"} {
		if ev := evalOne(t, allow, &prevention.Step{Type: prevention.StepToolCall, Tool: name}); ev.Decision.Action != prevention.Block {
			t.Errorf("allow [search]: %q passed", name)
		}
	}
	if ev := evalOne(t, allow, &prevention.Step{Type: prevention.StepToolCall, Tool: "search"}); ev.Decision.Action != prevention.Allow {
		t.Errorf("allow [search]: search blocked: %v", ev.Decision)
	}
}

// TestHookUnknownReasonFails: a Block with a reason the runner does not
// know is a failed check naming the reason, not a silent policy_block; a
// Block without a reason is a policy_block.
func TestHookUnknownReasonFails(t *testing.T) {
	for _, reason := range []prevention.RunTerminationReason{"budget_exeeded", "completed", "POLICY_BLOCK"} {
		h := prevention.NamedHook{ID: "mine", Hook: prevention.HookFunc(func(context.Context, *prevention.Step) (prevention.Decision, error) {
			return prevention.Decision{Action: prevention.Block, Reason: reason}, nil
		})}
		e, err := kinds.Compile(newSnapshot(t, nil, policy("roomy", "budget", `{"metric":"steps","threshold":"max_steps"}`)), h)
		if err != nil {
			t.Fatal(err)
		}
		_, err = e.Evaluate(context.Background(), &prevention.Step{Type: prevention.StepMessage, At: t0, RunStartedAt: t0})
		var he *prevention.HookError
		if !errors.As(err, &he) || he.PolicyID != "mine" || !errors.Is(err, prevention.ErrUnknownReason) || !strings.Contains(err.Error(), string(reason)) {
			t.Errorf("reason %q: %v, want a HookError naming it", reason, err)
		}
	}
	h := prevention.NamedHook{ID: "mine", Hook: prevention.HookFunc(func(context.Context, *prevention.Step) (prevention.Decision, error) {
		return prevention.Decision{Action: prevention.Block}, nil
	})}
	e, err := kinds.Compile(newSnapshot(t, nil, policy("roomy", "budget", `{"metric":"steps","threshold":"max_steps"}`)), h)
	if err != nil {
		t.Fatal(err)
	}
	ev := evalOne(t, e, &prevention.Step{Type: prevention.StepMessage})
	if ev.Decision.Action != prevention.Block || ev.Decision.Reason != prevention.ReasonPolicyBlock {
		t.Errorf("Block without a reason: %v", ev.Decision)
	}
}
