package otelgov_test

import (
	"context"
	"errors"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/faultstore"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
)

// metrics is what the manual reader collected, by metric name.
type metrics map[string]metricdata.Metrics

func (h *harness) collect() metrics {
	h.t.Helper()
	h.flush()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(ctx, &rm); err != nil {
		h.t.Fatal(err)
	}
	m := metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != "github.com/stopline/stopline/otelgov" {
			h.t.Errorf("scope %q", sm.Scope.Name)
		}
		for _, x := range sm.Metrics {
			m[x.Name] = x
		}
	}
	return m
}

// matches reports whether set has every attribute of kv (key=value,
// value "" for an attribute that must be absent).
func matches(set attribute.Set, kv map[string]string) bool {
	for k, v := range kv {
		got, ok := set.Value(attribute.Key(k))
		if v == "" {
			if ok {
				return false
			}
			continue
		}
		if !ok || got.String() != v {
			return false
		}
	}
	return true
}

// sum adds up the points of a counter whose attributes match kv.
func (m metrics) sum(t *testing.T, name string, kv map[string]string) int64 {
	t.Helper()
	x, ok := m[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	var n int64
	switch d := x.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			if matches(p.Attributes, kv) {
				n += p.Value
			}
		}
	default:
		t.Fatalf("%s is a %T", name, x.Data)
	}
	return n
}

// count is the number of measurements of a histogram whose attributes
// match kv, and their sum.
func (m metrics) count(t *testing.T, name string, kv map[string]string) (uint64, float64) {
	t.Helper()
	x, ok := m[name]
	if !ok {
		t.Fatalf("no metric %s", name)
	}
	d, ok := x.Data.(metricdata.Histogram[float64])
	if !ok {
		t.Fatalf("%s is a %T", name, x.Data)
	}
	var n uint64
	var s float64
	for _, p := range d.DataPoints {
		if matches(p.Attributes, kv) {
			n += p.Count
			s += p.Sum
		}
	}
	return n, s
}

// TestMetrics: steps by type and decision, findings by policy, runs by
// status and reason, runs in progress, and both latencies in seconds.
func TestMetrics(t *testing.T) {
	h := newHarness(t, memstore.New())
	snap := parse(t, policies)
	// A run stopped at its fourth step, with a warning at its second.
	h.runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		for i := range 5 {
			in := governance.StepInput{Type: prevention.StepToolCall, Tool: "search"}
			if i == 1 {
				in.Tool = "shell"
			}
			if _, err := run.Step(ctx, in); err != nil {
				return err
			}
		}
		return nil
	})
	// A run that completes, and one left open.
	h.runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 10})
		return err
	})
	open, err := h.runner.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	m := h.collect()

	for _, c := range []struct {
		name string
		kv   map[string]string
		want int64
	}{
		{"stopline.steps", map[string]string{"stopline.step.type": "tool_call", "stopline.decision": "allow"}, 2},
		{"stopline.steps", map[string]string{"stopline.step.type": "tool_call", "stopline.decision": "warn"}, 1},
		{"stopline.steps", map[string]string{"stopline.step.type": "tool_call", "stopline.decision": "block"}, 1},
		{"stopline.steps", map[string]string{"stopline.step.type": "llm_response", "stopline.decision": "allow"}, 1},
		{"stopline.steps", map[string]string{"error.type": "record_failed"}, 0},
		{"stopline.decisions", map[string]string{"stopline.policy.id": "no-shell", "stopline.decision": "block", "stopline.enforcement": "warn", "stopline.decision.source": "policy"}, 1},
		{"stopline.decisions", map[string]string{"stopline.policy.id": "steps", "stopline.decision": "block", "stopline.enforcement": "block"}, 1},
		{"stopline.decisions", map[string]string{}, 2},
		{"stopline.runs", map[string]string{"stopline.run.status": "failed_policy", "stopline.termination_reason": "budget_exceeded"}, 1},
		{"stopline.runs", map[string]string{"stopline.run.status": "succeeded", "stopline.termination_reason": "completed"}, 1},
		{"stopline.runs", map[string]string{}, 2},
		{"stopline.runs.active", map[string]string{}, 1},
	} {
		if got := m.sum(t, c.name, c.kv); got != c.want {
			t.Errorf("%s %v = %d, want %d", c.name, c.kv, got, c.want)
		}
	}
	for _, name := range []string{"stopline.step.duration", "stopline.evaluation.duration"} {
		if m[name].Unit != "s" {
			t.Errorf("%s: unit %q", name, m[name].Unit)
		}
		n, s := m.count(t, name, map[string]string{"stopline.step.type": "tool_call"})
		if n != 4 || s <= 0 || s > 10 {
			t.Errorf("%s: %d tool_call measurements, sum %v s", name, n, s)
		}
	}
	if n, _ := m.count(t, "stopline.step.duration", map[string]string{"stopline.decision": "block"}); n != 1 {
		t.Errorf("stopline.step.duration of blocked steps: %d", n)
	}
	for name, unit := range map[string]string{"stopline.steps": "{step}", "stopline.decisions": "{decision}", "stopline.runs": "{run}", "stopline.runs.active": "{run}"} {
		if m[name].Unit != unit || m[name].Description == "" {
			t.Errorf("%s: unit %q, description %q", name, m[name].Unit, m[name].Description)
		}
	}
	open.Finish(ctx)
	if got := h.collect().sum(t, "stopline.runs.active", nil); got != 0 {
		t.Errorf("stopline.runs.active after every run ended: %d", got)
	}
}

// TestMetricsOfFailures: a step the store could not record, and a run
// whose end it could not record, are counted with error.type.
func TestMetricsOfFailures(t *testing.T) {
	fs := faultstore.New(memstore.New(), faultstore.Fault{})
	h := newHarness(t, fs)
	run, _ := h.runner.Start(ctx, governance.StartOptions{Snapshot: parse(t, policies)})
	fs.SetFault(faultstore.Fault{N: 1, Mode: faultstore.Persistent, Methods: faultstore.WriteMethods})
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); !errors.Is(err, governance.ErrRecordFailed) {
		t.Fatal(err)
	}
	m := h.collect()
	if got := m.sum(t, "stopline.steps", map[string]string{"error.type": "record_failed", "stopline.step.type": "message"}); got != 1 {
		t.Errorf("unrecorded steps: %d", got)
	}
	if got := m.sum(t, "stopline.runs", map[string]string{"error.type": "record_failed"}); got != 1 {
		t.Errorf("runs whose end was not recorded: %d", got)
	}
	if got := m.sum(t, "stopline.runs.active", nil); got != 0 {
		t.Errorf("runs active: %d", got)
	}
}
