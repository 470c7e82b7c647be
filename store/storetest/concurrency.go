package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// Writers racing on one run: two processes (or replicas) that both think
// they hold a run's head. The store must let exactly one of them extend
// the chain, whatever the interleaving.

// testAppendRace appends the same seq of one run from many goroutines at
// once, each with a record of its own: exactly one is stored, every other
// is ErrChainConflict, and the chain verifies.
func testAppendRace(t *testing.T, open Opener) {
	st := open(t)
	const writers, rounds = 8, 5
	run, start := startRaw(t, st, "acme", "RUN-race")
	head := start.Hash
	for seq := 1; seq <= rounds; seq++ {
		ws := make([]governance.StepWrite, writers)
		for i := range ws {
			r := stepRec("acme", run.RunID, run.SnapshotID, seq, seq-1)
			r.Model = fmt.Sprintf("writer-%d", i) // a different record, so a different hash
			ws[i] = sealed(t, r, head)
		}
		errs := make([]error, writers)
		var wg sync.WaitGroup
		for i := range ws {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = st.AppendStep(ctx, ws[i])
			}()
		}
		wg.Wait()
		won := -1
		for i, err := range errs {
			switch {
			case err == nil && won >= 0:
				t.Fatalf("seq %d: writers %d and %d both appended", seq, won, i)
			case err == nil:
				won = i
			case !errors.Is(err, governance.ErrChainConflict):
				t.Errorf("seq %d, writer %d: got %v, want ErrChainConflict", seq, i, err)
			}
		}
		if won < 0 {
			t.Fatalf("seq %d: no writer appended", seq)
		}
		head = ws[won].Record.Hash
	}
	recs, err := st.Records(ctx, "acme", run.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := trace.Verify(recs); err != nil || got != head || len(recs) != rounds+1 {
		t.Errorf("chain after races: %d records, head %s (want %s), %v", len(recs), got, head, err)
	}
	if got, err := st.Run(ctx, "acme", run.RunID); err != nil || got.HeadHash != head || got.ChainLength != rounds+1 {
		t.Errorf("run after races: %+v %v", got, err)
	}
}

// testCloseRace races a step against the run's end at the same seq: one
// of them wins; if the end won, the run is over and nothing follows it.
func testCloseRace(t *testing.T, open Opener) {
	st := open(t)
	for i := range 10 {
		run, start := startRaw(t, st, "acme", fmt.Sprintf("RUN-close-%d", i))
		sw := sealed(t, stepRec("acme", run.RunID, run.SnapshotID, 1, 0), start.Hash)
		end := sealed(t, trace.Record{TenantID: "acme", RunID: run.RunID, Seq: 1, Kind: trace.KindRunEnd, At: T0,
			SnapshotID: run.SnapshotID, StepIndex: -1, RunStatus: "cancelled", Reason: prevention.ReasonUserAbort}, start.Hash)
		c := governance.Close{TenantID: "acme", RunID: run.RunID, End: end, Status: governance.StatusCancelled,
			Reason: prevention.ReasonUserAbort, EndedAt: T0}
		var appendErr, closeErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); appendErr = st.AppendStep(ctx, sw) }()
		go func() { defer wg.Done(); closeErr = st.CloseRun(ctx, c) }()
		wg.Wait()
		got, err := st.Run(ctx, "acme", run.RunID)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case appendErr == nil && closeErr == nil:
			t.Fatalf("run %d: both the step and the end were stored at seq 1", i)
		case appendErr == nil:
			if !errors.Is(closeErr, governance.ErrChainConflict) || got.Status != governance.StatusRunning || got.HeadHash != sw.Record.Hash {
				t.Errorf("run %d: step won; close got %v; run %+v", i, closeErr, got)
			}
		case closeErr == nil:
			if !errors.Is(appendErr, governance.ErrChainConflict) && !errors.Is(appendErr, governance.ErrRunEnded) {
				t.Errorf("run %d: end won; step got %v, want ErrChainConflict or ErrRunEnded", i, appendErr)
			}
			if got.Status != governance.StatusCancelled || got.HeadHash != end.Record.Hash || got.ChainLength != 2 {
				t.Errorf("run %d: end won; run %+v", i, got)
			}
		default:
			t.Fatalf("run %d: neither was stored: %v; %v", i, appendErr, closeErr)
		}
		if _, err := governance.VerifyRun(ctx, st, "acme", run.RunID); err != nil {
			t.Errorf("run %d: %v", i, err)
		}
	}
}

// testPublishRace publishes many policy sets of one tenant at once:
// versions are 1..n, each once, in the order they were stored.
func testPublishRace(t *testing.T, open Opener) {
	st := open(t)
	const n = 10
	var wg sync.WaitGroup
	got := make([]governance.PolicyVersion, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			doc := strings.Replace(policyJSON, `"max_steps": 3`, fmt.Sprintf(`"max_steps": %d`, 10+i), 1)
			snap, err := snapshot.Parse("race.json", []byte(doc), T0, prevention.Builtin())
			if err != nil {
				errs[i] = err
				return
			}
			got[i], errs[i] = st.PublishPolicy(ctx, snap, governance.PolicyVersion{PublishedBy: fmt.Sprint(i), PublishedAt: T0})
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("publish %d: %v", i, errs[i])
		}
		if v := got[i].Version; v < 1 || v > n || seen[v] {
			t.Errorf("publish %d got version %d (seen: %v)", i, v, seen)
		}
		seen[got[i].Version] = true
	}
	hist, err := st.PolicyVersions(ctx, "acme")
	if err != nil || len(hist) != n {
		t.Fatalf("history: %d versions, %v", len(hist), err)
	}
	for i, v := range hist {
		if v.Version != i+1 || got[mustAtoi(t, v.PublishedBy)].SnapshotID != v.SnapshotID {
			t.Errorf("history[%d] = %+v", i, v)
		}
	}
}

func mustAtoi(t *testing.T, s string) int {
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatal(err)
	}
	return n
}
