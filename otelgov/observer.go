package otelgov

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

// Observer turns what the runs of a governance.Runner do into
// OpenTelemetry spans and metrics (see the package documentation for
// every span, attribute and metric). Install it with
// governance.WithObserver. It is safe for concurrent use by many runs,
// and may observe several runners.
//
// The runner's calls (RunStarted, StepDone, RunEnded) only queue the
// event: the spans and the measurements are made by a goroutine of the
// Observer's own, so that a step never waits for OpenTelemetry (see
// "Bounded delay" in the package documentation). What is queued is
// handed to the providers within 100 ms; ForceFlush hands it over at
// once, and Shutdown, which a program calls before shutting its providers
// down, does so and stops the goroutine.
type Observer struct {
	tracer  trace.Tracer
	ins     *instruments
	content bool
	labels  []string

	q queue

	// Used by the goroutine alone (work.go).
	runs map[runKey]*runState
}

var _ governance.Observer = (*Observer)(nil)

type runKey struct{ tenant, run string }

// DefaultMaxQueue is how many events an Observer keeps waiting for its
// goroutine by default (WithMaxQueue).
const DefaultMaxQueue = 2048

// New returns an Observer and starts its goroutine. Defaults: the global
// TracerProvider and MeterProvider (otel.GetTracerProvider,
// otel.GetMeterProvider), no step text, metadata value or run label on
// spans, a queue of DefaultMaxQueue events. It fails if an option is
// invalid or the MeterProvider refuses an instrument.
func New(opts ...Option) (*Observer, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("otelgov: New: %w", err)
		}
	}
	ins, err := newInstruments(cfg.mp.Meter(scopeName))
	if err != nil {
		return nil, fmt.Errorf("otelgov: New: %w", err)
	}
	o := &Observer{
		tracer:  cfg.tp.Tracer(scopeName),
		ins:     ins,
		content: cfg.content,
		labels:  cfg.labels,
		runs:    map[runKey]*runState{},
	}
	o.q.init(cfg.maxQueue, handOverDelay)
	go o.work()
	return o, nil
}

// handOverDelay bounds how long an event waits in the queue before the
// goroutine hands it to the providers.
const handOverDelay = 100 * time.Millisecond

// RunStarted queues the start of the run's span, a child of the span in
// ctx (the context given to Runner.Start, Enqueue or Run) when there is
// one. A run whose start finds the queue full is not traced.
func (o *Observer) RunStarted(ctx context.Context, e governance.RunEvent) {
	ev := event{kind: eventStart, span: trace.SpanContextFromContext(ctx), run: e}
	if len(o.labels) > 0 {
		ev.labels = make([]attribute.KeyValue, 0, len(o.labels))
		for _, k := range o.labels {
			if v, ok := e.Run.Labels[k]; ok {
				ev.labels = append(ev.labels, attribute.String(labelPrefix+k, v))
			}
		}
	}
	o.q.put(&ev, runKey{e.Run.TenantID, e.Run.RunID})
}

// StepDone queues the step's span, a child of its run's, from e.At to
// e.At+e.Duration, and the step's measurements. What the goroutine reads
// later is copied now (the findings, and the metadata it uses), and the
// step's text is kept only when WithContent exports it.
func (o *Observer) StepDone(ctx context.Context, e governance.StepEvent) {
	ev := event{kind: eventStep, span: trace.SpanContextFromContext(ctx), step: e}
	ev.step.Evaluation.Findings = append([]prevention.Decision(nil), e.Evaluation.Findings...)
	ev.step.Input.Metadata = nil
	if !o.content {
		// Not exported: not kept either (a step's text can be megabytes).
		ev.step.Input.Input, ev.step.Input.Output = "", ""
	} else if len(e.Input.Metadata) > 0 {
		ev.step.Input.Metadata = make(map[string]string, len(e.Input.Metadata))
		for k, v := range e.Input.Metadata {
			ev.step.Input.Metadata[k] = v
		}
	}
	if e.Input.Type == prevention.StepLLMResponse {
		ev.usageIn, ev.usageOut, ev.usage = usage(e.Input.Metadata)
	}
	o.q.put(&ev, runKey{e.TenantID, e.RunID})
}

// RunEnded queues the end of the run's span, at e.At (or at its last
// step's end, if later), with its outcome. The end of a run whose start
// was queued is queued even when the queue is full, so that no run span
// is left open.
func (o *Observer) RunEnded(ctx context.Context, e governance.RunEvent) {
	ev := event{kind: eventEnd, run: e}
	if e.Violation != nil {
		ev.violation = *e.Violation
		ev.run.Violation = &ev.violation
	}
	o.q.put(&ev, runKey{e.Run.TenantID, e.Run.RunID})
}

// ForceFlush hands every queued event to the providers (it does not
// flush the providers themselves) and returns when it is done, or with
// ctx's error when ctx ends first.
func (o *Observer) ForceFlush(ctx context.Context) error {
	return o.q.flush(ctx)
}

// Shutdown hands every queued event to the providers and stops the
// Observer's goroutine; later events are dropped. It returns when it is
// done, or with ctx's error when ctx ends first (the goroutine stops once
// the providers let it). Call it before shutting the providers down.
// Spans of runs still in progress are not ended.
func (o *Observer) Shutdown(ctx context.Context) error {
	return o.q.shutdown(ctx)
}

// usage reads the input and output tokens llmhttp records in a step's
// metadata, when both are there as non-negative decimal integers.
func usage(md map[string]string) (in, out int64, ok bool) {
	is, ok1 := md[metaInputTokens]
	os, ok2 := md[metaOutputTokens]
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	in, err1 := strconv.ParseInt(is, 10, 64)
	out, err2 := strconv.ParseInt(os, 10, 64)
	if err1 != nil || err2 != nil || in < 0 || out < 0 {
		return 0, 0, false
	}
	return in, out, true
}
