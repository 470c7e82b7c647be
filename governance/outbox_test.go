package governance_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// funcOutbox is an Outbox made of a function; it counts Stored calls.
type funcOutbox struct {
	f      func(governance.RunRecord, *incident.Incident) ([]governance.Delivery, error)
	stored int
}

func (o *funcOutbox) Deliveries(run governance.RunRecord, inc *incident.Incident) ([]governance.Delivery, error) {
	return o.f(run, inc)
}
func (o *funcOutbox) Stored(ds []governance.Delivery) { o.stored += len(ds) }

func outboxSnapshot(t *testing.T) *snapshot.PolicySnapshot {
	t.Helper()
	s, err := snapshot.Parse("p.json", []byte(`{"tenant_id":"acme","policies":[
		{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`), time.Time{}, prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The outbox sees the run as the store holds it once ended, and the
// incident; its deliveries are stored with the end.
func TestOutboxSeesTheEnd(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	var seen governance.RunRecord
	var seenInc *incident.Incident
	ob := &funcOutbox{f: func(run governance.RunRecord, inc *incident.Incident) ([]governance.Delivery, error) {
		seen, seenInc = run, inc
		return []governance.Delivery{{TenantID: run.TenantID, ID: "D-" + run.RunID, Sink: "s", Event: "run.ended", RunID: run.RunID,
			Payload: []byte(`{}`), CreatedAt: time.Now()}}, nil
	}}
	r, err := governance.NewRunner(st, governance.WithOutbox(ob))
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: outboxSnapshot(t), Labels: map[string]string{"agent": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Tokens: 5}); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"}); !errors.Is(err, governance.ErrPolicyViolation) {
		t.Fatal(err)
	}
	stored, err := st.Run(ctx, "acme", run.ID())
	if err != nil {
		t.Fatal(err)
	}
	if seen.Status != stored.Status || seen.HeadHash != stored.HeadHash || seen.ChainLength != stored.ChainLength ||
		seen.StepCount != stored.StepCount || seen.TotalTokens != stored.TotalTokens || seen.IncidentID != stored.IncidentID ||
		*seen.StoppedAtStep != *stored.StoppedAtStep || !seen.EndedAt.Equal(*stored.EndedAt) || seen.Labels["agent"] != "a" {
		t.Errorf("the outbox saw\n%+v\nthe store holds\n%+v", seen, stored)
	}
	if seenInc == nil || seenInc.ID != stored.IncidentID {
		t.Errorf("the outbox saw incident %+v", seenInc)
	}
	if ds, _ := st.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme"}); len(ds) != 1 || ob.stored != 1 {
		t.Errorf("%d deliveries stored, %d told", len(ds), ob.stored)
	}
}

// An outbox that fails, or returns deliveries of another run, does not
// keep the end from being recorded; the error says so.
func TestOutboxFailureKeepsTheEnd(t *testing.T) {
	ctx := context.Background()
	for name, f := range map[string]func(governance.RunRecord, *incident.Incident) ([]governance.Delivery, error){
		"error": func(governance.RunRecord, *incident.Incident) ([]governance.Delivery, error) {
			return nil, errors.New("no payload")
		},
		"another run": func(run governance.RunRecord, _ *incident.Incident) ([]governance.Delivery, error) {
			return []governance.Delivery{{TenantID: run.TenantID, ID: "D", Sink: "s", Event: "run.ended", RunID: "RUN-other",
				Payload: []byte(`{}`), CreatedAt: time.Now()}}, nil
		},
		"panic": func(governance.RunRecord, *incident.Incident) ([]governance.Delivery, error) { panic("boom") },
	} {
		t.Run(name, func(t *testing.T) {
			st := memstore.New()
			ob := &funcOutbox{f: f}
			r, err := governance.NewRunner(st, governance.WithOutbox(ob))
			if err != nil {
				t.Fatal(err)
			}
			run, err := r.Start(ctx, governance.StartOptions{Snapshot: outboxSnapshot(t)})
			if err != nil {
				t.Fatal(err)
			}
			_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"})
			var v *governance.Violation
			if !errors.As(err, &v) || !errors.Is(err, governance.ErrRecordFailed) {
				t.Errorf("step: got %v, want the violation and ErrRecordFailed", err)
			}
			if got, _ := st.Run(ctx, "acme", run.ID()); got.Status != governance.StatusFailedPolicy {
				t.Errorf("the end was not recorded: %+v", got)
			}
			if ds, _ := st.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme"}); len(ds) != 0 || ob.stored != 0 {
				t.Errorf("%d deliveries stored, %d told", len(ds), ob.stored)
			}
		})
	}
}

// A run recovered through its runner (its process died) has its end
// delivered like any other: the deliveries are stored with the end.
func TestOutboxSeesARecoveredRun(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	var seen governance.RunRecord
	ob := &funcOutbox{f: func(run governance.RunRecord, inc *incident.Incident) ([]governance.Delivery, error) {
		seen = run
		return []governance.Delivery{{TenantID: run.TenantID, ID: "D-" + run.RunID, Sink: "s", Event: "run.ended", RunID: run.RunID,
			Payload: []byte(`{}`), CreatedAt: time.Now()}}, nil
	}}
	dead, err := governance.NewRunner(st)
	if err != nil {
		t.Fatal(err)
	}
	run, err := dead.Start(ctx, governance.StartOptions{Snapshot: outboxSnapshot(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Tokens: 5}); err != nil {
		t.Fatal(err)
	}
	// The process that ran it is gone; another recovers the run.
	r, err := governance.NewRunner(st, governance.WithOutbox(ob))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := r.RecoverRun(ctx, "acme", run.ID(), "worker died")
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != governance.StatusFailed || seen.RunID != run.ID() || seen.Status != governance.StatusFailed || seen.HeadHash != rec.HeadHash {
		t.Fatalf("recovered %+v, the outbox saw %+v", rec, seen)
	}
	if ds, _ := st.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme"}); len(ds) != 1 || ob.stored != 1 {
		t.Errorf("%d deliveries stored, %d told", len(ds), ob.stored)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Fatal(err)
	}
}
