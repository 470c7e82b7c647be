package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// The outbox (governance.OutboxStore): deliveries written with a run's
// end, in its transaction, then claimed, acknowledged, failed and retried.
// For a store without an outbox these tests skip, saying so.

func outboxOf(t *testing.T, st governance.Store) governance.OutboxStore {
	t.Helper()
	o, ok := st.(governance.OutboxStore)
	if !ok {
		t.Skipf("%T keeps no outbox (does not implement governance.OutboxStore)", st)
	}
	return o
}

// testOutbox makes one delivery per sink and event, with a payload naming
// both, and counts what was stored.
type testOutbox struct {
	sinks  []string
	mu     sync.Mutex
	stored int
}

func (o *testOutbox) Deliveries(run governance.RunRecord, inc *incident.Incident) ([]governance.Delivery, error) {
	events := []string{"run.ended"}
	if inc != nil {
		events = append([]string{"incident.created"}, events...)
	}
	var out []governance.Delivery
	for _, ev := range events {
		for _, s := range o.sinks {
			d := governance.Delivery{TenantID: run.TenantID, ID: fmt.Sprintf("DLV-%s-%s-%s", run.RunID, ev, s), Sink: s, Event: ev,
				RunID: run.RunID, Payload: fmt.Appendf(nil, `{"type":%q,"run":%q,"status":%q}`, ev, run.RunID, run.Status), CreatedAt: *run.EndedAt}
			if inc != nil {
				d.IncidentID = inc.ID
			}
			out = append(out, d)
		}
	}
	return out, nil
}

func (o *testOutbox) Stored(ds []governance.Delivery) {
	o.mu.Lock()
	o.stored += len(ds)
	o.mu.Unlock()
}

func outboxRunner(t *testing.T, st governance.Store, sinks ...string) (*governance.Runner, *testOutbox) {
	t.Helper()
	ob := &testOutbox{sinks: sinks}
	ids := &seqIDs{}
	r, err := governance.NewRunner(st, governance.WithClock(governance.NewFakeClock(T0)), governance.WithIDGenerator(ids.next), governance.WithOutbox(ob))
	if err != nil {
		t.Fatal(err)
	}
	return r, ob
}

// testOutboxWithClose: a run's end stores its deliveries with it.
func testOutboxWithClose(t *testing.T, open Opener) {
	st := open(t)
	ob := outboxOf(t, st)
	r, rec := outboxRunner(t, st, "hook", "logs")
	stopped, err := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, "acme")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stopped.Step(ctx, step(prevention.StepToolCall, "shell")); !errors.Is(err, governance.ErrPolicyViolation) {
		t.Fatalf("blocked step: %v", err)
	}
	done, err := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, "acme")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := done.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if rec.stored != 6 {
		t.Errorf("the outbox was told of %d stored deliveries, want 6", rec.stored)
	}
	all, err := ob.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 6 {
		t.Fatalf("%d deliveries, want 6 (incident and end of the stopped run, end of the finished one, for 2 sinks)", len(all))
	}
	inc := stopped.Record().IncidentID
	for _, d := range all {
		if d.State() != governance.DeliveryPending || d.Attempts != 0 || !d.NextAttemptAt.Equal(d.CreatedAt) || d.CreatedAt.IsZero() {
			t.Errorf("new delivery %s: %+v", d.ID, d)
		}
		if d.RunID == stopped.ID() && d.IncidentID != inc {
			t.Errorf("delivery %s: incident %q, want %q", d.ID, d.IncidentID, inc)
		}
		want := fmt.Sprintf(`{"type":%q,"run":%q,"status":%q}`, d.Event, d.RunID, map[string]string{stopped.ID(): "failed_policy", done.ID(): "succeeded"}[d.RunID])
		if string(d.Payload) != want {
			t.Errorf("payload of %s: %s, want %s", d.ID, d.Payload, want)
		}
	}
	byRun, _ := ob.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme", RunID: done.ID(), Sink: "logs"})
	if len(byRun) != 1 || byRun[0].Event != "run.ended" {
		t.Errorf("deliveries of run %s to logs: %+v", done.ID(), byRun)
	}
	if other, _ := ob.Deliveries(ctx, governance.DeliveryFilter{TenantID: "globex"}); len(other) != 0 {
		t.Errorf("another tenant sees %d deliveries", len(other))
	}
	if lim, _ := ob.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme", Limit: 2}); len(lim) != 2 {
		t.Errorf("limit 2: %d deliveries", len(lim))
	}
}

// testOutboxAllOrNothing: an end whose deliveries cannot be stored is not
// stored either, and the other way round.
func testOutboxAllOrNothing(t *testing.T, open Opener) {
	st := open(t)
	ob := outboxOf(t, st)
	r, _ := outboxRunner(t, st, "hook")
	run1, err := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, "acme"), RunID: "RUN-one"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run1.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	// A raw close of another run whose delivery id is taken fails whole.
	run, start := startRaw(t, st, "acme", "RUN-dup")
	end := sealed(t, endRec("acme", run.RunID, run.SnapshotID, 1), start.Hash)
	c := governance.Close{TenantID: "acme", RunID: run.RunID, End: end, Status: governance.StatusSucceeded,
		Reason: prevention.ReasonCompleted, EndedAt: T0,
		Deliveries: []governance.Delivery{{TenantID: "acme", ID: "DLV-RUN-one-run.ended-hook", Sink: "hook", Event: "run.ended",
			RunID: run.RunID, Payload: []byte(`{}`), CreatedAt: T0}}}
	if err := st.CloseRun(ctx, c); err == nil {
		t.Fatal("CloseRun with a taken delivery id succeeded")
	}
	if got, _ := st.Run(ctx, "acme", run.RunID); got.Status.Ended() || got.ChainLength != 1 {
		t.Errorf("failed close left the run %+v", got)
	}
	c.Deliveries[0].ID = "DLV-fresh"
	if err := st.CloseRun(ctx, c); err != nil {
		t.Fatalf("CloseRun: %v", err)
	}
	ds, _ := ob.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme", RunID: run.RunID})
	if len(ds) != 1 || ds[0].ID != "DLV-fresh" {
		t.Errorf("deliveries of %s: %+v", run.RunID, ds)
	}
	// A delivery of another run is malformed: nothing is written.
	run2, start2 := startRaw(t, st, "acme", "RUN-foreign")
	c2 := governance.Close{TenantID: "acme", RunID: run2.RunID, End: sealed(t, endRec("acme", run2.RunID, run2.SnapshotID, 1), start2.Hash),
		Status: governance.StatusSucceeded, Reason: prevention.ReasonCompleted, EndedAt: T0,
		Deliveries: []governance.Delivery{{TenantID: "acme", ID: "DLV-x", Sink: "hook", Event: "run.ended", RunID: "RUN-one", Payload: []byte(`{}`), CreatedAt: T0}}}
	if err := st.CloseRun(ctx, c2); !errors.Is(err, governance.ErrMalformedWrite) {
		t.Errorf("a delivery of another run: got %v, want ErrMalformedWrite", err)
	}
}

func endRec(tenant, runID, snapID string, seq int) trace.Record {
	return trace.Record{TenantID: tenant, RunID: runID, Seq: seq, Kind: trace.KindRunEnd, At: T0, SnapshotID: snapID,
		StepIndex: -1, RunStatus: "succeeded", Reason: prevention.ReasonCompleted}
}

// seedDeliveries ends n runs of tenant, each with one delivery to sink,
// created 1 s apart from T0.
func seedDeliveries(t *testing.T, st governance.Store, tenant, sink string, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		run, start := startRaw(t, st, tenant, fmt.Sprintf("RUN-%s-%s-%d", tenant, sink, i))
		at := T0.Add(time.Duration(i) * time.Second)
		id := fmt.Sprintf("DLV-%s-%s-%03d", tenant, sink, i)
		c := governance.Close{TenantID: tenant, RunID: run.RunID, End: sealed(t, endRec(tenant, run.RunID, run.SnapshotID, 1), start.Hash),
			Status: governance.StatusSucceeded, Reason: prevention.ReasonCompleted, EndedAt: at,
			Deliveries: []governance.Delivery{{TenantID: tenant, ID: id, Sink: sink, Event: "run.ended", RunID: run.RunID,
				Payload: fmt.Appendf(nil, `{"n":%d}`, i), CreatedAt: at}}}
		if err := st.CloseRun(ctx, c); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	return ids
}

func claimIDs(ds []governance.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.ID)
	}
	slices.Sort(out)
	return out
}

// testOutboxLifecycle: claims lease due deliveries of the named sinks;
// acknowledgements, failures (retry, dead) and retries of dead ones.
func testOutboxLifecycle(t *testing.T, open Opener) {
	st := open(t)
	ob := outboxOf(t, st)
	hook := seedDeliveries(t, st, "acme", "hook", 3)
	other := seedDeliveries(t, st, "globex", "hook", 1)
	seedDeliveries(t, st, "acme", "logs", 1)
	lease := time.Minute
	claim := func(owner string, now time.Time, limit int) []governance.Delivery {
		t.Helper()
		ds, err := ob.ClaimDeliveries(ctx, governance.DeliveryClaim{Owner: owner, Sinks: []string{"hook"}, Now: now, Lease: lease, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	if err := second(ob.ClaimDeliveries(ctx, governance.DeliveryClaim{Owner: "a", Now: T0, Lease: lease, Limit: 1})); !errors.Is(err, governance.ErrMalformedWrite) {
		t.Errorf("a claim without sinks: got %v, want ErrMalformedWrite", err)
	}
	// At T0+1s the deliveries created at T0 (acme 0, globex 0) and T0+1s are due.
	got := claim("a", T0.Add(time.Second), 10)
	if want := []string{hook[0], hook[1], other[0]}; !slices.Equal(claimIDs(got), want) {
		t.Fatalf("first claim: %v, want %v", claimIDs(got), want)
	}
	for _, d := range got {
		if d.Attempts != 1 || d.Owner != "a" || !d.NextAttemptAt.Equal(T0.Add(time.Second+lease)) || len(d.Payload) == 0 {
			t.Errorf("claimed %s: %+v", d.ID, d)
		}
	}
	// Leased: another claimer gets only what is left, and the limit holds.
	if got := claim("b", T0.Add(2*time.Second), 10); !slices.Equal(claimIDs(got), []string{hook[2]}) {
		t.Errorf("second claim: %v, want [%s]", claimIDs(got), hook[2])
	}
	if got := claim("b", T0.Add(3*time.Second), 10); len(got) != 0 {
		t.Errorf("everything is leased, yet a claim got %v", claimIDs(got))
	}
	// Acknowledged: delivered, never claimed again; twice is fine.
	if err := ob.AckDelivery(ctx, "acme", hook[0], T0.Add(5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := ob.AckDelivery(ctx, "acme", hook[0], T0.Add(6*time.Second)); err != nil {
		t.Errorf("second ack: %v", err)
	}
	if err := ob.AckDelivery(ctx, "acme", "DLV-none", T0); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("ack of an unknown delivery: got %v, want ErrNotFound", err)
	}
	if err := ob.AckDelivery(ctx, "globex", hook[1], T0); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("ack of another tenant's delivery: got %v, want ErrNotFound", err)
	}
	// A failure: due again at RetryAt, attempts kept.
	fail := governance.DeliveryFailure{TenantID: "acme", ID: hook[1], Owner: "a", Attempt: 1, Error: "HTTP 500",
		RetryAt: T0.Add(10 * time.Minute), At: T0.Add(5 * time.Second)}
	if err := ob.FailDelivery(ctx, governance.DeliveryFailure{TenantID: "acme", ID: hook[1], Owner: "b", Attempt: 1, Error: "x",
		RetryAt: T0, At: T0}); !errors.Is(err, governance.ErrLeaseLost) {
		t.Errorf("failure by another owner: got %v, want ErrLeaseLost", err)
	}
	if err := ob.FailDelivery(ctx, fail); err != nil {
		t.Fatal(err)
	}
	if err := ob.FailDelivery(ctx, fail); !errors.Is(err, governance.ErrLeaseLost) {
		t.Errorf("the same failure twice: got %v, want ErrLeaseLost", err)
	}
	// The lease of globex's delivery ends at T0+61s: it is due again then.
	if got := claim("c", T0.Add(2*time.Minute), 10); !slices.Equal(claimIDs(got), []string{hook[2], other[0]}) {
		t.Errorf("claim after the leases ended: %v, want [%s %s]", claimIDs(got), hook[2], other[0])
	} else if got[0].Attempts != 2 || got[1].Attempts != 2 {
		t.Errorf("claimed again: attempts %d and %d, want 2", got[0].Attempts, got[1].Attempts)
	}
	// The first claimer's lease on it was lost.
	if err := ob.FailDelivery(ctx, governance.DeliveryFailure{TenantID: "globex", ID: other[0], Owner: "a", Attempt: 1, Error: "late",
		RetryAt: T0, At: T0}); !errors.Is(err, governance.ErrLeaseLost) {
		t.Errorf("failure after the lease was lost: got %v, want ErrLeaseLost", err)
	}
	for _, d := range []struct{ tenant, id string }{{"globex", other[0]}, {"acme", hook[2]}} {
		if err := ob.AckDelivery(ctx, d.tenant, d.id, T0.Add(3*time.Minute)); err != nil {
			t.Fatal(err)
		}
	}
	got = claim("c", T0.Add(10*time.Minute), 10)
	if len(got) != 1 || got[0].ID != hook[1] || got[0].Attempts != 2 || got[0].LastError != "HTTP 500" {
		t.Fatalf("claim at the retry time: %+v", got)
	}
	// Dead after its last attempt: never claimed again, listed as dead.
	if err := ob.FailDelivery(ctx, governance.DeliveryFailure{TenantID: "acme", ID: hook[1], Owner: "c", Attempt: 2, Error: "HTTP 500 again",
		Dead: true, At: T0.Add(11 * time.Minute)}); err != nil {
		t.Fatal(err)
	}
	if got := claim("c", T0.Add(time.Hour), 10); slices.Contains(claimIDs(got), hook[1]) {
		t.Errorf("a dead delivery was claimed")
	}
	dead, err := ob.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme", State: governance.DeliveryDead})
	if err != nil || len(dead) != 1 || dead[0].ID != hook[1] || dead[0].DeadAt == nil || !dead[0].DeadAt.Equal(T0.Add(11*time.Minute)) ||
		dead[0].LastError != "HTTP 500 again" {
		t.Errorf("dead deliveries: %+v %v", dead, err)
	}
	delivered, _ := ob.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme", State: governance.DeliveryDelivered})
	if len(delivered) != 2 || delivered[1].ID != hook[0] || !delivered[1].DeliveredAt.Equal(T0.Add(5*time.Second)) {
		t.Errorf("delivered: %+v", delivered)
	}
	// A dead delivery retried is due again, its attempts kept.
	if err := ob.RetryDelivery(ctx, "acme", hook[1], T0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := ob.RetryDelivery(ctx, "acme", "DLV-none", T0); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("retry of an unknown delivery: got %v, want ErrNotFound", err)
	}
	got = claim("d", T0.Add(2*time.Hour), 10)
	if !slices.Contains(claimIDs(got), hook[1]) {
		t.Errorf("a retried dead delivery was not claimed: %v", claimIDs(got))
	}
	for _, d := range got {
		if d.ID == hook[1] && d.Attempts != 3 {
			t.Errorf("retried delivery: attempts %d, want 3", d.Attempts)
		}
	}
	pending, _ := ob.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme", State: governance.DeliveryPending, Sink: "logs"})
	if len(pending) != 1 || pending[0].Attempts != 0 {
		t.Errorf("the logs sink's delivery was touched by claims for hook: %+v", pending)
	}
}

// testOutboxConcurrentClaims: claimers racing never get the same
// delivery, and together get every one.
func testOutboxConcurrentClaims(t *testing.T, open Opener) {
	st := open(t)
	ob := outboxOf(t, st)
	const n, claimers = 40, 4
	ids := seedDeliveries(t, st, "acme", "hook", n)
	var (
		mu  sync.Mutex
		got = map[string]string{}
		wg  sync.WaitGroup
	)
	for c := range claimers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			owner := fmt.Sprintf("claimer-%d", c)
			for {
				ds, err := ob.ClaimDeliveries(ctx, governance.DeliveryClaim{Owner: owner, Sinks: []string{"hook"}, Now: T0.Add(time.Hour), Lease: time.Hour, Limit: 3})
				if err != nil {
					t.Error(err)
					return
				}
				if len(ds) == 0 {
					return
				}
				mu.Lock()
				for _, d := range ds {
					if prev, dup := got[d.ID]; dup {
						t.Errorf("delivery %s claimed by %s and %s", d.ID, prev, owner)
					}
					got[d.ID] = owner
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(got) != len(ids) {
		t.Errorf("%d of %d deliveries claimed", len(got), len(ids))
	}
}
