package governance_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

func Example() {
	ctx := context.Background()
	store := memstore.New() // or sqlite.Open(ctx, "stopline.db")
	runner, _ := governance.NewRunner(store)
	// Loaded with the kinds the runner compiles: a kind it lacks, or bad
	// parameters, are refused here, naming the file, policy and field.
	snap, _ := snapshot.Parse("policies.json", []byte(`{
	  "tenant_id": "acme",
	  "thresholds": {"max_cost_cents": 150},
	  "policies": [
	    {"id": "cost-budget", "kind": "budget", "params": {"metric": "cost_cents", "threshold": "max_cost_cents"}},
	    {"id": "tools", "kind": "tool_allowlist", "params": {"allow": ["search"]}}
	  ]}`), time.Time{}, runner.Kinds())

	rec, err := runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 900, CostCents: 60}); err != nil {
			return err
		}
		// A tool call is reported BEFORE the tool runs.
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"}); err != nil {
			return err
		}
		fmt.Println("the shell ran") // never reached
		return nil
	})

	var v *governance.Violation
	if errors.As(err, &v) {
		fmt.Printf("stopped at step %d by %s (%s)\n", v.StepIndex, v.PolicyID(), v.Reason())
	}
	fmt.Println(rec.Status, rec.TerminationReason, *rec.StoppedAtStep)
	inc, _ := store.Incident(ctx, "acme", rec.IncidentID)
	fmt.Println("incident:", inc.PolicyID, inc.Severity, inc.Status)
	// Output:
	// stopped at step 1 by tools (policy_block)
	// failed_policy policy_block 1
	// incident: tools critical open
}

func ExampleExplain() {
	ctx := context.Background()
	snap, _ := snapshot.Parse("policies.json", []byte(`{
	  "tenant_id": "acme",
	  "thresholds": {"max_steps": 2},
	  "policies": [{"id": "step-limit", "kind": "budget", "params": {"metric": "steps", "threshold": "max_steps"}}]}`), time.Time{}, prevention.Builtin())
	store := memstore.New()
	start := time.Date(2026, 1, 20, 9, 0, 0, 0, time.UTC)
	clock := governance.NewFakeClock(start)
	runner, _ := governance.NewRunner(store, governance.WithClock(clock))
	run, _ := runner.Start(ctx, governance.StartOptions{Snapshot: snap})
	for i := 0; i < 3; i++ {
		clock.Advance(time.Second)
		run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	}

	for _, at := range []time.Duration{1500 * time.Millisecond, 3 * time.Second} {
		ex, _ := governance.Explain(ctx, store, "acme", run.ID(), start.Add(at))
		fmt.Printf("+%v %s: %s (record #%d)\n", at, ex.State, ex.Why, ex.Record.Seq)
	}
	// Output:
	// +1.5s continuing: Step 0 (message) was allowed: its one policy did not object. Execution continued; the policy closest to stopping it was step-limit: steps 1 of 2 (50%). (record #1)
	// +3s stopped: Step 2 (message) was blocked by policy step-limit (budget_exceeded): max_steps observed 3, limit 2. The run stopped at that step: failed_policy, budget_exceeded. (record #3)
}
