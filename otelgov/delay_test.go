package otelgov_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/otelgov"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
)

// stuckExporter is a span and metric exporter whose exports block until
// the test ends, whatever their context says; with fail set they return
// an error at once instead.
type stuckExporter struct {
	fail    bool
	release chan struct{}
	once    sync.Once
	calls   atomic.Int64
}

func newStuckExporter(t *testing.T, fail bool) *stuckExporter {
	e := &stuckExporter{fail: fail, release: make(chan struct{})}
	t.Cleanup(e.free)
	return e
}

// free lets blocked exports return, and later ones return at once.
func (e *stuckExporter) free() { e.once.Do(func() { close(e.release) }) }

func (e *stuckExporter) wait() error {
	e.calls.Add(1)
	if e.fail {
		return errors.New("collector unreachable")
	}
	<-e.release
	return nil
}

func (e *stuckExporter) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return e.wait() }

func (e *stuckExporter) Export(context.Context, *metricdata.ResourceMetrics) error { return e.wait() }

func (e *stuckExporter) Temporality(k sdkmetric.InstrumentKind) metricdata.Temporality {
	return sdkmetric.DefaultTemporalitySelector(k)
}

func (e *stuckExporter) Aggregation(k sdkmetric.InstrumentKind) sdkmetric.Aggregation {
	return sdkmetric.DefaultAggregationSelector(k)
}

func (e *stuckExporter) ForceFlush(context.Context) error { return nil }

func (e *stuckExporter) Shutdown(context.Context) error { return nil }

// delayPolicies stop each run at its 41st step.
const delayPolicies = `{"tenant_id":"acme","thresholds":{"max_steps":40},"policies":[
	{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
	{"id":"no-shell","kind":"tool_denylist","params":{"deny":["shell"]},"enforcement":"warn"}]}`

// outcome is what a run of the script decided and recorded.
type outcome struct {
	Results []governance.StepResult
	Err     string
	Run     governance.RunRecord
}

// script runs runs × 41 steps with fixed run ids on a fake clock, and
// returns the steps' results and the slowest Step call.
func script(t *testing.T, opts ...governance.Option) ([]outcome, time.Duration) {
	t.Helper()
	clock := governance.NewFakeClock(t0)
	ids := 0
	runner, err := governance.NewRunner(memstore.New(), append(opts, governance.WithClock(clock),
		governance.WithIDGenerator(func(kind string) string { ids++; return fmt.Sprintf("%s-%d", kind, ids) }))...)
	if err != nil {
		t.Fatal(err)
	}
	snap := parse(t, delayPolicies)
	var outs []outcome
	var slowest time.Duration
	for r := range 25 {
		var o outcome
		rec, err := runner.Run(ctx, governance.StartOptions{Snapshot: snap, RunID: fmt.Sprintf("RUN-%d", r)}, func(ctx context.Context, run *governance.Run) error {
			for i := range 41 {
				clock.Advance(time.Second)
				in := governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Tokens: 10, CostCents: 0.5, Input: `{"q":"x"}`}
				if i%7 == 3 {
					in.Tool = "shell"
				}
				start := time.Now()
				res, err := run.Step(ctx, in)
				slowest = max(slowest, time.Since(start))
				o.Results = append(o.Results, res)
				if err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			o.Err = err.Error()
		}
		o.Run = rec
		outs = append(outs, o)
	}
	return outs, slowest
}

// TestBoundedDelay: with exporters that block forever or fail, behind
// the SDK's batch span processor and periodic metric reader, or behind a
// span processor that exports synchronously, every step returns
// promptly and every run's outcome is what it is without an observer:
// the same decisions, the same records (hash for hash).
func TestBoundedDelay(t *testing.T) {
	want, _ := script(t)
	var handled atomic.Int64
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) { handled.Add(1) }))
	for _, tc := range []struct {
		name        string
		fail, batch bool
	}{
		{"batch, blocking", false, true},
		{"batch, failing", true, true},
		{"synchronous, blocking", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Shut down after the exporters are released (cleanups run
			// last first): a periodic reader's Shutdown waits for an export
			// in progress, even past its context's deadline.
			var obs *otelgov.Observer
			var tp *sdktrace.TracerProvider
			var mp *sdkmetric.MeterProvider
			t.Cleanup(func() { obs.Shutdown(ctx); tp.Shutdown(ctx); mp.Shutdown(ctx) })
			spans, metrics := newStuckExporter(t, tc.fail), newStuckExporter(t, tc.fail)
			proc := sdktrace.NewSimpleSpanProcessor(spans)
			if tc.batch {
				// A small queue, so that it fills and drops within the test.
				proc = sdktrace.NewBatchSpanProcessor(spans, sdktrace.WithMaxQueueSize(64),
					sdktrace.WithMaxExportBatchSize(16), sdktrace.WithBatchTimeout(time.Millisecond))
			}
			tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(proc))
			mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metrics,
				sdkmetric.WithInterval(5*time.Millisecond), sdkmetric.WithTimeout(5*time.Millisecond))))
			var err error
			obs, err = otelgov.New(otelgov.WithTracerProvider(tp), otelgov.WithMeterProvider(mp))
			if err != nil {
				t.Fatal(err)
			}
			got, slowest := script(t, governance.WithObserver(obs))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("outcomes differ from those without an observer (-without +with):\n%s", diff)
			}
			// A correctness bound, not a performance figure: a step that
			// waited for an exporter would wait forever.
			if slowest > 500*time.Millisecond {
				t.Errorf("slowest step took %v with the exporters %s", slowest, tc.name)
			}
			fctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			obs.ForceFlush(fctx) // never returns nil behind a synchronous processor that blocks
			for deadline := time.Now().Add(5 * time.Second); spans.calls.Load() == 0 || metrics.calls.Load() == 0; {
				if time.Now().After(deadline) {
					t.Fatalf("exporters called %d (spans) and %d (metrics) times", spans.calls.Load(), metrics.calls.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}
			t.Logf("%d steps, slowest %v; span exports %d, metric exports %d", 25*41, slowest, spans.calls.Load(), metrics.calls.Load())
		})
	}
	if handled.Load() == 0 {
		t.Error("the failing exporters' errors, and the events dropped, were not reported to otel's error handler")
	}
}

// TestQueueFull: while the Observer's goroutine is held by a provider,
// events beyond the queue are dropped and counted; a run whose start was
// queued still has its end queued, so that its span ends; a run whose
// start was dropped is not traced at all.
func TestQueueFull(t *testing.T) {
	var dropped atomic.Int64
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		if strings.Contains(err.Error(), "events dropped") {
			dropped.Add(1)
		}
	}))
	spans := newStuckExporter(t, false)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSpanProcessor(sdktrace.NewSimpleSpanProcessor(spans)))
	obs, err := otelgov.New(otelgov.WithTracerProvider(tp), otelgov.WithMaxQueue(8))
	if err != nil {
		t.Fatal(err)
	}
	runner, err := governance.NewRunner(memstore.New(), governance.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	snap := parse(t, delayPolicies)
	a, _ := runner.Start(ctx, governance.StartOptions{Snapshot: snap, RunID: "RUN-A"})
	for range 30 { // the first step's span holds the goroutine; the queue fills
		if _, err := a.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := runner.Start(ctx, governance.StartOptions{Snapshot: snap, RunID: "RUN-B"}) // dropped: not traced
	b.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	b.Finish(ctx)
	a.Finish(ctx) // queued beyond the limit: run A was admitted
	spans.free()
	if err := obs.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var runs []string
	steps := 0
	for _, s := range rec.Ended() {
		switch s.Name() {
		case "stopline.run":
			runs = append(runs, attrs(s.Attributes())["stopline.run.id"].AsString())
		case "stopline.step message":
			if attrs(s.Attributes())["stopline.run.id"].AsString() != "RUN-A" {
				t.Errorf("a step of %v was traced", attrs(s.Attributes())["stopline.run.id"])
			}
			steps++
		}
	}
	if strings.Join(runs, ",") != "RUN-A" {
		t.Errorf("run spans ended: %v, want RUN-A alone", runs)
	}
	if steps == 0 || steps >= 30 {
		t.Errorf("%d of run A's 30 steps traced, want some dropped", steps)
	}
	if dropped.Load() == 0 {
		t.Error("the dropped events were not reported")
	}
	if len(rec.Started()) != len(rec.Ended()) {
		t.Errorf("%d spans started, %d ended", len(rec.Started()), len(rec.Ended()))
	}
}
