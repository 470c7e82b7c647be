package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/sink"
	"github.com/stopline/stopline/snapshot"
)

// countingSink counts the deliveries of each id, and which dispatcher
// made them.
type countingSink struct {
	owner string
	mu    *sync.Mutex
	seen  map[string][]string
}

func (c countingSink) Name() string { return "hook" }
func (c countingSink) Deliver(ctx context.Context, e sink.Event) error {
	time.Sleep(2 * time.Millisecond) // a receiver that takes a moment
	c.mu.Lock()
	c.seen[e.ID] = append(c.seen[e.ID], c.owner)
	c.mu.Unlock()
	return nil
}

// Two dispatchers on two replicas (two Stores, two pools) share one
// outbox: every delivery is delivered once, by one of them, never both.
func TestTwoDispatchersNeverDeliverTwice(t *testing.T) {
	url := newDatabase(t)
	a, b := openStore(t, url), openStore(t, url)
	snap, err := snapshot.Parse("p.json", []byte(`{"tenant_id":"acme","policies":[
		{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`), time.Time{}, prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen = map[string][]string{}
	)
	opts := []sink.Option{sink.WithConcurrency(4), sink.WithPoll(10 * time.Millisecond), sink.WithLease(time.Minute)}
	da, err := sink.NewDispatcher(a, []sink.Sink{countingSink{"a", &mu, seen}}, append(opts, sink.WithOwner("a"))...)
	if err != nil {
		t.Fatal(err)
	}
	db, err := sink.NewDispatcher(b, []sink.Sink{countingSink{"b", &mu, seen}}, append(opts, sink.WithOwner("b"))...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := governance.NewRunner(a, governance.WithOutbox(da))
	if err != nil {
		t.Fatal(err)
	}
	const runs = 40
	for i := range runs {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"})
			if !errors.Is(err, governance.ErrPolicyViolation) {
				t.Fatalf("blocked step: %v", err)
			}
		} else if _, err := run.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	want := runs + runs/2 // an end each, an incident for half
	c, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, d := range []*sink.Dispatcher{da, db} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = d.Run(c) }()
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		ds, err := a.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme", State: governance.DeliveryDelivered})
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d delivered", len(ds), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	by := map[string]int{}
	for id, owners := range seen {
		if len(owners) != 1 {
			t.Errorf("delivery %s made %d times, by %v", id, len(owners), owners)
		}
		for _, o := range owners {
			by[o]++
		}
	}
	if len(seen) != want {
		t.Errorf("%d deliveries made, want %d", len(seen), want)
	}
	t.Logf("deliveries by dispatcher: %v", by)
	if by["a"] == 0 || by["b"] == 0 {
		t.Logf("one dispatcher delivered everything (%v): the claims did not overlap", by)
	}
}
