package governance_test

import (
	"context"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// Replay a recorded run: every step is evaluated again against the run's
// snapshot and compared with the decision stored.
func ExampleRunner_Replay() {
	ctx := context.Background()
	store := memstore.New()
	runner, _ := governance.NewRunner(store, governance.WithClock(exampleClock()))
	snap, _ := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme","thresholds":{"max_tokens":1000},
		"policies":[{"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}}]}`), time.Time{}, runner.Kinds())
	rec, _ := runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		for i := 0; i < 3; i++ {
			if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 400}); err != nil {
				return err
			}
		}
		return nil
	})

	rep, err := runner.Replay(ctx, "acme", rec.RunID)
	if err != nil {
		fmt.Println(err) // the run did not verify: nothing is replayed
		return
	}
	for _, s := range rep.Steps {
		fmt.Println(s.StepIndex, s.Outcome, s.Recomputed.Decision)
	}
	fmt.Println("reproduced:", rep.Reproduced())
	// Output:
	// 0 reproduced allow
	// 1 reproduced allow
	// 2 reproduced block by tokens (budget_exceeded): max_tokens observed 1200, limit 1000: cumulative tokens 1200 exceeds max_tokens 1000
	// reproduced: true
}

// Try a stricter policy set on the runs already recorded, before
// publishing it: which it would have stopped, where, and what that would
// have saved.
func ExampleRunner_WhatIf() {
	ctx := context.Background()
	store := memstore.New()
	runner, _ := governance.NewRunner(store, governance.WithClock(exampleClock()))
	current, _ := snapshot.Parse("current.json", []byte(`{"tenant_id":"acme","thresholds":{"max_cost_cents":100},
		"policies":[{"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}}]}`), time.Time{}, runner.Kinds())
	for _, costs := range [][]float64{{10, 10}, {30, 30, 30}} {
		runner.Run(ctx, governance.StartOptions{Snapshot: current}, func(ctx context.Context, run *governance.Run) error {
			for _, c := range costs {
				run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, CostCents: c})
			}
			return nil
		})
	}

	stricter, _ := snapshot.Parse("stricter.json", []byte(`{"tenant_id":"acme","thresholds":{"max_cost_cents":50},
		"policies":[{"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}}]}`), time.Time{}, runner.Kinds())
	rep, _ := runner.WhatIf(ctx, stricter, governance.RunFilter{})
	for _, r := range rep.Runs {
		switch r.Change {
		case governance.WhatIfWouldStop:
			fmt.Printf("%s: at step %d by %s, saving %v cents\n", r.Change, *r.Candidate.StoppedAtStep, r.Candidate.PolicyID, r.Saved.CostCents)
		default:
			fmt.Println(r.Change)
		}
	}
	fmt.Println(rep.Totals.WouldStop, "of", rep.Totals.Runs, "runs would stop")
	// Output:
	// would_stop: at step 1 by cost, saving 30 cents
	// unchanged
	// 1 of 2 runs would stop
}
