package governance_test

import (
	"context"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

// Roll a stricter policy set out safely: runs carry it as a shadow
// snapshot, evaluated and recorded at every step but never enforced, and
// say where it would have stopped them.
func ExampleStartOptions_shadow() {
	ctx := context.Background()
	runner, _ := governance.NewRunner(memstore.New(), governance.WithClock(exampleClock()))
	parse := func(maxCents int) *snapshot.PolicySnapshot {
		s, _ := snapshot.Parse("policies.json", []byte(fmt.Sprintf(`{"tenant_id":"acme","thresholds":{"max_cost_cents":%d},
		"policies":[{"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}}]}`, maxCents)), time.Time{}, runner.Kinds())
		return s
	}
	var run *governance.Run
	rec, err := runner.Run(ctx, governance.StartOptions{Snapshot: parse(100), Shadow: parse(25)}, func(ctx context.Context, r *governance.Run) error {
		run = r
		for i := 0; i < 3; i++ {
			if _, err := r.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, CostCents: 20}); err != nil {
				return err
			}
		}
		return nil
	})
	fmt.Println(rec.Status, err)
	shadow, _ := run.Shadow()
	fmt.Printf("the shadow would have stopped it at step %d by %s (%s): %s\n", *shadow.WouldStopAtStep, shadow.PolicyID, shadow.Reason, shadow.Change)
	// Output:
	// succeeded <nil>
	// the shadow would have stopped it at step 1 by cost (budget_exceeded): would_stop
}

// Keep only the hash of what a tenant's steps say: the chain still binds
// every step's content, and replay says which decisions cannot be checked
// again without it.
func ExampleWithRetention() {
	ctx := context.Background()
	store := memstore.New()
	runner, _ := governance.NewRunner(store, governance.WithClock(exampleClock()),
		governance.WithRetention(trace.RetentionHashes, "acme"))
	snap, _ := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme","thresholds":{},
		"policies":[{"id":"keys","kind":"content","params":{"patterns":["sk-[a-z0-9]+"]}}]}`), time.Time{}, runner.Kinds())
	rec, _ := runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Output: "the weather is fine"})
		return err
	})
	contents, _ := store.Contents(ctx, "acme", rec.RunID)
	_, err := governance.VerifyRun(ctx, store, "acme", rec.RunID)
	fmt.Println("stored contents:", len(contents), "verified:", err == nil)
	rep, _ := runner.Replay(ctx, "acme", rec.RunID)
	fmt.Println(rep.Retention, rep.Steps[0].Outcome)
	// Output:
	// stored contents: 0 verified: true
	// hashes content_not_kept
}
