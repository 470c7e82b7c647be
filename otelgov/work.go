package otelgov

import (
	"context"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

// runState is a run whose span is open: its span, the span it is a
// child of, and when its latest step's span ended (so that the run's
// span never ends before its children).
type runState struct {
	span    trace.Span
	ctx     context.Context // carries span
	parent  trace.SpanContext
	lastEnd time.Time
}

// work is the Observer's goroutine: it makes the spans and the
// measurements of the queued events, in the order the runner reported
// them.
func (o *Observer) work() {
	o.q.run(func(e *event) {
		switch e.kind {
		case eventStart:
			o.start(e)
		case eventStep:
			o.stepDone(e)
		case eventEnd:
			o.end(e)
		}
	})
}

func (o *Observer) start(e *event) {
	r := &e.run.Run
	attrs := make([]attribute.KeyValue, 0, 6+len(e.labels))
	attrs = append(attrs,
		keyRunID.String(r.RunID), keyTenantID.String(r.TenantID),
		keySnapshotID.String(r.SnapshotID), keySnapshotHash.String(e.run.SnapshotHash),
		keyRunStatus.String(string(r.Status)),
	)
	if r.PolicyVersion > 0 {
		attrs = append(attrs, keyPolicyVersion.Int(r.PolicyVersion))
	}
	attrs = append(attrs, e.labels...)
	parent := trace.ContextWithSpanContext(context.Background(), e.span)
	ctx, span := o.tracer.Start(parent, runSpanName, trace.WithTimestamp(e.run.At),
		trace.WithSpanKind(trace.SpanKindInternal), trace.WithAttributes(attrs...))
	o.runs[runKey{r.TenantID, r.RunID}] = &runState{span: span, ctx: ctx, parent: e.span, lastEnd: e.run.At}
	o.ins.active.Add(ctx, 1, o.ins.activeSets)
}

func (o *Observer) stepDone(e *event) {
	s := &e.step
	st := o.runs[runKey{s.TenantID, s.RunID}]
	opts := make([]trace.SpanStartOption, 0, 3)
	opts = append(opts, trace.WithTimestamp(s.At), trace.WithSpanKind(trace.SpanKindInternal))
	var parent context.Context
	if st != nil {
		// The step's span is a child of the run's; the span the caller's
		// context carried, if it is another one, is linked.
		if sc := e.span; sc.IsValid() && !sc.Equal(st.parent) && !sc.Equal(st.span.SpanContext()) {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: sc}))
		}
		parent = st.ctx
	} else {
		parent = trace.ContextWithSpanContext(context.Background(), e.span)
	}
	ctx, span := o.tracer.Start(parent, stepSpanName(s.Input.Type), opts...)
	if span.IsRecording() {
		o.stepAttributes(span, e)
	}
	end := s.At.Add(s.Duration)
	if st != nil && end.After(st.lastEnd) {
		st.lastEnd = end
	}
	span.End(trace.WithTimestamp(end))
	o.ins.step(ctx, s)
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
func (o *Observer) stepAttributes(span trace.Span, e *event) {
	s := &e.step
	d := &s.Evaluation.Decision
	buf := attrPool.Get().(*[]attribute.KeyValue)
	defer func() { clear(*buf); attrPool.Put(buf) }()
	attrs := (*buf)[:0]
	attrs = append(attrs,
		keyRunID.String(s.RunID), keyTenantID.String(s.TenantID),
		keyStepIndex.Int(s.Index), keyStepType.String(string(s.Input.Type)),
		keySnapshotID.String(s.SnapshotID),
		keyStepStatus.String(string(s.Status)),
		keyDecision.String(d.Action.String()),
		keyStepTokens.Int64(s.Input.Tokens), keyStepCost.Float64(s.Input.CostCents),
		keyRunTotalTokens.Int64(s.TotalTokens), keyRunTotalCost.Float64(s.TotalCostCents),
	)
	if d.Action != prevention.Allow {
		attrs = appendDecision(attrs, d, false)
	}
	if s.Recorded {
		attrs = append(attrs, keyRecordHash.String(s.RecordHash))
	}
	if s.Inflection {
		attrs = append(attrs, keyTerminationReason.String(string(d.Reason)), keyIncidentID.String(s.IncidentID))
	}
	attrs = appendGenAI(attrs, e)
	if o.content {
		attrs = appendContent(attrs, &s.Input)
	}
	span.SetAttributes(attrs...) // copied by the span
	*buf = attrs

	at := trace.WithTimestamp(s.At)
	for i := range s.Evaluation.Findings {
		f := &s.Evaluation.Findings[i]
		span.AddEvent(eventFinding, at, trace.WithAttributes(appendDecision(make([]attribute.KeyValue, 0, 9), f, true)...))
	}
	switch {
	case s.Inflection:
		span.AddEvent(eventInflection, at, trace.WithAttributes(inflectionAttributes(s.Index, d, s.RecordHash)...))
		span.AddEvent(eventIncident, at, trace.WithAttributes(keyIncidentID.String(s.IncidentID)))
		if s.Err != nil {
			span.RecordError(s.Err, at)
		}
		span.SetStatus(codes.Error, stopDescription(s.Index, d))
	case s.Err != nil:
		// Not recorded: not allowed (unless the runner fails open), and
		// the run has ended.
		span.SetAttributes(keyErrorType.String(errorRecordFailed))
		span.RecordError(s.Err, at)
		span.SetStatus(codes.Error, s.Err.Error())
	case d.Action == prevention.Block:
		span.SetStatus(codes.Error, stopDescription(s.Index, d))
	}
}

func (o *Observer) end(e *event) {
	r := &e.run.Run
	k := runKey{r.TenantID, r.RunID}
	st := o.runs[k]
	delete(o.runs, k)
	ctx := context.Background()
	if st != nil {
		ctx = st.ctx
	}
	o.ins.runEnded(ctx, &e.run, st != nil)
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
		at := trace.WithTimestamp(e.run.At)
		v := e.run.Violation
		if v != nil && e.run.Err == nil {
			span.AddEvent(eventInflection, at, trace.WithAttributes(inflectionAttributes(v.StepIndex, &v.Decision, v.RecordHash)...))
			span.AddEvent(eventIncident, at, trace.WithAttributes(keyIncidentID.String(v.IncidentID)))
		}
		switch {
		case e.run.Err != nil:
			span.SetAttributes(keyErrorType.String(errorRecordFailed))
			span.RecordError(e.run.Err, at)
			span.SetStatus(codes.Error, e.run.Err.Error())
		case v != nil:
			span.SetStatus(codes.Error, stopDescription(v.StepIndex, &v.Decision))
		case r.Status == governance.StatusFailed || r.Status == governance.StatusFailedPolicy:
			span.SetStatus(codes.Error, runFailure(r))
		}
	}
	end := e.run.At
	if st.lastEnd.After(end) {
		end = st.lastEnd
	}
	span.End(trace.WithTimestamp(end))
}

// appendDecision appends a decision's attributes: its policy, source,
// reason, threshold, limit and observed value, and for a finding its
// action, enforcement and message.
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
func appendGenAI(attrs []attribute.KeyValue, e *event) []attribute.KeyValue {
	in := &e.step.Input
	switch in.Type {
	case prevention.StepLLMResponse:
		attrs = append(attrs, keyGenAIOperation.String(operationChat))
		if in.Model != "" {
			attrs = append(attrs, keyGenAIRespModel.String(in.Model))
		}
		if e.usage {
			attrs = append(attrs, keyGenAIInputTokens.Int64(e.usageIn), keyGenAIOutputTokens.Int64(e.usageOut))
		}
		return attrs
	case prevention.StepToolCall, prevention.StepToolResult:
		attrs = append(attrs, keyGenAIOperation.String(operationExecuteTool))
	}
	if in.Tool != "" {
		attrs = append(attrs, keyGenAIToolName.String(in.Tool))
	}
	if in.Model != "" {
		attrs = append(attrs, keyGenAIRequestModel.String(in.Model))
	}
	return attrs
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
