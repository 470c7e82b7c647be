package cedar_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/kinds/cedar"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// policyFile returns a policy file holding one cedar policy.
func policyFile(t *testing.T, id string, params string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"tenant_id":  "acme",
		"thresholds": map[string]float64{"max_tokens": 1000},
		"policies":   []map[string]any{{"id": id, "kind": "cedar", "params": json.RawMessage(params)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func newRunner(t *testing.T) (*governance.Runner, *memstore.Store) {
	t.Helper()
	kinds, err := prevention.NewKinds(cedar.Kind())
	if err != nil {
		t.Fatal(err)
	}
	store := memstore.New()
	runner, err := governance.NewRunner(store, governance.WithKinds(kinds))
	if err != nil {
		t.Fatal(err)
	}
	return runner, store
}

// TestRunnerStopsRun checks the kind end to end: a policy file loaded
// with the runner's kinds, a run whose allowed steps go on, and the step
// the deny rule holds on stopping the run, with the policy, the reason
// and the message recorded.
func TestRunnerStopsRun(t *testing.T) {
	ctx := context.Background()
	runner, store := newRunner(t)
	snap, err := snapshot.Parse("policies.json", policyFile(t, "guardrails", params(t, noShell, nil)), time.Now(), runner.Kinds())
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	rec, err := runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		for _, in := range []governance.StepInput{
			{Type: prevention.StepLLMResponse, Model: "m", Tokens: 10},
			{Type: prevention.StepToolCall, Tool: "search"},
			{Type: prevention.StepToolResult, Tool: "search", Output: "ok"},
			{Type: prevention.StepToolCall, Tool: "shell", Input: "rm -rf /"},
		} {
			if _, err := run.Step(ctx, in); err != nil {
				return err
			}
			ran++
		}
		return nil
	})
	var v *governance.Violation
	if !errors.As(err, &v) {
		t.Fatalf("Run error %v, want a *governance.Violation", err)
	}
	const msg = "forbidden by no-shell: shell is not allowed"
	if ran != 3 || v.StepIndex != 3 || v.PolicyID() != "guardrails" || v.Reason() != prevention.ReasonPolicyBlock || v.Decision.Message != msg {
		t.Fatalf("ran %d steps, violation %+v; want 3 steps then guardrails blocking step 3 with %q", ran, v, msg)
	}
	if rec.Status != governance.StatusFailedPolicy || rec.StoppedAtStep == nil || *rec.StoppedAtStep != 3 {
		t.Fatalf("run record %+v, want failed_policy at step 3", rec)
	}
	stored, err := store.Run(ctx, "acme", rec.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.ViolationPolicyID != "guardrails" || stored.TerminationReason != prevention.ReasonPolicyBlock {
		t.Fatalf("stored run %+v, want violation by guardrails (policy_block)", stored)
	}
}

// TestRunnerFailsClosed checks end to end that a step the policy cannot
// be evaluated on is not allowed: the run stops with system_failure.
func TestRunnerFailsClosed(t *testing.T) {
	ctx := context.Background()
	runner, _ := newRunner(t)
	// The second step has no env metadata: the forbid's condition fails,
	// and so does the check.
	policies := `forbid(principal, action, resource) when { context.metadata.env == "prod" };`
	snap, err := snapshot.Parse("policies.json", policyFile(t, "prod", params(t, policies, nil)), time.Now(), runner.Kinds())
	if err != nil {
		t.Fatal(err)
	}
	after := false
	rec, err := runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "calc", Metadata: map[string]string{"env": "dev"}}); err != nil {
			return err
		}
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "calc"}); err != nil {
			return err
		}
		after = true
		return nil
	})
	var he *prevention.HookError
	if !errors.Is(err, governance.ErrRunStopped) || !errors.As(err, &he) || he.PolicyID != "prod" {
		t.Fatalf("Run error %v, want the run stopped by a failed check of policy prod", err)
	}
	if after || rec.Status != governance.StatusFailed || rec.TerminationReason != prevention.ReasonSystemFailure ||
		rec.StoppedAtStep == nil || *rec.StoppedAtStep != 1 || rec.ViolationPolicyID != "prod" {
		t.Fatalf("the run went on (%v) or ended as %+v, want it failed with system_failure at step 1 by prod", after, rec)
	}
}

// TestFileWithoutTheKind checks that a policy file with a cedar policy is
// refused, with a hint, by a program that has not enabled the kind.
func TestFileWithoutTheKind(t *testing.T) {
	_, err := snapshot.Parse("policies.json", policyFile(t, "no-shell", params(t, noShell, nil)), time.Now(), prevention.Builtin())
	if !errors.Is(err, prevention.ErrUnknownKind) {
		t.Fatalf("Parse error %v, want ErrUnknownKind", err)
	}
}
