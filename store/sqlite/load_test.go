package sqlite_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/sqlite"
)

// TestLoad governs many runs at once on one SQLite file, in the default
// durability mode (FULL: one fsync per commit, which the steps of the runs
// waiting at that moment share), with readers listing,
// reading and verifying runs while they are written. Every acknowledged
// record must be there with its hash, every chain must verify, and no
// caller may ever see "database is locked" (or any other error).
//
// Size: 1,000 concurrent runs × 50 steps (52,000 records), in CI too: it
// takes about 25 s under -race on 2 cores (GUARANTEES.md has the
// measurements). STOPLINE_LONG=1 runs 5,000 runs × 50 steps.
// STOPLINE_LOAD_RUNS and STOPLINE_LOAD_STEPS override either size.
func TestLoad(t *testing.T) {
	runs, steps := 1000, 50
	if long() {
		runs = 5000
	}
	if n, err := strconv.Atoi(os.Getenv("STOPLINE_LOAD_RUNS")); err == nil && n > 0 {
		runs = n
	}
	if n, err := strconv.Atoi(os.Getenv("STOPLINE_LOAD_STEPS")); err == nil && n > 0 {
		steps = n
	}
	s := openStore(t, dbPath(t))
	r, err := governance.NewRunner(s)
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Parse("load.json", []byte(fmt.Sprintf(`{"tenant_id":"acme","thresholds":{"max_steps":%d},"policies":[
		{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
		{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`, steps)), time.Now(), prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}

	var (
		errMu  sync.Mutex
		errs   []string
		locked atomic.Int64
	)
	report := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		if strings.Contains(msg, "locked") || strings.Contains(msg, "busy") {
			locked.Add(1)
		}
		errMu.Lock()
		defer errMu.Unlock()
		if len(errs) < 20 {
			errs = append(errs, msg)
		}
	}

	type result struct {
		id     string
		hashes []string // hash of every acknowledged record, by seq
	}
	results := make([]result, runs)
	done := make(chan struct{})

	// Readers: list, read and verify finished runs while the writers go.
	var readers sync.WaitGroup
	var finished sync.Map
	var reads atomic.Int64
	for i := 0; i < 2; i++ {
		readers.Add(1)
		go func(i int) {
			defer readers.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 3))
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := s.Runs(ctx, governance.RunFilter{TenantID: "acme", Limit: 20}); err != nil {
					report("reader: Runs: %v", err)
				}
				id, ok := finished.Load(rng.IntN(runs))
				if ok {
					if _, err := governance.VerifyRun(ctx, s, "acme", id.(string)); err != nil {
						report("reader: VerifyRun %s: %v", id, err)
					}
				}
				reads.Add(1)
				time.Sleep(2 * time.Millisecond) // readers keep up a steady load, not all the CPU
			}
		}(i)
	}

	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < runs; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			res := &results[i]
			rec, err := r.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
				res.id = run.ID()
				res.hashes = append(res.hashes, run.Record().HeadHash)
				for s := 0; s < steps; s++ {
					out, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search",
						Input: fmt.Sprintf(`{"run":%d,"step":%d}`, i, s), Output: "ok", Tokens: 3, CostCents: 0.25})
					if err != nil {
						return err
					}
					res.hashes = append(res.hashes, out.Hash)
				}
				return nil
			})
			if err != nil {
				report("run %d: %v", i, err)
				return
			}
			res.hashes = append(res.hashes, rec.HeadHash)
			finished.Store(i, rec.RunID)
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(done)
	readers.Wait()

	for _, e := range errs {
		t.Error(e)
	}
	if n := locked.Load(); n > 0 {
		t.Errorf(`%d callers saw "database is locked" or busy`, n)
	}
	t.Logf("%d runs × %d steps (%d records in %d commits) in %v: %.0f steps/s; %d reads meanwhile",
		runs, steps, runs*(steps+2), sqlite.Commits(s), elapsed.Round(time.Millisecond), float64(runs*steps)/elapsed.Seconds(), reads.Load())

	// Every acknowledged record is there, and every chain verifies.
	vstart := time.Now()
	for i, res := range results {
		recs, err := s.Records(ctx, "acme", res.id)
		if err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
		if len(recs) != steps+2 || len(res.hashes) != steps+2 {
			t.Fatalf("run %s: %d records stored, %d acknowledged, want %d", res.id, len(recs), len(res.hashes), steps+2)
		}
		for seq, h := range res.hashes {
			if recs[seq].Hash != h {
				t.Fatalf("run %s record %d: stored hash %s, acknowledged %s", res.id, seq, recs[seq].Hash, h)
			}
		}
	}
	rep, err := governance.VerifyStore(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Runs != runs || rep.Records != runs*(steps+2) || len(rep.Failures) > 0 {
		t.Errorf("VerifyStore: %d runs, %d records, failures %v", rep.Runs, rep.Records, rep.Failures)
	}
	t.Logf("checked and verified in %v", time.Since(vstart).Round(time.Millisecond))
}
