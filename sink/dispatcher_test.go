package sink_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/sink"
	"github.com/stopline/stopline/store/memstore"
)

// A stopped run delivers its incident, then its end, to every sink, each
// once, with a payload that names them.
func TestDeliversIncidentAndEnd(t *testing.T) {
	st := memstore.New()
	a, b := newRecorder("a", 0), newRecorder("b", 0)
	d, err := sink.NewDispatcher(st, []sink.Sink{a, b}, sink.WithPoll(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r, err := governance.NewRunner(st, governance.WithOutbox(d))
	if err != nil {
		t.Fatal(err)
	}
	runDispatcher(t, d)
	rec := stopRun(t, r)
	for _, s := range []*recorder{a, b} {
		evs := s.wait(t, 2)
		types := map[sink.EventType]sink.Event{}
		for _, e := range evs {
			types[e.Type] = e
			if e.Attempt != 1 || e.TenantID != "acme" || e.RunID != rec.RunID || !strings.HasPrefix(e.ID, "msg_") {
				t.Errorf("%s got %+v", s.name, e)
			}
		}
		inc, end := types[sink.EventIncidentCreated], types[sink.EventRunEnded]
		p, err := inc.Decode()
		if err != nil {
			t.Fatal(err)
		}
		if p.Type != sink.EventIncidentCreated || p.Data.Incident == nil || p.Data.Incident.ID != rec.IncidentID ||
			p.Data.Run.Status != governance.StatusFailedPolicy || p.Data.Run.HeadHash != rec.HeadHash || !p.Timestamp.Equal(*rec.EndedAt) {
			t.Errorf("incident payload: %+v", p)
		}
		if inc.IncidentID != rec.IncidentID {
			t.Errorf("incident event names incident %q, want %q", inc.IncidentID, rec.IncidentID)
		}
		p, err = end.Decode()
		if err != nil {
			t.Fatal(err)
		}
		if p.Type != sink.EventRunEnded || p.Data.Incident != nil || p.Data.Run.StepCount != 1 || p.Data.Run.ChainLength != rec.ChainLength {
			t.Errorf("end payload: %+v", p)
		}
	}
	// Idempotency keys differ between events and sinks.
	ids := map[string]bool{}
	for _, e := range append(a.got, b.got...) {
		if ids[e.ID] {
			t.Errorf("id %s used twice", e.ID)
		}
		ids[e.ID] = true
	}
	waitState(t, st, rec.RunID, governance.DeliveryDelivered, 4)
}

// waitState waits until n deliveries of the run are in the state.
func waitState(t *testing.T, st governance.Store, runID string, s governance.DeliveryState, n int) []governance.Delivery {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ds := deliveriesOf(t, st, governance.DeliveryFilter{TenantID: "acme", RunID: runID, State: s})
		if len(ds) == n {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d deliveries of %s are %s, want %d", len(ds), runID, s, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// blockingSink never returns from Deliver, whatever its context says.
type blockingSink struct {
	entered atomic.Int64
	release chan struct{}
}

func (b *blockingSink) Name() string { return "stuck" }
func (b *blockingSink) Deliver(context.Context, sink.Event) error {
	b.entered.Add(1)
	<-b.release
	return nil
}

// A sink that blocks forever does not delay a step or a run's end: both
// return while it is stuck delivering, and its deliveries are retried.
func TestBlockingSinkDoesNotBlockRuns(t *testing.T) {
	st := memstore.New()
	stuck := &blockingSink{release: make(chan struct{})}
	defer close(stuck.release)
	d, err := sink.NewDispatcher(st, []sink.Sink{stuck}, sink.WithPoll(5*time.Millisecond),
		sink.WithTimeout(20*time.Millisecond), sink.WithLease(time.Second), sink.WithRetries(100, time.Millisecond, 5*time.Millisecond),
		sink.WithConcurrency(2))
	if err != nil {
		t.Fatal(err)
	}
	r, err := governance.NewRunner(st, governance.WithOutbox(d))
	if err != nil {
		t.Fatal(err)
	}
	runDispatcher(t, d)
	var runs []string
	for i := range 20 {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: testSnapshot(t)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse}); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if _, err := run.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run.ID())
	}
	// Every end is recorded with its delivery, and the sink was called
	// (and abandoned) again and again meanwhile.
	deadline := time.Now().Add(10 * time.Second)
	for stuck.entered.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("the stuck sink was called %d times", stuck.entered.Load())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, id := range runs {
		ds := deliveriesOf(t, st, governance.DeliveryFilter{TenantID: "acme", RunID: id})
		if len(ds) != 1 || ds[0].State() != governance.DeliveryPending {
			t.Errorf("run %s: deliveries %+v", id, ds)
		}
	}
	var failed governance.Delivery
	for failed.Attempts < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no delivery was attempted twice")
		}
		for _, id := range runs {
			if ds := deliveriesOf(t, st, governance.DeliveryFilter{TenantID: "acme", RunID: id}); ds[0].Attempts >= 2 {
				failed = ds[0]
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !strings.Contains(failed.LastError, "abandoned") {
		t.Errorf("last error of a delivery to the stuck sink: %q", failed.LastError)
	}
}

// A dispatcher that starts delivers what was committed before it ran (by
// a runner whose process had no dispatcher running).
func TestDeliversWhatWasLeft(t *testing.T) {
	st := memstore.New()
	rec := newRecorder("hook", 0)
	d, err := sink.NewDispatcher(st, []sink.Sink{rec})
	if err != nil {
		t.Fatal(err)
	}
	r, err := governance.NewRunner(st, governance.WithOutbox(d))
	if err != nil {
		t.Fatal(err)
	}
	var runs []string
	for range 3 {
		runs = append(runs, stopRun(t, r).RunID)
	}
	d2, err := sink.NewDispatcher(st, []sink.Sink{rec}, sink.WithOwner("later"))
	if err != nil {
		t.Fatal(err)
	}
	runDispatcher(t, d2)
	rec.wait(t, 6)
	for _, id := range runs {
		waitState(t, st, id, governance.DeliveryDelivered, 2)
	}
}

// A failing sink is retried with growing waits until it takes the
// event; the key is the same on every attempt. A permanent error, or the
// last attempt, makes a delivery dead; RetryDelivery brings it back.
func TestRetriesAndDeadLetters(t *testing.T) {
	st := memstore.New()
	flaky := newRecorder("flaky", 2)
	perm := &funcSink{name: "perm", fn: func(sink.Event) error { return fmt.Errorf("gone: %w", sink.ErrPermanent) }}
	var failing atomic.Bool
	failing.Store(true)
	limited := &funcSink{name: "limited", fn: func(sink.Event) error {
		if failing.Load() {
			return errors.New("down")
		}
		return nil
	}}
	d, err := sink.NewDispatcher(st, []sink.Sink{flaky, perm, limited}, sink.WithPoll(5*time.Millisecond),
		sink.WithRetries(3, 20*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r, err := governance.NewRunner(st, governance.WithOutbox(d))
	if err != nil {
		t.Fatal(err)
	}
	runDispatcher(t, d)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: testSnapshot(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	got := flaky.wait(t, 1)[0]
	if got.Attempt != 3 {
		t.Errorf("delivered at attempt %d, want 3", got.Attempt)
	}
	dead := waitState(t, st, run.ID(), governance.DeliveryDead, 2)
	for _, dl := range dead {
		switch dl.Sink {
		case "perm":
			if dl.Attempts != 1 || !strings.Contains(dl.LastError, "gone") {
				t.Errorf("permanent failure: %+v", dl)
			}
		case "limited":
			if dl.Attempts != 3 || !strings.Contains(dl.LastError, "down") {
				t.Errorf("dead after its attempts: %+v", dl)
			}
		default:
			t.Errorf("dead: %+v", dl)
		}
	}
	failing.Store(false)
	for _, dl := range dead {
		if dl.Sink == "limited" {
			if err := st.RetryDelivery(ctx, "acme", dl.ID, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	d.Stored(nil)
	waitState(t, st, run.ID(), governance.DeliveryDelivered, 2)
}

type funcSink struct {
	name string
	fn   func(sink.Event) error
}

func (f *funcSink) Name() string                                  { return f.name }
func (f *funcSink) Deliver(_ context.Context, e sink.Event) error { return f.fn(e) }

func TestNewDispatcherRefuses(t *testing.T) {
	a := newRecorder("a", 0)
	for name, tc := range map[string]struct {
		sinks []sink.Sink
		opts  []sink.Option
	}{
		"no sinks":                {nil, nil},
		"two sinks of one name":   {[]sink.Sink{a, newRecorder("a", 0)}, nil},
		"an unnamed sink":         {[]sink.Sink{newRecorder("", 0)}, nil},
		"a lease under a timeout": {[]sink.Sink{a}, []sink.Option{sink.WithLease(time.Second), sink.WithTimeout(2 * time.Second)}},
		"no attempts":             {[]sink.Sink{a}, []sink.Option{sink.WithRetries(0, time.Second, time.Second)}},
	} {
		if _, err := sink.NewDispatcher(memstore.New(), tc.sinks, tc.opts...); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// storeOnly hides a store's outbox.
type storeOnly struct{ governance.Store }

func TestOutboxNeedsOutboxStore(t *testing.T) {
	if _, err := sink.NewDispatcher(storeOnly{memstore.New()}, []sink.Sink{newRecorder("a", 0)}); !errors.Is(err, governance.ErrOutboxUnsupported) {
		t.Errorf("NewDispatcher: got %v, want ErrOutboxUnsupported", err)
	}
	d, err := sink.NewDispatcher(memstore.New(), []sink.Sink{newRecorder("a", 0)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := governance.NewRunner(storeOnly{memstore.New()}, governance.WithOutbox(d)); !errors.Is(err, governance.ErrOutboxUnsupported) {
		t.Errorf("NewRunner: got %v, want ErrOutboxUnsupported", err)
	}
}
