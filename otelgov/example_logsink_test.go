package otelgov_test

import (
	"context"
	"fmt"
	"time"

	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/otelgov"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/sink"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// printProcessor prints each log record's event name, severity and body
// (in a program: sdklog.NewBatchProcessor with an OTLP exporter).
type printProcessor struct{ lines chan string }

func (p printProcessor) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (p printProcessor) OnEmit(_ context.Context, r *sdklog.Record) error {
	p.lines <- fmt.Sprint(r.EventName(), " ", r.Severity())
	return nil
}
func (printProcessor) Shutdown(context.Context) error   { return nil }
func (printProcessor) ForceFlush(context.Context) error { return nil }

// A run stopped by a policy: its incident and its end become log records,
// delivered from the store's outbox by the dispatcher.
func ExampleNewLogSink() {
	ctx := context.Background()
	proc := printProcessor{lines: make(chan string, 2)}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(proc))
	logs, err := otelgov.NewLogSink(otelgov.WithLoggerProvider(lp))
	if err != nil {
		panic(err)
	}
	store := memstore.New()
	d, err := sink.NewDispatcher(store, []sink.Sink{logs}, sink.WithConcurrency(1))
	if err != nil {
		panic(err)
	}
	runner, err := governance.NewRunner(store, governance.WithOutbox(d))
	if err != nil {
		panic(err)
	}
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	go d.Run(c)
	snap, err := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme",
		"policies":[{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`), time.Time{}, runner.Kinds())
	if err != nil {
		panic(err)
	}
	run, err := runner.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		panic(err)
	}
	_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"})
	fmt.Println("stopped:", err != nil)
	fmt.Println(<-proc.lines)
	fmt.Println(<-proc.lines)
	// Output:
	// stopped: true
	// stopline.incident.created ERROR
	// stopline.run.ended WARN
}
