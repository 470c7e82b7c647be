package sqlite_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore/sqlstoretest"
	"github.com/stopline/stopline/sink"
	"github.com/stopline/stopline/store/sqlite"
)

// Benchmarks of the outbox's cost on the write path: a step and a run's
// end, each with no sink and with a sink registered (the runner made
// WithOutbox, its dispatcher running and delivering to a sink that takes
// every event at once), interleaved in one process on two files, so that
// both see the same disk. Each reports none-ns/op, sink-ns/op and their
// ratio (mean and median):
//
//	go test -run '^$' -bench 'Sink' -benchtime 4000x -count 3 ./store/sqlite/

// nopSink takes every event.
type nopSink struct{}

func (nopSink) Name() string                              { return "nop" }
func (nopSink) Deliver(context.Context, sink.Event) error { return nil }

// sinkRunner returns a runner over a new store with a dispatcher running
// its outbox to nopSink, stopped when b ends.
func sinkRunner(b *testing.B) (*governance.Runner, *sqlite.Store) {
	s := openStore(b, filepath.Join(b.TempDir(), "sink.db"))
	d, err := sink.NewDispatcher(s, []sink.Sink{nopSink{}})
	if err != nil {
		b.Fatal(err)
	}
	c, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = d.Run(c) }()
	b.Cleanup(func() { cancel(); <-done })
	r, err := governance.NewRunner(s, governance.WithOutbox(d))
	if err != nil {
		b.Fatal(err)
	}
	return r, s
}

// interleave times none and withSink alternately, b.N times each, and
// reports their means, medians and ratios.
func interleave(b *testing.B, none, withSink func()) {
	var nNS, sNS time.Duration
	ns, ss := make([]time.Duration, 0, b.N), make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		none()
		t1 := time.Now()
		withSink()
		t2 := time.Now()
		nNS, sNS = nNS+t1.Sub(t0), sNS+t2.Sub(t1)
		ns, ss = append(ns, t1.Sub(t0)), append(ss, t2.Sub(t1))
	}
	b.ReportMetric(float64(nNS.Nanoseconds())/float64(b.N), "none-ns/op")
	b.ReportMetric(float64(sNS.Nanoseconds())/float64(b.N), "sink-ns/op")
	b.ReportMetric(float64(sNS)/float64(nNS), "ratio")
	b.ReportMetric(float64(sqlstoretest.Percentile(ss, 50))/float64(sqlstoretest.Percentile(ns, 50)), "ratio-p50")
}

// BenchmarkGovernedStepSink is BenchmarkGovernedStep (FULL mode) without
// and with a sink: a step writes nothing to the outbox, so the goal is a
// ratio of 1 (within noise).
func BenchmarkGovernedStepSink(b *testing.B) {
	plain := sqlstoretest.StartBenchRun(b, openStore(b, filepath.Join(b.TempDir(), "none.db")))
	r, _ := sinkRunner(b)
	withSink, err := r.Start(ctx, governance.StartOptions{Snapshot: sqlstoretest.TwentyPolicies(b)})
	if err != nil {
		b.Fatal(err)
	}
	step := func(run *governance.Run) func() {
		return func() {
			if _, err := run.Step(ctx, sqlstoretest.BenchStep); err != nil {
				b.Fatal(err)
			}
		}
	}
	interleave(b, step(plain), step(withSink))
}

// BenchmarkRunEndSink starts a run, takes one step and finishes it,
// without and with a sink: with one, the end's transaction also stores
// its delivery, and the dispatcher claims and acknowledges it meanwhile
// on the same writer.
func BenchmarkRunEndSink(b *testing.B) {
	plainR, err := governance.NewRunner(openStore(b, filepath.Join(b.TempDir(), "none.db")))
	if err != nil {
		b.Fatal(err)
	}
	sinkR, _ := sinkRunner(b)
	snap := sqlstoretest.TwentyPolicies(b)
	lifecycle := func(r *governance.Runner) func() {
		return func() {
			run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := run.Step(ctx, sqlstoretest.BenchStep); err != nil {
				b.Fatal(err)
			}
			if _, err := run.Finish(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	interleave(b, lifecycle(plainR), lifecycle(sinkR))
}
