package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/mattn/go-sqlite3"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/sqlite"
)

// Tests of group commit (group.go): writes waiting at the same moment
// share one transaction, and each keeps its own result.

// execSQL runs statements on a raw handle.
func execSQL(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// waitQueued waits until s's queue holds n writes.
func waitQueued(t *testing.T, s *sqlite.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for sqlite.Queued(s) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d writes queued, want %d", sqlite.Queued(s), n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// inOneBatch runs lead, which leads and is held until every op is queued
// behind it, in order; the ops are then written as one batch. It returns
// each op's error and lead's, and checks that the ops took one commit
// (after their transaction lost any write, a second attempt).
func inOneBatch(t *testing.T, s *sqlite.Store, lead func() error, ops ...func() error) ([]error, error) {
	t.Helper()
	release := sqlite.HoldWriter(t, s)
	before := sqlite.Commits(s)
	var wg sync.WaitGroup
	var leadErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		leadErr = lead()
	}()
	waitQueued(t, s, 1)
	errs := make([]error, len(ops))
	for i, op := range ops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = op()
		}()
		waitQueued(t, s, i+2)
	}
	release()
	wg.Wait()
	if leadErr == nil {
		before++
	}
	succeeded := false
	for _, err := range errs {
		succeeded = succeeded || err == nil
	}
	if n := sqlite.Commits(s) - before; succeeded && n != 1 {
		t.Errorf("the batch took %d commits, want 1", n)
	}
	return errs, leadErr
}

func TestGroupCommitFailsRowsAlone(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)
	s2 := openStore(t, path) // another writer of the file, as another process would be
	snap := newSnap(t, "acme")
	filler := startRun(t, s, snap, "RUN-filler", governance.StatusRunning)
	a := startRun(t, s, snap, "RUN-a", governance.StatusRunning)
	b := startRun(t, s, snap, "RUN-b", governance.StatusRunning)
	gap := startRun(t, s, snap, "RUN-gap", governance.StatusRunning)
	stale := startRun(t, s, snap, "RUN-stale", governance.StatusRunning)
	d := startRun(t, s, snap, "RUN-d", governance.StatusRunning)
	startRun(t, s, snap, "RUN-f", governance.StatusRunning)
	appendSteps(t, s, stale, 1) // s keeps the head at seq 1
	appendSteps(t, s, d, 1)

	fork := *stale                // the record s will send is built on seq 1
	appendSteps(t, s2, stale, 1)  // another writer takes seq 2
	staleStep := fork.next(false) // seq 2 again: s's head allows it, the primary key does not
	gapFork := *gap
	gapFork.next(false)            // seq 1 ...
	gapStep := gapFork.next(false) // ... skipped: seq 2
	unknown := newChain(snap, "RUN-none")
	unknown.start()
	e := newChain(snap, "RUN-e")
	eRun := governance.RunRecord{RunID: "RUN-e", TenantID: "acme", TraceID: "TRC-RUN-e", SnapshotID: snap.ID(),
		Status: governance.StatusRunning, CreatedAt: t0, StartedAt: &t0}
	fAgain := newChain(snap, "RUN-f")
	fRun := eRun
	fRun.RunID, fRun.TraceID = "RUN-f", "TRC-RUN-f"
	a1, a2, b1 := a.next(false), a.next(false), b.next(false)
	aEnd := a.end(governance.StatusSucceeded, prevention.ReasonCompleted, "", nil)

	var dClose governance.Close
	errs, leadErr := inOneBatch(t, s,
		func() error { return s.AppendStep(ctx, filler.next(false)) },
		func() error { return s.AppendStep(ctx, a1) },
		func() error { return s.AppendStep(ctx, gapStep) },
		func() error { return s.AppendStep(ctx, staleStep) },
		func() error { return s.AppendStep(ctx, b1) },
		func() error { return s.AppendStep(ctx, unknown.next(false)) },
		func() error { return s.CreateRun(ctx, eRun, e.start()) },
		func() error { return s.CreateRun(ctx, fRun, fAgain.start()) },
		func() error {
			dClose, _ = blockRunClose(d, "INC-d")
			return s.CloseRun(ctx, dClose)
		},
		func() error { return s.AppendStep(ctx, a2) }, // extends a1, written in this batch
		func() error { // sees a2
			return s.CloseRun(ctx, governance.Close{TenantID: "acme", RunID: "RUN-a", End: aEnd,
				Status: governance.StatusSucceeded, Reason: prevention.ReasonCompleted, EndedAt: aEnd.Record.At})
		},
	)
	if leadErr != nil {
		t.Fatalf("leading write: %v", leadErr)
	}
	want := []error{nil, governance.ErrChainConflict, governance.ErrChainConflict, nil, governance.ErrNotFound,
		nil, governance.ErrRunExists, nil, nil, nil}
	for i, err := range errs {
		if (want[i] == nil) != (err == nil) || (want[i] != nil && !errors.Is(err, want[i])) {
			t.Errorf("write %d: got %v, want %v", i, err, want[i])
		}
	}

	// What committed is whole, and every chain verifies.
	for run, n := range map[string]int{"RUN-a": 4, "RUN-b": 2, "RUN-gap": 1, "RUN-stale": 3, "RUN-d": 4, "RUN-e": 1, "RUN-f": 1} {
		recs, err := s.Records(ctx, "acme", run)
		if err != nil || len(recs) != n {
			t.Errorf("run %s: %d records %v, want %d", run, len(recs), err, n)
		}
	}
	if run, err := s.Run(ctx, "acme", "RUN-a"); err != nil || run.Status != governance.StatusSucceeded || run.StepCount != 2 {
		t.Errorf("run finished in the batch after its steps: %+v %v", run, err)
	}
	if run, err := s.Run(ctx, "acme", "RUN-d"); err != nil || run.Status != governance.StatusFailedPolicy || run.IncidentID != "INC-d" {
		t.Errorf("run stopped in the batch: %+v %v", run, err)
	}
	if rep, err := governance.VerifyStore(ctx, s, nil); err != nil || len(rep.Failures) > 0 {
		t.Errorf("VerifyStore: %+v %v", rep.Failures, err)
	}

	// The heads kept in memory follow what committed.
	appendSteps(t, s, b, 1)
	appendSteps(t, s, stale, 1) // read again: seq 3, after the other writer's seq 2
	appendSteps(t, s, e, 1)     // created in the batch
	appendSteps(t, s, gap, 1)
	if err := s.AppendStep(ctx, a.next(false)); !errors.Is(err, governance.ErrRunEnded) {
		t.Errorf("step after the run ended in the batch: %v", err)
	}
}

// blockRunClose is blockRun's Close, not sent.
func blockRunClose(c *chain, incidentID string) (governance.Close, *chain) {
	step := c.next(true)
	idx := step.Record.StepIndex
	d := step.Record.Decision
	end := c.end(governance.StatusFailedPolicy, prevention.ReasonPolicyBlock, incidentID, &idx)
	inc := incident.Incident{ID: incidentID, TenantID: c.tenant, RunID: c.run, TraceID: "TRC-" + c.run, SnapshotID: c.snap.ID(),
		PolicyID: "tools", Source: prevention.SourcePolicy, StepIndex: idx, RecordHash: step.Record.Hash,
		Reason: prevention.ReasonPolicyBlock, Severity: incident.SeverityHigh,
		Status: incident.StatusOpen, Title: incident.TitleFor(*d, idx), CreatedAt: step.Record.At}
	inc.Threshold, inc.Limit, inc.Observed, inc.Message = d.Threshold, d.Limit, d.Observed, d.Message
	return governance.Close{TenantID: c.tenant, RunID: c.run, Step: &step, Incident: &inc, End: end,
		Status: governance.StatusFailedPolicy, Reason: prevention.ReasonPolicyBlock, StoppedAtStep: &idx,
		ViolationPolicyID: "tools", IncidentID: incidentID, Message: "stopped", EndedAt: end.Record.At}, c
}

// A write whose error loses the transaction (RAISE(ROLLBACK)), and one
// whose second statement fails after its first was written, fail alone:
// the others are written again in a new transaction.
func TestGroupCommitWritesAgainWithoutTheWriteThatLostTheTransaction(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)
	snap := newSnap(t, "acme")
	filler := startRun(t, s, snap, "RUN-filler", governance.StatusRunning)
	a := startRun(t, s, snap, "RUN-a", governance.StatusRunning)
	lose := startRun(t, s, snap, "RUN-lose", governance.StatusRunning)
	b := startRun(t, s, snap, "RUN-b", governance.StatusRunning)
	q := startRun(t, s, snap, "RUN-q", governance.StatusQueued)
	c := startRun(t, s, snap, "RUN-c", governance.StatusRunning)
	raw := rawDB(t, path)
	execSQL(t, raw, `CREATE TRIGGER test_lose BEFORE INSERT ON records WHEN NEW.run_id = 'RUN-lose'
		BEGIN SELECT RAISE(ROLLBACK, 'test: transaction lost'); END;
		CREATE TRIGGER test_no_start BEFORE UPDATE ON runs WHEN NEW.run_id = 'RUN-q'
		BEGIN SELECT RAISE(ABORT, 'test: cannot start'); END`)

	loseStep, qStep := lose.next(false), q.next(false)
	qStep.MarkRunning = true
	a1, b1, c1 := a.next(false), b.next(false), c.next(false)
	errs, _ := inOneBatch(t, s,
		func() error { return s.AppendStep(ctx, filler.next(false)) },
		func() error { return s.AppendStep(ctx, a1) },
		func() error { return s.AppendStep(ctx, loseStep) },
		func() error { return s.AppendStep(ctx, b1) },
		func() error { return s.AppendStep(ctx, qStep) },
		func() error { return s.AppendStep(ctx, c1) },
	)
	for i, wantErr := range []bool{false, true, false, true, false} {
		if (errs[i] != nil) != wantErr {
			t.Errorf("write %d: %v (want an error: %v)", i, errs[i], wantErr)
		}
	}
	for run, n := range map[string]int{"RUN-a": 2, "RUN-lose": 1, "RUN-b": 2, "RUN-q": 1, "RUN-c": 2} {
		if recs, err := s.Records(ctx, "acme", run); err != nil || len(recs) != n {
			t.Errorf("run %s: %d records %v, want %d", run, len(recs), err, n)
		}
	}
	if run, err := s.Run(ctx, "acme", "RUN-q"); err != nil || run.Status != governance.StatusQueued {
		t.Errorf("run whose start failed: %+v %v", run, err)
	}
	execSQL(t, raw, `DROP TRIGGER test_lose; DROP TRIGGER test_no_start`)
	// The failed writes go through as they were; the others go on.
	for _, w := range []governance.StepWrite{loseStep, qStep, a.next(false), b.next(false), c.next(false)} {
		if err := s.AppendStep(ctx, w); err != nil {
			t.Errorf("step of %s after the batch: %v", w.Record.RunID, err)
		}
	}
	if rep, err := governance.VerifyStore(ctx, s, nil); err != nil || len(rep.Failures) > 0 {
		t.Errorf("VerifyStore: %+v %v", rep.Failures, err)
	}
}

// A COMMIT that fails fails every write of its batch, and acknowledges
// none: nothing of the batch is stored, and each write goes through when
// sent again.
func TestGroupCommitFailedCommitFailsTheBatch(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)
	snap := newSnap(t, "acme")
	filler := startRun(t, s, snap, "RUN-filler", governance.StatusRunning)
	chains := make([]*chain, 4)
	for i := range chains {
		chains[i] = startRun(t, s, snap, fmt.Sprintf("RUN-%d", i), governance.StatusRunning)
	}
	raw := rawDB(t, path)
	// A deferred foreign key is checked at COMMIT.
	execSQL(t, raw, `CREATE TABLE test_parent (id TEXT PRIMARY KEY);
		CREATE TABLE test_child (pid TEXT REFERENCES test_parent (id) DEFERRABLE INITIALLY DEFERRED);
		CREATE TRIGGER test_commit_fails AFTER INSERT ON records WHEN NEW.run_id = 'RUN-2'
		BEGIN INSERT INTO test_child VALUES ('missing'); END`)
	ws := make([]governance.StepWrite, len(chains))
	ops := make([]func() error, len(chains))
	for i, c := range chains {
		ws[i] = c.next(false)
		ops[i] = func() error { return s.AppendStep(ctx, ws[i]) }
	}
	ended := newChain(snap, "RUN-new")
	newRun := governance.RunRecord{RunID: "RUN-new", TenantID: "acme", TraceID: "T", SnapshotID: snap.ID(),
		Status: governance.StatusRunning, CreatedAt: t0, StartedAt: &t0}
	newStart := ended.start()
	ops = append(ops, func() error { return s.CreateRun(ctx, newRun, newStart) })
	errs, _ := inOneBatch(t, s, func() error { return s.AppendStep(ctx, filler.next(false)) }, ops...)
	for i, err := range errs {
		if err == nil {
			t.Errorf("write %d of a batch whose COMMIT failed: acknowledged", i)
		}
	}
	for _, c := range chains {
		if recs, err := s.Records(ctx, "acme", c.run); err != nil || len(recs) != 1 {
			t.Errorf("run %s: %d records %v, want its run_start only", c.run, len(recs), err)
		}
	}
	if _, err := s.Run(ctx, "acme", "RUN-new"); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("run created in a batch whose COMMIT failed: %v", err)
	}
	execSQL(t, raw, `DROP TRIGGER test_commit_fails`)
	for _, w := range ws {
		if err := s.AppendStep(ctx, w); err != nil {
			t.Errorf("step of %s sent again: %v", w.Record.RunID, err)
		}
	}
	if err := s.CreateRun(ctx, newRun, newStart); err != nil {
		t.Errorf("run created again: %v", err)
	}
}

// A write whose context is done while it waits leaves the queue, written
// nowhere; the writes around it are not held up.
func TestGroupCommitWithdrawsCancelledWrites(t *testing.T) {
	s := openStore(t, dbPath(t))
	snap := newSnap(t, "acme")
	filler := startRun(t, s, snap, "RUN-filler", governance.StatusRunning)
	a := startRun(t, s, snap, "RUN-a", governance.StatusRunning)
	b := startRun(t, s, snap, "RUN-b", governance.StatusRunning)
	release := sqlite.HoldWriter(t, s)
	var wg sync.WaitGroup
	results := make([]error, 3)
	cctx, cancel := context.WithCancel(ctx)
	aStep := a.next(false)
	for i, f := range []func() error{
		func() error { return s.AppendStep(ctx, filler.next(false)) },
		func() error { return s.AppendStep(cctx, aStep) },
		func() error { return s.AppendStep(ctx, b.next(false)) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = f()
		}()
		waitQueued(t, s, i+1)
	}
	cancel()
	waitQueued(t, s, 2)
	release()
	wg.Wait()
	if results[0] != nil || results[2] != nil || !errors.Is(results[1], context.Canceled) {
		t.Fatalf("results %v, want nil, context.Canceled, nil", results)
	}
	if recs, _ := s.Records(ctx, "acme", "RUN-a"); len(recs) != 1 {
		t.Errorf("cancelled step written: %d records", len(recs))
	}
	if err := s.AppendStep(ctx, aStep); err != nil {
		t.Errorf("cancelled step sent again: %v", err)
	}
}

// Many runs, steps with deadlines that expire at random moments (while
// queued, while leading, while written): a step acknowledged is stored,
// a step that failed is not or is (its answer lost), and every run goes on
// from what its file holds.
func TestGroupCommitUnderCancellation(t *testing.T) {
	s := openStore(t, dbPath(t), sqlite.WithSynchronous(sqlite.Normal))
	snap := newSnap(t, "acme")
	const runs, steps = 16, 60
	var wg sync.WaitGroup
	for i := range runs {
		c := startRun(t, s, snap, fmt.Sprintf("RUN-%02d", i), governance.StatusRunning)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 3))
			for stored := 1; stored < steps; stored++ {
				w := c.next(false)
				for {
					sctx, cancel := context.WithTimeout(ctx, time.Duration(rng.IntN(400))*time.Microsecond)
					err := s.AppendStep(sctx, w)
					cancel()
					recs, rerr := s.Records(ctx, "acme", c.run)
					if rerr != nil {
						t.Error(rerr)
						return
					}
					var se sqlite3.Error
					switch {
					case err == nil && len(recs) != stored+1:
						t.Errorf("run %s: step %d acknowledged, %d records stored", c.run, w.Record.Seq, len(recs))
						return
					case err != nil && !errors.Is(err, context.DeadlineExceeded) && !(errors.As(err, &se) && se.Code == sqlite3.ErrInterrupt):
						t.Errorf("run %s: step %d: %v", c.run, w.Record.Seq, err)
						return
					}
					if len(recs) == stored+1 {
						break // stored, acknowledged or not
					}
				}
			}
		}()
	}
	wg.Wait()
	if rep, err := governance.VerifyStore(ctx, s, nil); err != nil || len(rep.Failures) > 0 {
		t.Errorf("VerifyStore: %+v %v", rep.Failures, err)
	}
}
