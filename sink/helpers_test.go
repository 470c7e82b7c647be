package sink_test

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

var ctx = context.Background()

const policy = `{"tenant_id":"acme","thresholds":{"max_steps":2},
	"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
	{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`

func testSnapshot(t testing.TB) *snapshot.PolicySnapshot {
	t.Helper()
	s, err := snapshot.Parse("policy.json", []byte(policy), time.Time{}, prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// stopRun starts a run and stops it at its first step (a tool the
// allowlist refuses), returning the run as stored.
func stopRun(t testing.TB, r *governance.Runner) governance.RunRecord {
	t.Helper()
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: testSnapshot(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"}); !errors.Is(err, governance.ErrPolicyViolation) {
		t.Fatalf("the blocked step returned %v", err)
	}
	return run.Record()
}

// recorder is a Sink that keeps what it is given, failing the first
// `fail` attempts of each event.
type recorder struct {
	name string
	fail int

	mu       sync.Mutex
	attempts map[string]int
	got      []sink.Event
	ch       chan sink.Event
}

func newRecorder(name string, fail int) *recorder {
	return &recorder{name: name, fail: fail, attempts: map[string]int{}, ch: make(chan sink.Event, 100)}
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) Deliver(ctx context.Context, e sink.Event) error {
	r.mu.Lock()
	r.attempts[e.ID]++
	n := r.attempts[e.ID]
	r.mu.Unlock()
	if n <= r.fail {
		return errors.New("not now")
	}
	r.mu.Lock()
	r.got = append(r.got, e)
	r.mu.Unlock()
	r.ch <- e
	return nil
}

// wait returns the next n events delivered, or fails t after a while.
func (r *recorder) wait(t testing.TB, n int) []sink.Event {
	t.Helper()
	var out []sink.Event
	timeout := time.After(20 * time.Second)
	for len(out) < n {
		select {
		case e := <-r.ch:
			out = append(out, e)
		case <-timeout:
			t.Fatalf("%d of %d events delivered to %s", len(out), n, r.name)
		}
	}
	return out
}

// runDispatcher runs d until t ends.
func runDispatcher(t testing.TB, d *sink.Dispatcher) {
	t.Helper()
	c, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(c) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
}

func deliveriesOf(t testing.TB, st governance.Store, f governance.DeliveryFilter) []governance.Delivery {
	t.Helper()
	ds, err := st.(governance.OutboxStore).Deliveries(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	return ds
}
