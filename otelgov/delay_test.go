package otelgov_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

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
	calls   atomic.Int64
}

func newStuckExporter(t *testing.T, fail bool) *stuckExporter {
	e := &stuckExporter{fail: fail, release: make(chan struct{})}
	t.Cleanup(func() { close(e.release) })
	return e
}

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
// the SDK's batch span processor and periodic metric reader, every step
// returns promptly and every run's outcome is what it is without an
// observer: the same decisions, the same records (hash for hash).
func TestBoundedDelay(t *testing.T) {
	want, _ := script(t)
	var handled atomic.Int64
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(error) { handled.Add(1) }))
	for _, fail := range []bool{false, true} {
		name := map[bool]string{false: "blocking", true: "failing"}[fail]
		t.Run(name, func(t *testing.T) {
			// Shut down after the exporters are released (cleanups run
			// last first): a periodic reader's Shutdown waits for an export
			// in progress, even past its context's deadline.
			var tp *sdktrace.TracerProvider
			var mp *sdkmetric.MeterProvider
			t.Cleanup(func() { tp.Shutdown(ctx); mp.Shutdown(ctx) })
			spans, metrics := newStuckExporter(t, fail), newStuckExporter(t, fail)
			// A small queue, so that it fills and drops within the test.
			tp = sdktrace.NewTracerProvider(sdktrace.WithBatcher(spans, sdktrace.WithMaxQueueSize(64),
				sdktrace.WithMaxExportBatchSize(16), sdktrace.WithBatchTimeout(time.Millisecond)))
			mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewPeriodicReader(metrics,
				sdkmetric.WithInterval(5*time.Millisecond), sdkmetric.WithTimeout(5*time.Millisecond))))
			obs, err := otelgov.New(otelgov.WithTracerProvider(tp), otelgov.WithMeterProvider(mp))
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
				t.Errorf("slowest step took %v with the exporters %s", slowest, name)
			}
			if spans.calls.Load() == 0 || metrics.calls.Load() == 0 {
				t.Errorf("exporters called %d (spans) and %d (metrics) times", spans.calls.Load(), metrics.calls.Load())
			}
			t.Logf("%d steps, slowest %v; span exports %d, metric exports %d", 25*41, slowest, spans.calls.Load(), metrics.calls.Load())
		})
	}
	if handled.Load() == 0 {
		t.Error("the failing exporters' errors were not reported to otel's error handler")
	}
}
