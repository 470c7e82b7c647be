package sink_test

import (
	"context"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/sink"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// printSink prints the events it receives.
type printSink struct{ done chan struct{} }

func (printSink) Name() string { return "printer" }

func (p printSink) Deliver(_ context.Context, e sink.Event) error {
	payload, err := e.Decode()
	if err != nil {
		return err
	}
	fmt.Println(e.Type, payload.Data.Run.Status, payload.Data.Run.TerminationReason, e.Attempt)
	if e.Type == sink.EventRunEnded {
		close(p.done)
	}
	return nil
}

// A runner whose runs' ends go to a sink through the store's outbox. The
// run is stopped at its first step; its incident and its end are
// delivered once the stop is committed, by the dispatcher.
func ExampleNewDispatcher() {
	ctx := context.Background()
	store := memstore.New()
	printer := printSink{done: make(chan struct{})}
	d, err := sink.NewDispatcher(store, []sink.Sink{printer}, sink.WithConcurrency(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	runner, err := governance.NewRunner(store, governance.WithOutbox(d))
	if err != nil {
		fmt.Println(err)
		return
	}
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	go d.Run(c)

	snap, _ := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme",
		"policies":[{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`), time.Time{}, runner.Kinds())
	run, _ := runner.Start(ctx, governance.StartOptions{Snapshot: snap})
	_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"})
	fmt.Println(err != nil)
	<-printer.done
	// Output:
	// true
	// incident.created failed_policy policy_block 1
	// run.ended failed_policy policy_block 1
}
