package otelgov_test

import (
	"context"
	"fmt"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/otelgov"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// A run stopped at its second step by a step budget: one span for the
// run, one for each step, the stop as an Error with its events.
func Example() {
	ctx := context.Background()
	exporter := tracetest.NewInMemoryExporter() // in a program: an OTLP exporter
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter))
	obs, err := otelgov.New(otelgov.WithTracerProvider(tp))
	if err != nil {
		panic(err)
	}
	runner, err := governance.NewRunner(memstore.New(), governance.WithObserver(obs))
	if err != nil {
		panic(err)
	}
	snap, err := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme","thresholds":{"max_steps":1},
		"policies":[{"id":"one-step","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}]}`),
		time.Now(), runner.Kinds())
	if err != nil {
		panic(err)
	}
	runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Model: "gpt-4o", Tokens: 812}); err != nil {
			return err
		}
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search"})
		return err
	})
	obs.ForceFlush(ctx) // hands what the Observer queued to tp (a program calls obs.Shutdown, then tp.Shutdown, at exit)
	tp.ForceFlush(ctx)  // exports what the batch processor holds

	for _, s := range exporter.GetSpans() {
		var events []string
		for _, e := range s.Events {
			events = append(events, e.Name)
		}
		fmt.Println(s.Name, s.Status.Code, events)
	}
	// Output:
	// stopline.step llm_response Unset []
	// stopline.step tool_call Error [stopline.finding stopline.inflection stopline.incident]
	// stopline.run Error [stopline.inflection stopline.incident]
}
