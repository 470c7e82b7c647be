package otelgov_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/faultstore"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/otelgov"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

var ctx = context.Background()

// t0 is the fake clock's start: spans are laid out on the runner's clock.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// policies: at most 3 steps; the shell tool is warned about.
const policies = `{"tenant_id":"acme","thresholds":{"max_steps":3},"policies":[
	{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
	{"id":"no-shell","kind":"tool_denylist","params":{"deny":["shell"]},"enforcement":"warn"}]}`

func parse(t testing.TB, doc string) *snapshot.PolicySnapshot {
	t.Helper()
	snap, err := snapshot.Parse("policies.json", []byte(doc), t0, prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// harness is a runner observed by an Observer whose spans go to an
// in-memory recorder and whose metrics are read by a manual reader.
type harness struct {
	t      *testing.T
	obs    *otelgov.Observer
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
	reader *sdkmetric.ManualReader
	clock  *governance.FakeClock
	runner *governance.Runner
	store  governance.Store
}

func newHarness(t *testing.T, st governance.Store, opts ...otelgov.Option) *harness {
	t.Helper()
	h := &harness{t: t, spans: tracetest.NewSpanRecorder(), reader: sdkmetric.NewManualReader(), store: st}
	h.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(h.spans))
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	obs, err := otelgov.New(append([]otelgov.Option{otelgov.WithTracerProvider(h.tp), otelgov.WithMeterProvider(mp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	h.obs = obs
	t.Cleanup(func() { obs.Shutdown(ctx); h.tp.Shutdown(ctx); mp.Shutdown(ctx) })
	h.clock = governance.NewFakeClock(t0)
	h.runner, err = governance.NewRunner(st, governance.WithClock(h.clock), governance.WithObserver(obs))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// flush hands what the Observer queued to the providers.
func (h *harness) flush() {
	h.t.Helper()
	if err := h.obs.ForceFlush(ctx); err != nil {
		h.t.Fatal(err)
	}
}

// ended returns the ended spans by name; several of one name are kept in
// order of their end.
func (h *harness) ended() map[string][]sdktrace.ReadOnlySpan {
	h.flush()
	m := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range h.spans.Ended() {
		m[s.Name()] = append(m[s.Name()], s)
	}
	return m
}

func attrs(kvs []attribute.KeyValue) map[string]attribute.Value {
	m := make(map[string]attribute.Value, len(kvs))
	for _, kv := range kvs {
		m[string(kv.Key)] = kv.Value
	}
	return m
}

// want checks attributes: a string, int, int64, float64 or bool each,
// and nil for an attribute that must be absent.
func want(t *testing.T, what string, got []attribute.KeyValue, w map[string]any) {
	t.Helper()
	m := attrs(got)
	for k, v := range w {
		a, ok := m[k]
		switch v := v.(type) {
		case nil:
			if ok {
				t.Errorf("%s: %s = %v, want none", what, k, a.String())
			}
			continue
		case int:
			if !ok || a.AsInt64() != int64(v) {
				t.Errorf("%s: %s = %v (%v), want %d", what, k, a.String(), ok, v)
			}
			continue
		}
		if !ok || a.AsInterface() != v {
			t.Errorf("%s: %s = %#v (%v), want %#v", what, k, a.AsInterface(), ok, v)
		}
	}
}

func event(s sdktrace.ReadOnlySpan, name string) (sdktrace.Event, bool) {
	for _, e := range s.Events() {
		if e.Name == name {
			return e, true
		}
	}
	return sdktrace.Event{}, false
}

// TestCompletedRun: a run started under the caller's span is a child of
// it; each step is a child of the run, timed from the event, with the
// GenAI and governance attributes and never the step's text.
func TestCompletedRun(t *testing.T) {
	h := newHarness(t, memstore.New())
	callerCtx, caller := h.tp.Tracer("agent").Start(ctx, "agent turn")
	snap := parse(t, policies)
	rec, err := h.runner.Run(callerCtx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{"user": "alice@example.com"}},
		func(ctx context.Context, run *governance.Run) error {
			steps := []governance.StepInput{
				{Type: prevention.StepLLMResponse, Model: "gpt-4o", Tokens: 812, CostCents: 1.25, Input: "secret prompt", Output: "secret answer",
					Metadata: map[string]string{llmhttp.MetaInputTokens: "700", llmhttp.MetaOutputTokens: "112", "note": "secret metadata"}},
				{Type: prevention.StepToolCall, Model: "gpt-4o", Tool: "search", Input: `{"q":"secret query"}`},
				{Type: prevention.StepToolResult, Tool: "search", Output: "secret result"},
			}
			for i, in := range steps {
				h.clock.Set(t0.Add(time.Duration(i+1) * time.Second))
				if _, err := run.Step(ctx, in); err != nil {
					return err
				}
			}
			h.clock.Set(t0.Add(5 * time.Second))
			return nil
		})
	caller.End()
	if err != nil || rec.Status != governance.StatusSucceeded {
		t.Fatalf("run: %v %s", err, rec.Status)
	}
	spans := h.ended()
	runs := spans["stopline.run"]
	if len(runs) != 1 {
		t.Fatalf("%d run spans", len(runs))
	}
	rs := runs[0]
	if rs.Parent().SpanID() != caller.SpanContext().SpanID() || rs.SpanContext().TraceID() != caller.SpanContext().TraceID() {
		t.Errorf("the run's span is not a child of the caller's: parent %v", rs.Parent())
	}
	if !rs.StartTime().Equal(t0) || !rs.EndTime().Equal(t0.Add(5*time.Second)) {
		t.Errorf("run span from %v to %v", rs.StartTime(), rs.EndTime())
	}
	if rs.Status().Code != codes.Unset || rs.SpanKind() != trace.SpanKindInternal {
		t.Errorf("run span status %v, kind %v", rs.Status(), rs.SpanKind())
	}
	want(t, "run span", rs.Attributes(), map[string]any{
		"stopline.run.id": rec.RunID, "stopline.tenant.id": "acme", "stopline.snapshot.id": snap.ID(),
		"stopline.snapshot.hash": snap.ContentHash(), "stopline.run.status": "succeeded",
		"stopline.termination_reason": "completed", "stopline.run.steps": 3, "stopline.run.total_tokens": 812,
		"stopline.run.total_cost_cents": 1.25, "stopline.record.hash": rec.HeadHash,
		"stopline.incident.id": nil, "stopline.run.label.user": nil,
	})
	if len(rs.Events()) != 0 {
		t.Errorf("run span events %v", rs.Events())
	}

	recs, err := h.store.Records(ctx, "acme", rec.RunID)
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range []struct {
		name string
		w    map[string]any
	}{
		{"stopline.step llm_response", map[string]any{
			"gen_ai.operation.name": "chat", "gen_ai.response.model": "gpt-4o", "gen_ai.request.model": nil,
			"gen_ai.usage.input_tokens": 700, "gen_ai.usage.output_tokens": 112,
			"stopline.step.tokens": 812, "stopline.step.cost_cents": 1.25, "gen_ai.tool.name": nil,
		}},
		{"stopline.step tool_call", map[string]any{
			"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search", "gen_ai.request.model": "gpt-4o",
			"gen_ai.usage.input_tokens": nil, "stopline.step.tokens": 0,
		}},
		{"stopline.step tool_result", map[string]any{
			"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search", "gen_ai.request.model": nil,
		}},
	} {
		ss := spans[c.name]
		if len(ss) != 1 {
			t.Fatalf("%d spans %q", len(ss), c.name)
		}
		s := ss[0]
		if s.Parent().SpanID() != rs.SpanContext().SpanID() || s.SpanContext().TraceID() != rs.SpanContext().TraceID() {
			t.Errorf("%s: not a child of the run's span", c.name)
		}
		if len(s.Links()) != 0 {
			t.Errorf("%s: links %v (the step's context carries the run's own parent)", c.name, s.Links())
		}
		at := t0.Add(time.Duration(i+1) * time.Second)
		if !s.StartTime().Equal(at) || !s.EndTime().After(at) || s.EndTime().Sub(at) > time.Second {
			t.Errorf("%s: from %v to %v, want from %v and the step's duration", c.name, s.StartTime(), s.EndTime(), at)
		}
		w := map[string]any{
			"stopline.run.id": rec.RunID, "stopline.tenant.id": "acme", "stopline.snapshot.id": snap.ID(),
			"stopline.step.index": i, "stopline.step.status": "ok", "stopline.decision": "allow",
			"stopline.record.hash": recs[i+1].Hash, "stopline.policy.id": nil, "stopline.incident.id": nil,
			"stopline.step.input": nil, "stopline.step.output": nil, "stopline.step.metadata.note": nil,
		}
		for k, v := range c.w {
			w[k] = v
		}
		want(t, c.name, s.Attributes(), w)
		if s.Status().Code != codes.Unset || len(s.Events()) != 0 {
			t.Errorf("%s: status %v, events %v", c.name, s.Status(), s.Events())
		}
	}
	h.flush()
	noText(t, h.spans.Ended())
}

// noText fails if any attribute of any span or event holds step text.
func noText(t *testing.T, spans []sdktrace.ReadOnlySpan) {
	t.Helper()
	for _, s := range spans {
		kvs := s.Attributes()
		for _, e := range s.Events() {
			kvs = append(kvs, e.Attributes...)
		}
		for _, kv := range kvs {
			if strings.Contains(kv.Value.String(), "secret") || strings.Contains(kv.Value.String(), "alice") {
				t.Errorf("span %s: %s = %q: step text or a label exported", s.Name(), kv.Key, kv.Value.String())
			}
		}
	}
}

// TestStoppedRun: the step that stops the run has status Error, its
// findings, the inflection point and the incident as events; so has the
// run's span, which says where and why the run stopped.
func TestStoppedRun(t *testing.T) {
	h := newHarness(t, memstore.New())
	var res []governance.StepResult
	rec, err := h.runner.Run(ctx, governance.StartOptions{Snapshot: parse(t, policies)}, func(ctx context.Context, run *governance.Run) error {
		for i := range 5 {
			h.clock.Set(t0.Add(time.Duration(i+1) * time.Second))
			in := governance.StepInput{Type: prevention.StepToolCall, Tool: "search"}
			if i == 1 || i == 3 {
				in.Tool = "shell"
			}
			r, err := run.Step(ctx, in)
			res = append(res, r)
			if err != nil {
				return err
			}
		}
		return nil
	})
	var v *governance.Violation
	if !errors.As(err, &v) || v.StepIndex != 3 {
		t.Fatalf("run: %v", err)
	}
	spans := h.ended()
	steps := spans["stopline.step tool_call"]
	if len(steps) != 4 {
		t.Fatalf("%d step spans, want 4", len(steps))
	}
	// Step 1: a warning, recorded; the run went on.
	warned := steps[1]
	want(t, "warned step", warned.Attributes(), map[string]any{
		"stopline.step.status": "warning", "stopline.decision": "warn", "gen_ai.tool.name": "shell",
		"stopline.incident.id": nil, "stopline.termination_reason": nil,
	})
	if f, ok := event(warned, "stopline.finding"); !ok {
		t.Error("warned step: no stopline.finding event")
	} else {
		want(t, "finding", f.Attributes, map[string]any{
			"stopline.policy.id": "no-shell", "stopline.decision": "block", "stopline.enforcement": "warn",
			"stopline.decision.source": "policy",
		})
	}
	if warned.Status().Code != codes.Unset {
		t.Errorf("warned step: status %v", warned.Status())
	}

	// Step 3: the inflection point.
	stop := steps[3]
	if stop.Status().Code != codes.Error || !strings.Contains(stop.Status().Description, "steps") {
		t.Errorf("stopping step: status %v", stop.Status())
	}
	want(t, "stopping step", stop.Attributes(), map[string]any{
		"stopline.step.index": 3, "stopline.step.status": "violation", "stopline.decision": "block",
		"stopline.policy.id": "steps", "stopline.decision.source": "policy", "stopline.decision.reason": "budget_exceeded",
		"stopline.termination_reason": "budget_exceeded", "stopline.threshold": "max_steps",
		"stopline.limit": 3.0, "stopline.observed": 4.0, "stopline.incident.id": v.IncidentID,
		"stopline.record.hash": res[3].Hash,
	})
	var names []string
	for _, e := range stop.Events() {
		names = append(names, e.Name)
		if !e.Time.Equal(t0.Add(4 * time.Second)) {
			t.Errorf("event %s at %v", e.Name, e.Time)
		}
	}
	// The block of steps (the first enforced block decides: no-shell,
	// after it, is not evaluated), where the run stopped, its incident.
	if got := strings.Join(names, ","); got != "stopline.finding,stopline.inflection,stopline.incident" {
		t.Errorf("stopping step events: %s", got)
	}
	infl, _ := event(stop, "stopline.inflection")
	want(t, "inflection", infl.Attributes, map[string]any{
		"stopline.step.index": 3, "stopline.policy.id": "steps", "stopline.termination_reason": "budget_exceeded",
		"stopline.threshold": "max_steps", "stopline.limit": 3.0, "stopline.observed": 4.0,
		"stopline.record.hash": v.RecordHash,
	})
	inc, _ := event(stop, "stopline.incident")
	want(t, "incident", inc.Attributes, map[string]any{"stopline.incident.id": v.IncidentID})

	rs := spans["stopline.run"][0]
	if rs.Status().Code != codes.Error || !strings.Contains(rs.Status().Description, "step 3") {
		t.Errorf("run span status %v", rs.Status())
	}
	want(t, "run span", rs.Attributes(), map[string]any{
		"stopline.run.status": "failed_policy", "stopline.termination_reason": "budget_exceeded",
		"stopline.policy.id": "steps", "stopline.stopped_at_step": 3, "stopline.incident.id": v.IncidentID,
		"stopline.run.steps": 4, "stopline.record.hash": rec.HeadHash,
	})
	if _, ok := event(rs, "stopline.inflection"); !ok {
		t.Error("run span: no stopline.inflection event")
	}
	if e, ok := event(rs, "stopline.incident"); !ok || attrs(e.Attributes)["stopline.incident.id"].AsString() != v.IncidentID {
		t.Errorf("run span: incident event %v", e)
	}
	// The run's span does not end before its last step's.
	if rs.EndTime().Before(stop.EndTime()) {
		t.Errorf("run span ends at %v, before its last step (%v)", rs.EndTime(), stop.EndTime())
	}
}

// TestUnrecordedStep: a step the store cannot record is an Error span
// with the error, and so is the run, which failed closed.
func TestUnrecordedStep(t *testing.T) {
	fs := faultstore.New(memstore.New(), faultstore.Fault{})
	h := newHarness(t, fs)
	run, err := h.runner.Start(ctx, governance.StartOptions{Snapshot: parse(t, policies)})
	if err != nil {
		t.Fatal(err)
	}
	fs.SetFault(faultstore.Fault{N: 1, Mode: faultstore.Persistent, Methods: faultstore.WriteMethods})
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); !errors.Is(err, governance.ErrRecordFailed) {
		t.Fatalf("step: %v", err)
	}
	spans := h.ended()
	s := spans["stopline.step message"][0]
	if s.Status().Code != codes.Error {
		t.Errorf("step status %v", s.Status())
	}
	want(t, "unrecorded step", s.Attributes(), map[string]any{"error.type": "record_failed", "stopline.record.hash": nil})
	if _, ok := event(s, "exception"); !ok {
		t.Error("unrecorded step: no exception event")
	}
	rs := spans["stopline.run"]
	if len(rs) != 1 || rs[0].Status().Code != codes.Error {
		t.Fatalf("run spans %v", rs)
	}
	want(t, "run span", rs[0].Attributes(), map[string]any{"error.type": "record_failed"})
}

// TestHookFailure: a hook that fails stops the run as system_failure;
// the step's span carries the failure as an exception.
func TestHookFailure(t *testing.T) {
	h := newHarness(t, memstore.New())
	obs, _ := otelgov.New(otelgov.WithTracerProvider(h.tp))
	runner, err := governance.NewRunner(memstore.New(), governance.WithObserver(obs),
		governance.WithHooks(prevention.NamedHook{ID: "broken", Hook: prevention.HookFunc(func(context.Context, *prevention.Step) (prevention.Decision, error) {
			return prevention.Decision{}, errors.New("hook down")
		})}))
	if err != nil {
		t.Fatal(err)
	}
	run, _ := runner.Start(ctx, governance.StartOptions{Snapshot: parse(t, policies)})
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); err == nil {
		t.Fatal("a failed hook allowed the step")
	}
	obs.ForceFlush(ctx)
	s := h.ended()["stopline.step message"][0]
	want(t, "failed check", s.Attributes(), map[string]any{
		"stopline.decision": "block", "stopline.policy.id": "broken", "stopline.termination_reason": "system_failure",
	})
	if _, ok := event(s, "exception"); !ok || s.Status().Code != codes.Error {
		t.Errorf("failed check: status %v, events %v", s.Status(), s.Events())
	}
	if _, ok := event(s, "stopline.incident"); !ok {
		t.Error("failed check: no incident event")
	}
}

// TestLinksTheCallersStepSpan: a step reported under another span than
// the run's parent (an agent's tool span) links to it.
func TestLinksTheCallersStepSpan(t *testing.T) {
	h := newHarness(t, memstore.New())
	run, err := h.runner.Start(ctx, governance.StartOptions{Snapshot: parse(t, policies)})
	if err != nil {
		t.Fatal(err)
	}
	toolCtx, tool := h.tp.Tracer("agent").Start(ctx, "tool search")
	if _, err := run.Step(toolCtx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search"}); err != nil {
		t.Fatal(err)
	}
	tool.End()
	run.Finish(ctx)
	spans := h.ended()
	s := spans["stopline.step tool_call"][0]
	rs := spans["stopline.run"][0]
	if s.Parent().SpanID() != rs.SpanContext().SpanID() {
		t.Error("the step's span is not a child of the run's")
	}
	if rs.Parent().IsValid() {
		t.Errorf("a run started without a span has parent %v", rs.Parent())
	}
	if len(s.Links()) != 1 || s.Links()[0].SpanContext.SpanID() != tool.SpanContext().SpanID() {
		t.Errorf("links %v, want the tool's span", s.Links())
	}
}

// TestContentAndLabels: WithContent exports the step's text, WithLabels
// the labels named, nothing else.
func TestContentAndLabels(t *testing.T) {
	h := newHarness(t, memstore.New(), otelgov.WithContent(), otelgov.WithLabels("agent", "absent"))
	run, _ := h.runner.Start(ctx, governance.StartOptions{Snapshot: parse(t, policies), Labels: map[string]string{"agent": "triage", "user": "alice"}})
	run.Step(ctx, governance.StepInput{Type: prevention.StepToolResult, Tool: "search", Input: "in", Output: "out", Metadata: map[string]string{"k": "v"}})
	run.Finish(ctx)
	spans := h.ended()
	want(t, "step", spans["stopline.step tool_result"][0].Attributes(), map[string]any{
		"stopline.step.input": "in", "stopline.step.output": "out", "stopline.step.metadata.k": "v",
	})
	want(t, "run", spans["stopline.run"][0].Attributes(), map[string]any{
		"stopline.run.label.agent": "triage", "stopline.run.label.user": nil, "stopline.run.label.absent": nil,
	})
}

// TestNew: invalid options are refused in New.
func TestNew(t *testing.T) {
	for name, opt := range map[string]otelgov.Option{
		"nil tracer provider": otelgov.WithTracerProvider(nil),
		"nil meter provider":  otelgov.WithMeterProvider(nil),
		"empty label":         otelgov.WithLabels("a", " "),
		"empty queue":         otelgov.WithMaxQueue(0),
	} {
		if _, err := otelgov.New(opt); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	obs, err := otelgov.New()
	if err != nil {
		t.Fatalf("defaults: %v", err)
	}
	if err := obs.Shutdown(ctx); err != nil {
		t.Error(err)
	}
	if err := obs.ForceFlush(ctx); err != nil {
		t.Errorf("ForceFlush after Shutdown: %v", err)
	}
}

// TestQueuedRun: a run created ahead of its first step has its span from
// its creation; its first step makes it running.
func TestQueuedRun(t *testing.T) {
	h := newHarness(t, memstore.New())
	run, err := h.runner.Enqueue(ctx, governance.StartOptions{Snapshot: parse(t, policies)})
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Set(t0.Add(time.Minute))
	run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	run.Abort(ctx, prevention.ReasonUserAbort, "user left")
	rs := h.ended()["stopline.run"][0]
	if !rs.StartTime().Equal(t0) || rs.Status().Code != codes.Unset {
		t.Errorf("queued run span: start %v, status %v", rs.StartTime(), rs.Status())
	}
	want(t, "aborted run", rs.Attributes(), map[string]any{"stopline.run.status": "cancelled", "stopline.termination_reason": "user_abort"})
}
