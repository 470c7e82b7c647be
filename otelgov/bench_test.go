package otelgov_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/otelgov"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/store/sqlite"
)

// twentyPolicies is the policy set of the store benchmarks
// (store/sqlite BenchmarkGovernedStep): 20 built-in non-text policies,
// all allowing.
func twentyPolicies(b *testing.B) *snapshot.PolicySnapshot {
	var ps []string
	for i := range 4 {
		ps = append(ps,
			fmt.Sprintf(`{"id":"tokens-%d","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}}`, i),
			fmt.Sprintf(`{"id":"cost-%d","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}}`, i),
			fmt.Sprintf(`{"id":"steps-%d","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}`, i),
			fmt.Sprintf(`{"id":"pace-%d","kind":"rate_limit","params":{"threshold":"max_steps_per_minute","window_seconds":60}}`, i),
			fmt.Sprintf(`{"id":"clock-%d","kind":"timeout","params":{"threshold":"max_duration_seconds"}}`, i))
	}
	ps[3] = `{"id":"tools","kind":"tool_allowlist","params":{"allow":["search","calculator"]}}`
	ps[4] = `{"id":"no-shell","kind":"tool_denylist","params":{"deny":["shell"]}}`
	doc := `{"tenant_id":"acme","thresholds":{"max_tokens":1e15,"max_cost_cents":1e15,"max_steps":1e15,` +
		`"max_steps_per_minute":1e15,"max_duration_seconds":1e15},"policies":[` + strings.Join(ps, ",") + `]}`
	snap, err := snapshot.Parse("bench.json", []byte(doc), time.Time{}, prevention.Builtin())
	if err != nil {
		b.Fatal(err)
	}
	return snap
}

// BenchmarkStepWithOTel runs, in each iteration, one governed step
// without an observer and one with OpenTelemetry (an SDK TracerProvider
// with a batch span processor and an exporter that discards, a
// MeterProvider with a manual reader), each run on a store of its own of
// the same kind, each first every other iteration, and reports both
// times, their ratio, and the time spent in the observer's StepDone:
//
//	go test -run '^$' -bench StepWithOTel -benchtime 8000x -count 3 ./otelgov/
//
// On memstore a step is a few microseconds, so the ratio shows the
// observer's whole cost; on SQLite with its default durability (FULL,
// one fsync per step) it is a governed step as it is run.
func BenchmarkStepWithOTel(b *testing.B) {
	stores := []struct {
		name string
		open func(b *testing.B, name string) governance.Store
	}{
		{"memstore", func(*testing.B, string) governance.Store { return memstore.New() }},
		{"sqlite-full", func(b *testing.B, name string) governance.Store {
			s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), name+".db"))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
	}
	// Events the Observer drops would make it look cheaper than it is.
	var dropped atomic.Int64
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		if strings.Contains(err.Error(), "events dropped") {
			dropped.Add(1)
		}
	}))
	for _, st := range stores {
		b.Run(st.name, func(b *testing.B) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
			obs, err := otelgov.New(otelgov.WithTracerProvider(tp), otelgov.WithMeterProvider(mp))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { obs.Shutdown(ctx); tp.Shutdown(ctx); mp.Shutdown(ctx) })
			snap := twentyPolicies(b)
			start := func(name string, opts ...governance.Option) *governance.Run {
				r, err := governance.NewRunner(st.open(b, name), opts...)
				if err != nil {
					b.Fatal(err)
				}
				run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
				if err != nil {
					b.Fatal(err)
				}
				return run
			}
			tw := &timedObserver{o: obs}
			plain, observed := start("plain"), start("observed", governance.WithObserver(tw))
			in := governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Model: "gpt-4o-mini",
				Input: `{"q":"weather in Paris"}`, Tokens: 812, CostCents: 0.4}
			var plainNS, otelNS time.Duration
			b.ResetTimer()
			step := func(run *governance.Run) time.Duration {
				t0 := time.Now()
				if _, err := run.Step(ctx, in); err != nil {
					b.Fatal(err)
				}
				return time.Since(t0)
			}
			for i := range b.N {
				// Each goes first every other iteration, so that neither
				// always follows the other's commit.
				if i%2 == 0 {
					plainNS += step(plain)
					otelNS += step(observed)
				} else {
					otelNS += step(observed)
					plainNS += step(plain)
				}
			}
			b.ReportMetric(float64(plainNS.Nanoseconds())/float64(b.N), "plain-ns/op")
			b.ReportMetric(float64(otelNS.Nanoseconds())/float64(b.N), "otel-ns/op")
			b.ReportMetric(float64(otelNS)/float64(plainNS), "ratio")
			b.ReportMetric(float64(tw.d.Nanoseconds())/float64(b.N), "observer-ns/op")
			obs.ForceFlush(ctx)
			if n := dropped.Load(); n > 0 {
				b.Errorf("the observer dropped events (%d reports)", n)
			}
		})
	}
}

// BenchmarkStepDone is the Observer's work for one allowed step, with
// the SDK set up as in BenchmarkStepWithOTel: step-wait-ns/op is what the
// step waits for (queueing the event), ns/op the whole work, spans and
// measurements included, done by the Observer's goroutine (flushed every
// 1,024 events, so that none is dropped):
//
//	go test -run '^$' -bench StepDone -benchmem ./otelgov/
func BenchmarkStepDone(b *testing.B) {
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))
	obs, err := otelgov.New(otelgov.WithTracerProvider(tp), otelgov.WithMeterProvider(mp))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { obs.Shutdown(ctx); tp.Shutdown(ctx); mp.Shutdown(ctx) })
	now := time.Now()
	obs.RunStarted(ctx, governance.RunEvent{Run: governance.RunRecord{RunID: "RUN-1", TenantID: "acme", SnapshotID: "SNAP-1", Status: governance.StatusRunning}, At: now})
	e := governance.StepEvent{
		RunID: "RUN-1", TenantID: "acme", SnapshotID: "SNAP-1", SnapshotHash: strings.Repeat("a", 64), At: now,
		Input:      governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Model: "gpt-4o-mini", Input: `{"q":"weather in Paris"}`, Tokens: 812, CostCents: 0.4},
		Evaluation: prevention.Evaluation{Decision: prevention.Allowed()}, Status: "ok", Recorded: true,
		RecordHash: strings.Repeat("b", 64), TotalTokens: 812, TotalCostCents: 0.4,
		EvaluationTime: time.Microsecond, Duration: 100 * time.Microsecond,
	}
	var wait time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		e.Index = i
		t0 := time.Now()
		obs.StepDone(ctx, e)
		wait += time.Since(t0)
		if i%1024 == 1023 {
			obs.ForceFlush(ctx)
		}
	}
	obs.ForceFlush(ctx)
	b.ReportMetric(float64(wait.Nanoseconds())/float64(b.N), "step-wait-ns/op")
}

// timedObserver passes events to an Observer and adds up the time its
// StepDone takes: the part of a step's time spent in the observer,
// apart from the disk's.
type timedObserver struct {
	o *otelgov.Observer
	d time.Duration // steps of one run are observed one at a time
}

func (t *timedObserver) RunStarted(ctx context.Context, e governance.RunEvent) {
	t.o.RunStarted(ctx, e)
}
func (t *timedObserver) RunEnded(ctx context.Context, e governance.RunEvent) { t.o.RunEnded(ctx, e) }
func (t *timedObserver) StepDone(ctx context.Context, e governance.StepEvent) {
	start := time.Now()
	t.o.StepDone(ctx, e)
	t.d += time.Since(start)
}
