package cel_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/kinds/cel"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

func policy(id, kind, params string) snapshot.Policy {
	return snapshot.Policy{ID: id, Kind: kind, Params: json.RawMessage(params)}
}

func compileCEL(t *testing.T, ps ...snapshot.Policy) *prevention.Engine {
	t.Helper()
	kinds, err := prevention.NewKinds(cel.Kind())
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.New("acme", ps, snapshot.Thresholds{"max_steps": 3}, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	e, err := kinds.Compile(snap)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestExpressionErrorFailsClosed checks that an expression that cannot be
// evaluated on a step makes Evaluate fail rather than allow.
func TestExpressionErrorFailsClosed(t *testing.T) {
	e := compileCEL(t, policy("env", "expression", `{"expr":"step.metadata.env == 'prod'"}`))
	_, err := e.Evaluate(context.Background(), &prevention.Step{})
	var he *prevention.HookError
	if !errors.As(err, &he) || he.PolicyID != "env" || he.Source != prevention.SourcePolicy {
		t.Fatalf("Evaluate error %v, want a *HookError of policy env", err)
	}
}

// TestExpressionCostLimit checks that an expression too costly for one
// step fails (closed) instead of running on.
func TestExpressionCostLimit(t *testing.T) {
	// Each level multiplies the work by 50: 50^4 comparisons.
	expr := `[` + strings.Repeat("0,", 49) + `0].exists(a, [` + strings.Repeat("0,", 49) + `0].exists(b, [` +
		strings.Repeat("0,", 49) + `0].exists(c, [` + strings.Repeat("0,", 49) + `0].exists(d, a + b + c + d > 0))))`
	e := compileCEL(t, policy("slow", "expression", `{"expr":"`+expr+`"}`))
	_, err := e.Evaluate(context.Background(), &prevention.Step{})
	if !errors.Is(err, prevention.ErrHookFailed) {
		t.Fatalf("Evaluate error %v, want ErrHookFailed", err)
	}
	if !strings.Contains(err.Error(), "cost") {
		t.Errorf("error %q does not mention the cost limit", err)
	}
}

// TestExpressionHonoursContext checks that a cancelled step context stops
// a long expression.
func TestExpressionHonoursContext(t *testing.T) {
	expr := `[` + strings.Repeat("0,", 499) + `0].all(a, a == 0)`
	e := compileCEL(t, policy("long", "expression", `{"expr":"!`+expr+`"}`))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.Evaluate(ctx, &prevention.Step{})
	if !errors.Is(err, prevention.ErrHookFailed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Evaluate error %v, want ErrHookFailed and context.Canceled", err)
	}
}
