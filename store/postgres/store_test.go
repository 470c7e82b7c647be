package postgres_test

import (
	"errors"
	"math"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore/sqlstoretest"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/postgres"
	"github.com/stopline/stopline/store/storetest"
	"github.com/stopline/stopline/trace"
)

func sealed(r trace.Record, prev string) governance.StepWrite {
	body := trace.Seal(&r, prev, nil)
	return governance.StepWrite{Record: r, Body: body}
}

// CreateRun's two statements are one transaction: when the run_start
// record is refused, the run is not stored either.
func TestCreateRunIsAtomic(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	s := openStore(t, url)
	snap := storetest.Snapshot(t, "acme")
	if err := s.PutSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	// A trigger of the test's own refuses the record of one run.
	if _, err := rawConn(t, url).Exec(ctx, `CREATE FUNCTION refuse_one() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.run_id = 'RUN-refused' THEN RAISE EXCEPTION 'refused'; END IF; RETURN NEW; END $$;
		CREATE TRIGGER refuse_one BEFORE INSERT ON records FOR EACH ROW EXECUTE FUNCTION refuse_one()`); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"RUN-refused", "RUN-ok"} {
		run := governance.RunRecord{RunID: id, TenantID: "acme", TraceID: "TRC", SnapshotID: snap.ID(), Status: governance.StatusRunning, CreatedAt: storetest.T0}
		start := sealed(trace.Record{TenantID: "acme", RunID: id, Kind: trace.KindRunStart, At: storetest.T0, SnapshotID: snap.ID(),
			SnapshotHash: snap.ContentHash(), StepIndex: -1}, trace.GenesisHash)
		err := s.CreateRun(ctx, run, start)
		if (err == nil) != (id == "RUN-ok") {
			t.Fatalf("CreateRun %s: %v", id, err)
		}
	}
	if _, err := s.Run(ctx, "acme", "RUN-refused"); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("run whose run_start was refused: got %v, want ErrNotFound", err)
	}
	if _, err := s.Run(ctx, "acme", "RUN-ok"); err != nil {
		t.Error(err)
	}
}

// Errors map to the governance sentinels, precisely.
func TestAppendErrors(t *testing.T) {
	t.Parallel()
	s := openStore(t, newDatabase(t))
	r, err := governance.NewRunner(s)
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: storetest.Snapshot(t, "acme")})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := s.Run(ctx, "acme", run.ID())
	if err != nil {
		t.Fatal(err)
	}
	d := prevention.Allowed()
	step := trace.Record{TenantID: "acme", RunID: run.ID(), Seq: 1, Kind: trace.KindStep, At: storetest.T0, SnapshotID: rec.SnapshotID,
		StepIndex: 0, StepType: prevention.StepLLMResponse, Status: trace.StatusOK, Decision: &d}
	other := step
	other.RunID = "RUN-none"
	if err := s.AppendStep(ctx, sealed(other, rec.HeadHash)); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("append to an unknown run: got %v, want ErrNotFound", err)
	}
	otherTenant := step
	otherTenant.TenantID = "globex"
	if err := s.AppendStep(ctx, sealed(otherTenant, rec.HeadHash)); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("append to another tenant's run: got %v, want ErrNotFound", err)
	}
	huge := step
	huge.Seq = math.MaxInt32 + 1
	if err := s.AppendStep(ctx, sealed(huge, rec.HeadHash)); err == nil || errors.Is(err, governance.ErrChainConflict) {
		t.Errorf("append at a seq past int32: got %v, want a plain error", err)
	}
	if _, err := run.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	ended, _ := s.Run(ctx, "acme", run.ID())
	late := step
	late.Seq = 2
	if err := s.AppendStep(ctx, sealed(late, ended.HeadHash)); !errors.Is(err, governance.ErrRunEnded) {
		t.Errorf("append after the end: got %v, want ErrRunEnded", err)
	}
}

func TestErrorsNameTheStore(t *testing.T) {
	t.Parallel()
	sqlstoretest.ErrorsNameTheStore(t, openStore(t, newDatabase(t)), "postgres")
}

// CloseRun takes two round trips on one connection (BEGIN with the
// status read, the writes with COMMIT): a close refused at either leaves
// nothing stored and the connection out of any transaction, ready for the
// next write, even when the pool has only that one.
func TestCloseRunRefusalsLeaveNoTransaction(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	s := openStore(t, url, postgres.WithMaxConns(1))
	snap := storetest.Snapshot(t, "acme")
	r, err := governance.NewRunner(s)
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	step := governance.StepInput{Type: prevention.StepToolCall, Tool: "search"}
	if _, err := run.Step(ctx, step); err != nil {
		t.Fatal(err)
	}
	rec := run.Record()
	end := func(runID string, seq int, prev string) governance.StepWrite {
		return sealed(trace.Record{TenantID: "acme", RunID: runID, Seq: seq, Kind: trace.KindRunEnd, At: storetest.T0,
			SnapshotID: snap.ID(), StepIndex: -1, RunStatus: string(governance.StatusSucceeded), Reason: prevention.ReasonCompleted,
			TotalTokens: rec.TotalTokens, TotalCostCents: rec.TotalCostCents}, prev)
	}
	closeWith := func(runID string, w governance.StepWrite) governance.Close {
		return governance.Close{TenantID: "acme", RunID: runID, End: w, Status: governance.StatusSucceeded,
			Reason: prevention.ReasonCompleted, EndedAt: storetest.T0}
	}
	for _, tc := range []struct {
		name string
		c    governance.Close
		want error
	}{
		{"unknown run", closeWith("RUN-none", end("RUN-none", rec.ChainLength, rec.HeadHash)), governance.ErrNotFound},
		{"end off the chain", closeWith(rec.RunID, end(rec.RunID, rec.ChainLength, trace.GenesisHash)), governance.ErrChainConflict},
		{"end at a seq taken", closeWith(rec.RunID, end(rec.RunID, rec.ChainLength-1, rec.HeadHash)), governance.ErrChainConflict},
	} {
		if err := s.CloseRun(ctx, tc.c); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
		// The one connection is free and outside any transaction:
		// what it reads is committed, and nothing of the close is.
		got, err := s.Run(ctx, "acme", rec.RunID)
		if err != nil || got.Status != governance.StatusRunning || got.ChainLength != rec.ChainLength {
			t.Fatalf("after %s: %+v %v", tc.name, got, err)
		}
	}
	if _, err := run.Step(ctx, step); err != nil {
		t.Fatal(err)
	}
	rec = run.Record()
	if recs, err := s.Records(ctx, "acme", rec.RunID); err != nil || len(recs) != rec.ChainLength {
		t.Errorf("%d records %v, want %d", len(recs), err, rec.ChainLength)
	}
	fin, err := run.Finish(ctx)
	if err != nil || fin.Status != governance.StatusSucceeded {
		t.Fatalf("Finish: %+v %v", fin, err)
	}
	if err := s.CloseRun(ctx, closeWith(rec.RunID, end(rec.RunID, fin.ChainLength, fin.HeadHash))); !errors.Is(err, governance.ErrRunEnded) {
		t.Errorf("closing an ended run: got %v, want ErrRunEnded", err)
	}
	if n, err := governance.VerifyRun(ctx, s, "acme", rec.RunID); err != nil {
		t.Errorf("VerifyRun: %d %v", n, err)
	}
}
