package otelgov

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
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
// It keeps the span of each run between the run's start and its end: a
// run that is never ended (neither Finish, Abort, nor a stop) keeps its
// span open, and a little memory, for the Observer's lifetime.
type Observer struct {
	tracer  trace.Tracer
	ins     *instruments
	content bool
	labels  []string

	mu   sync.Mutex
	runs map[runKey]*runState
}

var _ governance.Observer = (*Observer)(nil)

type runKey struct{ tenant, run string }

// runState is an open run: its span, and when its latest step's span
// ended (so that the run's span never ends before its children).
type runState struct {
	span    trace.Span
	parent  trace.SpanContext // the caller's span the run's span is a child of
	lastEnd atomic.Int64      // Unix nanoseconds
}

// New returns an Observer. Defaults: the global TracerProvider and
// MeterProvider (otel.GetTracerProvider, otel.GetMeterProvider), no step
// text, metadata value or run label on spans. It fails if an option is
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
	return &Observer{
		tracer:  cfg.tp.Tracer(scopeName),
		ins:     ins,
		content: cfg.content,
		labels:  cfg.labels,
		runs:    map[runKey]*runState{},
	}, nil
}

// RunStarted starts the run's span, a child of the span in ctx (the
// context given to Runner.Start, Enqueue or Run) when there is one.
func (o *Observer) RunStarted(ctx context.Context, e governance.RunEvent) {
	r := &e.Run
	attrs := make([]attribute.KeyValue, 0, 6+len(o.labels))
	attrs = append(attrs,
		keyRunID.String(r.RunID), keyTenantID.String(r.TenantID),
		keySnapshotID.String(r.SnapshotID), keySnapshotHash.String(e.SnapshotHash),
		keyRunStatus.String(string(r.Status)),
	)
	if r.PolicyVersion > 0 {
		attrs = append(attrs, keyPolicyVersion.Int(r.PolicyVersion))
	}
	for _, k := range o.labels {
		if v, ok := r.Labels[k]; ok {
			attrs = append(attrs, attribute.String(labelPrefix+k, v))
		}
	}
	_, span := o.tracer.Start(ctx, runSpanName, trace.WithTimestamp(e.At),
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	st := &runState{span: span, parent: trace.SpanContextFromContext(ctx)}
	st.lastEnd.Store(e.At.UnixNano())
	o.mu.Lock()
	o.runs[runKey{r.TenantID, r.RunID}] = st
	o.mu.Unlock()
	o.ins.active.Add(ctx, 1, o.ins.activeSets)
}

// StepDone records the step's span, a child of its run's span, from
// e.At to e.At+e.Duration, and the step's metrics.
func (o *Observer) StepDone(ctx context.Context, e governance.StepEvent) {
	o.mu.Lock()
	st := o.runs[runKey{e.TenantID, e.RunID}]
	o.mu.Unlock()

	opts := make([]trace.SpanStartOption, 0, 3)
	opts = append(opts, trace.WithTimestamp(e.At), trace.WithSpanKind(trace.SpanKindInternal))
	parent := ctx
	if st != nil {
		// The step's span is a child of the run's; the span the caller's
		// context carries, if it is another one, is linked.
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() && !sc.Equal(st.parent) && !sc.Equal(st.span.SpanContext()) {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
		parent = trace.ContextWithSpan(ctx, st.span)
	}
	sctx, span := o.tracer.Start(parent, stepSpanName(e.Input.Type), opts...)
	end := e.At.Add(e.Duration)
	if span.IsRecording() {
		o.stepAttributes(span, &e)
	}
	if st != nil && end.UnixNano() > st.lastEnd.Load() {
		st.lastEnd.Store(end.UnixNano()) // a run's steps are observed one at a time
	}
	span.End(trace.WithTimestamp(end))
	o.ins.step(sctx, &e)
}

// attrPool holds the slices step attributes are built in: a span copies
// the attributes it is given.
var attrPool = sync.Pool{New: func() any { s := make([]attribute.KeyValue, 0, 32); return &s }}

// stepSpanName is the name of a step's span.
func stepSpanName(t prevention.StepType) string {
	switch t {
	case prevention.StepLLMResponse:
		return stepSpanPrefix + "llm_response"
	case prevention.StepToolCall:
		return stepSpanPrefix + "tool_call"
	case prevention.StepToolResult:
		return stepSpanPrefix + "tool_result"
	case prevention.StepMessage:
		return stepSpanPrefix + "message"
	}
	return stepSpanPrefix + string(t)
}

// stepAttributes sets the attributes of a step's (recording) span, its
// events and its status.
func (o *Observer) stepAttributes(span trace.Span, e *governance.StepEvent) {
	d := &e.Evaluation.Decision
	buf := attrPool.Get().(*[]attribute.KeyValue)
	defer func() { clear(*buf); attrPool.Put(buf) }()
	attrs := (*buf)[:0]
	attrs = append(attrs,
		keyRunID.String(e.RunID), keyTenantID.String(e.TenantID),
		keyStepIndex.Int(e.Index), keyStepType.String(string(e.Input.Type)),
		keySnapshotID.String(e.SnapshotID),
		keyStepStatus.String(string(e.Status)),
		keyDecision.String(d.Action.String()),
		keyStepTokens.Int64(e.Input.Tokens), keyStepCost.Float64(e.Input.CostCents),
		keyRunTotalTokens.Int64(e.TotalTokens), keyRunTotalCost.Float64(e.TotalCostCents),
	)
	if d.Action != prevention.Allow {
		attrs = appendDecision(attrs, d, false)
	}
	if e.Recorded {
		attrs = append(attrs, keyRecordHash.String(e.RecordHash))
	}
	if e.Inflection {
		attrs = append(attrs, keyTerminationReason.String(string(d.Reason)), keyIncidentID.String(e.IncidentID))
	}
	attrs = o.appendGenAI(attrs, e)
	if o.content {
		attrs = appendContent(attrs, &e.Input)
	}
	span.SetAttributes(attrs...) // copied by the span
	*buf = attrs

	at := trace.WithTimestamp(e.At)
	for i := range e.Evaluation.Findings {
		f := &e.Evaluation.Findings[i]
		span.AddEvent(eventFinding, at, trace.WithAttributes(appendDecision(make([]attribute.KeyValue, 0, 9), f, true)...))
	}
	switch {
	case e.Inflection:
		span.AddEvent(eventInflection, at, trace.WithAttributes(inflectionAttributes(e.Index, d, e.RecordHash)...))
		span.AddEvent(eventIncident, at, trace.WithAttributes(keyIncidentID.String(e.IncidentID)))
		if e.Err != nil {
			span.RecordError(e.Err, at)
		}
		span.SetStatus(codes.Error, stopDescription(e.Index, d))
	case e.Err != nil:
		// Not recorded: not allowed (unless the runner fails open), and
		// the run has ended.
		span.SetAttributes(keyErrorType.String(errorRecordFailed))
		span.RecordError(e.Err, at)
		span.SetStatus(codes.Error, e.Err.Error())
	case d.Action == prevention.Block:
		span.SetStatus(codes.Error, stopDescription(e.Index, d))
	}
}

// RunEnded ends the run's span at e.At (or at its last step's end, if
// later), with its outcome; a run stopped by a policy or a failure has
// status Error, and its inflection point and incident as events.
func (o *Observer) RunEnded(ctx context.Context, e governance.RunEvent) {
	r := &e.Run
	k := runKey{r.TenantID, r.RunID}
	o.mu.Lock()
	st := o.runs[k]
	delete(o.runs, k)
	o.mu.Unlock()
	o.ins.runEnded(ctx, &e, st != nil)
	if st == nil {
		return // ended already (an end that could not be recorded, then one that was)
	}
	span := st.span
	if span.IsRecording() {
		attrs := make([]attribute.KeyValue, 0, 10)
		attrs = append(attrs,
			keyRunStatus.String(string(r.Status)), keyTerminationReason.String(string(r.TerminationReason)),
			keyRunSteps.Int(r.StepCount), keyRunTotalTokens.Int64(r.TotalTokens), keyRunTotalCost.Float64(r.TotalCostCents),
		)
		if r.EndedAt != nil {
			attrs = append(attrs, keyRecordHash.String(r.HeadHash))
		}
		if r.ViolationPolicyID != "" {
			attrs = append(attrs, keyPolicyID.String(r.ViolationPolicyID))
		}
		if r.StoppedAtStep != nil {
			attrs = append(attrs, keyStoppedAtStep.Int(*r.StoppedAtStep))
		}
		if r.IncidentID != "" {
			attrs = append(attrs, keyIncidentID.String(r.IncidentID))
		}
		span.SetAttributes(attrs...)
		at := trace.WithTimestamp(e.At)
		if v := e.Violation; v != nil && e.Err == nil {
			span.AddEvent(eventInflection, at, trace.WithAttributes(inflectionAttributes(v.StepIndex, &v.Decision, v.RecordHash)...))
			span.AddEvent(eventIncident, at, trace.WithAttributes(keyIncidentID.String(v.IncidentID)))
		}
		switch {
		case e.Err != nil:
			span.SetAttributes(keyErrorType.String(errorRecordFailed))
			span.RecordError(e.Err, at)
			span.SetStatus(codes.Error, e.Err.Error())
		case e.Violation != nil:
			span.SetStatus(codes.Error, stopDescription(e.Violation.StepIndex, &e.Violation.Decision))
		case r.Status == governance.StatusFailed || r.Status == governance.StatusFailedPolicy:
			span.SetStatus(codes.Error, runFailure(r))
		}
	}
	end := e.At
	if last := st.lastEnd.Load(); last > end.UnixNano() {
		end = time.Unix(0, last).UTC()
	}
	span.End(trace.WithTimestamp(end))
}

// appendDecision appends a decision's attributes: its action (when
// withAction), policy, source, reason, threshold, limit, observed value,
// message, and (for a finding) enforcement.
func appendDecision(attrs []attribute.KeyValue, d *prevention.Decision, finding bool) []attribute.KeyValue {
	if finding {
		attrs = append(attrs, keyDecision.String(d.Action.String()), keyEnforcement.String(enforcementOf(d)))
	}
	if d.PolicyID != "" {
		attrs = append(attrs, keyPolicyID.String(d.PolicyID))
	}
	if d.Source != "" {
		attrs = append(attrs, keySource.String(string(d.Source)))
	}
	if d.Reason != "" {
		attrs = append(attrs, keyReason.String(string(d.Reason)))
	}
	if d.Threshold != "" {
		attrs = append(attrs, keyThreshold.String(d.Threshold), keyLimit.Float64(d.Limit), keyObserved.Float64(d.Observed))
	}
	if finding && d.Message != "" {
		attrs = append(attrs, keyMessage.String(d.Message))
	}
	return attrs
}

func inflectionAttributes(index int, d *prevention.Decision, recordHash string) []attribute.KeyValue {
	attrs := make([]attribute.KeyValue, 0, 10)
	attrs = append(attrs, keyStepIndex.Int(index), keyTerminationReason.String(string(d.Reason)))
	attrs = appendDecision(attrs, d, false)
	if d.Message != "" {
		attrs = append(attrs, keyMessage.String(d.Message))
	}
	if recordHash != "" {
		attrs = append(attrs, keyRecordHash.String(recordHash))
	}
	return attrs
}

// stopDescription is the status description of a span whose step
// stopped the run.
func stopDescription(index int, d *prevention.Decision) string {
	who := string(d.Source)
	if who == "" {
		who = "runner"
	}
	if d.PolicyID != "" {
		who += " " + d.PolicyID
	}
	return "stopped at step " + strconv.Itoa(index) + " by " + who + " (" + string(d.Reason) + ")"
}

// runFailure is the status description of a run that failed without a
// policy or hook stopping it (an unrecordable step, a failed loop).
func runFailure(r *governance.RunRecord) string {
	s := "run " + string(r.Status) + " (" + string(r.TerminationReason) + ")"
	if r.Message != "" {
		s += ": " + r.Message
	}
	return s
}

// appendGenAI appends the GenAI semantic-convention attributes that
// apply to the step.
func (o *Observer) appendGenAI(attrs []attribute.KeyValue, e *governance.StepEvent) []attribute.KeyValue {
	in := &e.Input
	switch in.Type {
	case prevention.StepLLMResponse:
		attrs = append(attrs, keyGenAIOperation.String(operationChat))
		if in.Model != "" {
			attrs = append(attrs, keyGenAIRespModel.String(in.Model))
		}
		if it, ot, ok := usage(in.Metadata); ok {
			attrs = append(attrs, keyGenAIInputTokens.Int64(it), keyGenAIOutputTokens.Int64(ot))
		}
		return attrs
	case prevention.StepToolCall, prevention.StepToolResult:
		attrs = append(attrs, keyGenAIOperation.String(operationExecuteTo))
	}
	if in.Tool != "" {
		attrs = append(attrs, keyGenAIToolName.String(in.Tool))
	}
	if in.Model != "" {
		attrs = append(attrs, keyGenAIRequestModel.String(in.Model))
	}
	return attrs
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

func appendContent(attrs []attribute.KeyValue, in *governance.StepInput) []attribute.KeyValue {
	if in.Input != "" {
		attrs = append(attrs, keyStepInput.String(in.Input))
	}
	if in.Output != "" {
		attrs = append(attrs, keyStepOutput.String(in.Output))
	}
	for k, v := range in.Metadata {
		attrs = append(attrs, attribute.String(metadataPrefix+k, v))
	}
	return attrs
}
