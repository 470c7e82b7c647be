package postgres_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/postgres"
	"github.com/stopline/stopline/store/storetest"
	"github.com/stopline/stopline/trace"
)

// The AppendSteps waiting at one moment go in one round trip; one that the
// database refuses fails alone, with its own error, and the others are
// stored.
func TestBatchedAppendsFailAlone(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	s := openStore(t, url, postgres.WithMaxConns(1))
	snap := storetest.Snapshot(t, "acme")
	r, err := governance.NewRunner(s)
	if err != nil {
		t.Fatal(err)
	}
	type chainOf struct {
		run  governance.RunRecord
		next func(seq int, prev string) governance.StepWrite
	}
	var chains []chainOf
	for range 4 {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		rec := run.Record()
		chains = append(chains, chainOf{rec, func(seq int, prev string) governance.StepWrite {
			return sealed(trace.Record{TenantID: "acme", RunID: rec.RunID, Seq: seq, Kind: trace.KindStep, At: storetest.T0,
				SnapshotID: snap.ID(), StepIndex: seq - 1, StepType: prevention.StepToolCall, Tool: "search",
				Status: trace.StatusOK, Decision: &prevention.Decision{Action: prevention.Allow}}, prev)
		}})
	}
	writes := []governance.StepWrite{
		chains[0].next(1, chains[0].run.HeadHash),
		chains[1].next(1, chains[1].run.HeadHash),
		chains[2].next(2, chains[2].run.HeadHash), // a gap: records_chain refuses it
		chains[3].next(1, chains[3].run.HeadHash),
	}
	// The one connection is held: the first step waits for it, alone;
	// the others queue behind it and go as one batch.
	conn, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	errs := make([]error, len(writes))
	var wg sync.WaitGroup
	for i, w := range writes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.AppendStep(ctx, w)
		}()
		deadline := time.Now().Add(10 * time.Second)
		for postgres.AppendsQueued(s) != i+1 {
			if time.Now().After(deadline) {
				t.Fatalf("%d appends queued, want %d", postgres.AppendsQueued(s), i+1)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	conn.Release()
	wg.Wait()
	for i, err := range errs {
		if want := i == 2; (err != nil) != want || (want && !errors.Is(err, governance.ErrChainConflict)) {
			t.Errorf("step %d: %v", i, err)
		}
	}
	for i, c := range chains {
		recs, err := s.Records(ctx, "acme", c.run.RunID)
		if want := map[bool]int{true: 1, false: 2}[i == 2]; err != nil || len(recs) != want {
			t.Errorf("run %d: %d records %v, want %d", i, len(recs), err, want)
		}
	}
}
