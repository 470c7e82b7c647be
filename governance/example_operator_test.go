package governance_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// A requires_approval policy holds a step until a person answers it:
// Run.Step waits; Approve (here from another goroutine, in production
// from `stopline approve` or a console on any replica) lets it pass, and
// the answer is recorded with the step.
func ExampleApprove() {
	ctx := context.Background()
	store := memstore.New()
	runner, err := governance.NewRunner(store)
	if err != nil {
		log.Fatal(err)
	}
	snap, err := snapshot.Parse("policies.json", []byte(`{"tenant_id": "acme", "thresholds": {},
	  "policies": [{"id": "approve-wire", "kind": "requires_approval", "params": {"tools": ["wire_transfer"], "hold_seconds": 600}}]}`),
		time.Now(), runner.Kinds())
	if err != nil {
		log.Fatal(err)
	}
	run, err := runner.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		log.Fatal(err)
	}

	go func() { // the person
		for {
			holds, _ := governance.PendingHolds(ctx, store, "acme")
			if len(holds) > 0 {
				fmt.Println("waiting:", holds[0].Tool, "held by", holds[0].PolicyID)
				_, _ = governance.Approve(ctx, store, "acme", holds[0].ID, "alice@acme", "ticket 4411")
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()

	res, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "wire_transfer", Input: `{"amount": 9000}`})
	if err != nil {
		log.Fatal(err)
	}
	records, _ := store.Records(ctx, "acme", run.ID())
	a := records[res.Index+1].Approval
	fmt.Println(res.Evaluation.Decision.Action, a.Answer, "by", a.By+":", a.Reason)
	// Output:
	// waiting: wire_transfer held by approve-wire
	// allow approved by alice@acme: ticket 4411
}

// A kill switch over an agent stops the next step of each of its runs on
// every runner that watches the store (WithKillSwitch), and refuses new
// ones until it is released.
func ExampleKill() {
	ctx := context.Background()
	store := memstore.New()
	runner, err := governance.NewRunner(store, governance.WithKillSwitch(0))
	if err != nil {
		log.Fatal(err)
	}
	defer runner.Close()
	snap, err := snapshot.Parse("policies.json", []byte(`{"tenant_id": "acme", "thresholds": {"max_steps": 100},
	  "policies": [{"id": "steps", "kind": "budget", "params": {"metric": "steps", "threshold": "max_steps"}}]}`), time.Now(), runner.Kinds())
	if err != nil {
		log.Fatal(err)
	}
	opts := governance.StartOptions{Snapshot: snap, Labels: map[string]string{governance.AgentLabel: "mailer"}}
	run, err := runner.Start(ctx, opts)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := governance.Kill(ctx, store, "acme", governance.KillAgent, "mailer", "alice@acme", "sending spam"); err != nil {
		log.Fatal(err)
	}
	var v *governance.Violation
	for !errors.As(err, &v) { // the watcher sees the switch within its poll
		_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 10})
		time.Sleep(time.Millisecond)
	}
	fmt.Println(v.Reason(), run.Record().Status)
	_, err = runner.Start(ctx, opts)
	fmt.Println(errors.Is(err, governance.ErrKilled))
	if _, err := governance.Release(ctx, store, "acme", governance.KillAgent, "mailer", "alice@acme"); err != nil {
		log.Fatal(err)
	}
	_, err = runner.Start(ctx, opts)
	fmt.Println(err)
	// Output:
	// user_abort cancelled
	// true
	// <nil>
}
