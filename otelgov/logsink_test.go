package otelgov_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/otelgov"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/sink"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// memProcessor keeps the records emitted to the SDK.
type memProcessor struct {
	mu  sync.Mutex
	got []sdklog.Record
	ch  chan struct{}
}

func (p *memProcessor) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (p *memProcessor) OnEmit(_ context.Context, r *sdklog.Record) error {
	p.mu.Lock()
	p.got = append(p.got, r.Clone())
	p.mu.Unlock()
	p.ch <- struct{}{}
	return nil
}
func (p *memProcessor) Shutdown(context.Context) error   { return nil }
func (p *memProcessor) ForceFlush(context.Context) error { return nil }

func recordAttrs(r sdklog.Record) map[string]attribute.Value {
	m := map[string]attribute.Value{}
	r.WalkAttributes(func(kv attribute.KeyValue) bool { m[string(kv.Key)] = kv.Value; return true })
	return m
}

// The log sink emits a record for a stopped run's incident and one for
// its end, through the SDK, with the incident's facts as attributes.
func TestLogSink(t *testing.T) {
	ctx := context.Background()
	proc := &memProcessor{ch: make(chan struct{}, 10)}
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(proc))
	defer lp.Shutdown(ctx)
	ls, err := otelgov.NewLogSink(otelgov.WithLoggerProvider(lp))
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	d, err := sink.NewDispatcher(st, []sink.Sink{ls}, sink.WithPoll(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r, err := governance.NewRunner(st, governance.WithOutbox(d))
	if err != nil {
		t.Fatal(err)
	}
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	go d.Run(c)
	snap, err := snapshot.Parse("p.json", []byte(`{"tenant_id":"acme","thresholds":{"max_steps":1},"policies":[
		{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}]}`), time.Time{}, prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Input: "secret prompt"})
	}
	if !errors.Is(err, governance.ErrPolicyViolation) {
		t.Fatalf("second step: %v", err)
	}
	rec := run.Record()
	for range 2 {
		select {
		case <-proc.ch:
		case <-time.After(10 * time.Second):
			t.Fatal("no log record")
		}
	}
	proc.mu.Lock()
	defer proc.mu.Unlock()
	ds, _ := st.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme"})
	ids := map[string]string{}
	for _, dl := range ds {
		ids[dl.Event] = dl.ID
	}
	byName := map[string]sdklog.Record{}
	for _, r := range proc.got {
		byName[r.EventName()] = r
	}
	inc, ok := byName["stopline.incident.created"]
	if !ok {
		t.Fatalf("no incident record among %d", len(proc.got))
	}
	a := recordAttrs(inc)
	for k, want := range map[string]string{
		"stopline.event.id": ids["incident.created"], "stopline.incident.id": rec.IncidentID, "stopline.policy.id": "steps",
		"stopline.run.id": rec.RunID, "stopline.tenant.id": "acme", "stopline.run.status": "failed_policy",
		"stopline.threshold": "max_steps", "stopline.decision.reason": "budget_exceeded",
	} {
		if got := a[k].AsString(); got != want {
			t.Errorf("incident record %s = %q, want %q", k, got, want)
		}
	}
	if a["stopline.observed"].AsFloat64() != 2 || a["stopline.limit"].AsFloat64() != 1 || a["stopline.stopped_at_step"].AsInt64() != 1 {
		t.Errorf("incident record: observed %v, limit %v, stopped at %v", a["stopline.observed"], a["stopline.limit"], a["stopline.stopped_at_step"])
	}
	if inc.Severity() != log.SeverityWarn || !inc.Timestamp().Equal(*rec.EndedAt) || inc.Body().AsString() == "" {
		t.Errorf("incident record: severity %v, time %v, body %q", inc.Severity(), inc.Timestamp(), inc.Body().AsString())
	}
	end, ok := byName["stopline.run.ended"]
	if !ok {
		t.Fatal("no run end record")
	}
	if a := recordAttrs(end); a["stopline.event.id"].AsString() != ids["run.ended"] || a["stopline.record.hash"].AsString() != rec.HeadHash ||
		a["stopline.run.steps"].AsInt64() != 2 {
		t.Errorf("end record attributes: %v", a)
	}
	for _, r := range proc.got {
		for k, v := range recordAttrs(r) {
			if v.AsString() == "secret prompt" {
				t.Errorf("record %s carries the step's text in %s", r.EventName(), k)
			}
		}
	}
}
