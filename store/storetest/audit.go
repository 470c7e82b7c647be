package storetest

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// auditOf returns the store as a governance.AuditStore, or fails t: every
// store must let a verifier find rows without their run and compare the
// columns it keeps beside each record with the record.
func auditOf(t *testing.T, st governance.Store) governance.AuditStore {
	t.Helper()
	as, ok := st.(governance.AuditStore)
	if !ok {
		t.Fatalf("%T does not implement governance.AuditStore: verification cannot see rows without their run, nor the columns beside each record", st)
	}
	return as
}

// auditFixture is a store with three runs of tenant acme, checkpointed
// after every step and at every end: one stopped by a policy (with its
// incident), one completed, one still running; and one run of tenant
// globex with the same id as acme's completed run.
type auditFixture struct {
	st                       governance.Store
	stopped, completed, open string
	incidentID               string
	signer                   note.Signer
	verifiers                note.Verifiers
	records                  map[string][]trace.Record
	checkpoints              map[string][]governance.Checkpoint
	globexRun                string
	globexNote               string
}

func newAuditFixture(t *testing.T, st governance.Store) *auditFixture {
	t.Helper()
	skey, vkey, err := governance.GenerateCheckpointKey("storetest")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	f := &auditFixture{st: st, signer: signer, verifiers: note.VerifierList(v),
		records: map[string][]trace.Record{}, checkpoints: map[string][]governance.Checkpoint{}}
	clock := governance.NewFakeClock(T0)
	ids := &seqIDs{}
	r, err := governance.NewRunner(st, governance.WithClock(clock), governance.WithIDGenerator(ids.next), governance.WithCheckpoints(signer, 1))
	if err != nil {
		t.Fatal(err)
	}
	start := func(tenant, id string) *governance.Run {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, tenant), RunID: id})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			clock.Advance(time.Second)
			if _, err := run.Step(ctx, step(prevention.StepToolCall, "search")); err != nil {
				t.Fatal(err)
			}
		}
		return run
	}
	stopped := start("acme", "RUN-stopped")
	clock.Advance(time.Second)
	var viol *governance.Violation
	if _, err := stopped.Step(ctx, step(prevention.StepToolCall, "shell")); !errors.As(err, &viol) {
		t.Fatalf("forbidden tool: %v", err)
	}
	completed := start("acme", "RUN-completed")
	if _, err := completed.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	open := start("acme", "RUN-open")
	globex := start("globex", "RUN-completed")
	if _, err := globex.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	f.stopped, f.completed, f.open, f.incidentID, f.globexRun = stopped.ID(), completed.ID(), open.ID(), viol.IncidentID, globex.ID()
	for _, id := range []string{f.stopped, f.completed, f.open} {
		if f.records[id], err = st.Records(ctx, "acme", id); err != nil {
			t.Fatal(err)
		}
		if f.checkpoints[id], err = st.Checkpoints(ctx, "acme", id); err != nil || len(f.checkpoints[id]) == 0 {
			t.Fatalf("checkpoints of %s: %v %v", id, f.checkpoints[id], err)
		}
	}
	gcps, err := st.Checkpoints(ctx, "globex", f.globexRun)
	if err != nil || len(gcps) == 0 {
		t.Fatalf("checkpoints of globex's run: %v", err)
	}
	f.globexNote = gcps[len(gcps)-1].Note
	return f
}

// testAudit: a store that was not tampered with has no rows without their
// run, keeps beside each record exactly IndexOf(record), and verifies;
// RecordIndexes is tenant-scoped like every read.
func testAudit(t *testing.T, open Opener) {
	st := open(t)
	as := auditOf(t, st)
	f := newAuditFixture(t, st)
	orphans, err := as.Orphans(ctx)
	if err != nil || len(orphans) != 0 {
		t.Errorf("Orphans of an untouched store: %v %v", orphans, err)
	}
	for id, recs := range f.records {
		got, err := as.RecordIndexes(ctx, "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		want := make([]governance.RecordIndex, len(recs))
		for i := range recs {
			want[i] = governance.IndexOf(&recs[i])
			want[i].Body = trace.Encode(nil, &recs[i]) // the bytes the store was given
		}
		if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) })); diff != "" {
			t.Errorf("RecordIndexes of %s (-want +got):\n%s", id, diff)
		}
	}
	if _, err := as.RecordIndexes(ctx, "globex", f.open); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("RecordIndexes of another tenant's run: got %v, want ErrNotFound", err)
	}
	if _, err := as.RecordIndexes(ctx, "acme", "RUN-none"); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("RecordIndexes of an unknown run: got %v, want ErrNotFound", err)
	}
	rep, err := governance.VerifyStore(ctx, st, nil)
	if err != nil || len(rep.Failures) != 0 || rep.Runs != 4 || rep.Orphans != 0 {
		t.Errorf("VerifyStore: %+v %v", rep, err)
	}
	for _, id := range []string{f.stopped, f.completed, f.open} {
		if n, err := governance.VerifyRunCheckpoints(ctx, st, "acme", id, f.verifiers); err != nil || n != len(f.checkpoints[id]) {
			t.Errorf("VerifyRunCheckpoints(%s): %d %v", id, n, err)
		}
	}
}

// Tamper edits a store behind its back, as someone with write access to
// its database (its triggers and foreign keys dropped) would. A store's
// own tests implement it and pass it to RunTamper.
type Tamper interface {
	// DeleteRunRow deletes only the run's row. Everything the store keeps
	// apart from that row stays (records, contents, checkpoints,
	// incidents; a store that keeps a run's records inside its row loses
	// them with it).
	DeleteRunRow(t testing.TB, tenantID, runID string)
	// EditRecordIndex changes the columns the store keeps beside one
	// record (found by its seq), not its body or hashes.
	EditRecordIndex(t testing.TB, tenantID, runID string, seq int, edit func(*governance.RecordIndex))
	// SetBody replaces the stored body of record seq, leaving its hashes
	// and columns alone.
	SetBody(t testing.TB, tenantID, runID string, seq int, body []byte)
	// SetContent stores c as the step content held with record seq,
	// whatever its kind.
	SetContent(t testing.TB, tenantID, runID string, seq int, c trace.Content)
	// InsertIncident stores inc as it is, checking nothing.
	InsertIncident(t testing.TB, inc incident.Incident)
	// InsertCheckpoint stores c as it is, checking nothing.
	InsertCheckpoint(t testing.TB, c governance.Checkpoint)
}

// TamperOpener returns a new, empty store for one test and a Tamper that
// edits it.
type TamperOpener func(t *testing.T) (governance.Store, Tamper)

// RunTamper is the tamper suite every store passes: each edit a writer of
// the database could make that every chain survives — a run's row deleted
// with its records left, an incident added to a run that never stopped,
// a column beside a record changed, step content where no step is, a
// checkpoint row holding another run's note — is reported by
// verification (VerifyStore, VerifyRun, VerifyRunCheckpoints), naming the
// run and, where there is one, the record.
func RunTamper(t *testing.T, open TamperOpener) {
	fixture := func(t *testing.T) (*auditFixture, Tamper) {
		st, tm := open(t)
		auditOf(t, st)
		return newAuditFixture(t, st), tm
	}
	// failure returns the one failure of VerifyStore about runID.
	failure := func(t *testing.T, st governance.Store, runID string) error {
		t.Helper()
		rep, err := governance.VerifyStore(ctx, st, nil)
		if err != nil {
			t.Fatalf("VerifyStore: %v", err)
		}
		var found error
		for _, f := range rep.Failures {
			if !strings.Contains(f.Error(), runID) {
				t.Errorf("a failure names no run %s: %v", runID, f)
				continue
			}
			found = f
		}
		if found == nil {
			t.Fatalf("undetected: VerifyStore %+v", rep)
		}
		return found
	}

	t.Run("DeleteRunRowOfStoppedRun", func(t *testing.T) {
		f, tm := fixture(t)
		tm.DeleteRunRow(t, "acme", f.stopped)
		err := failure(t, f.st, f.stopped)
		var oe *governance.OrphanError
		if !errors.As(err, &oe) || !errors.Is(err, governance.ErrOrphan) || !errors.Is(err, governance.ErrIntegrity) ||
			oe.TenantID != "acme" || oe.RunID != f.stopped {
			t.Fatalf("got %v, want an OrphanError of run %s", err, f.stopped)
		}
		kinds := map[governance.OrphanKind]int{}
		for _, o := range oe.Rows {
			kinds[o.Kind]++
		}
		if kinds[governance.OrphanIncident] != 1 || kinds[governance.OrphanCheckpoint] != len(f.checkpoints[f.stopped]) {
			t.Errorf("orphans %+v: want the incident and %d checkpoints", oe.Rows, len(f.checkpoints[f.stopped]))
		}
		if n := kinds[governance.OrphanRecord]; n != 0 && n != len(f.records[f.stopped]) {
			t.Errorf("orphans %+v: %d of %d records", oe.Rows, n, len(f.records[f.stopped]))
		}
		if !strings.Contains(err.Error(), f.incidentID) {
			t.Errorf("error does not name the incident: %v", err)
		}
		// Per tenant too; the other tenant is clean.
		rep, err := governance.VerifyTenant(ctx, f.st, "acme", nil)
		if err != nil || !slices.ContainsFunc(rep.Failures, func(e error) bool { return errors.Is(e, governance.ErrOrphan) }) {
			t.Errorf("VerifyTenant(acme): %+v %v", rep, err)
		}
		rep, err = governance.VerifyTenant(ctx, f.st, "globex", nil)
		if err != nil || len(rep.Failures) != 0 {
			t.Errorf("VerifyTenant(globex): %+v %v", rep, err)
		}
		// A note of the run kept outside: the run is not found.
		cps := f.checkpoints[f.stopped]
		if _, err := governance.VerifyCheckpoint(ctx, f.st, []byte(cps[len(cps)-1].Note), f.verifiers); !errors.Is(err, governance.ErrNotFound) {
			t.Errorf("kept note of the deleted run: got %v, want ErrNotFound", err)
		}
	})

	t.Run("DeleteRunRowOfCompletedRun", func(t *testing.T) {
		f, tm := fixture(t)
		tm.DeleteRunRow(t, "acme", f.completed)
		err := failure(t, f.st, f.completed)
		var oe *governance.OrphanError
		if !errors.As(err, &oe) || oe.RunID != f.completed || oe.TenantID != "acme" {
			t.Fatalf("got %v, want an OrphanError of run %s", err, f.completed)
		}
		// globex's run of the same id is intact, and not confused with it.
		if _, err := governance.VerifyRun(ctx, f.st, "globex", f.globexRun); err != nil {
			t.Errorf("globex's run: %v", err)
		}
	})

	t.Run("IncidentOfRunThatNeverStopped", func(t *testing.T) {
		for _, which := range []string{"completed", "open"} {
			t.Run(which, func(t *testing.T) {
				f, tm := fixture(t)
				runID := map[string]string{"completed": f.completed, "open": f.open}[which]
				inc, err := f.st.Incident(ctx, "acme", f.incidentID)
				if err != nil {
					t.Fatal(err)
				}
				inc.ID, inc.RunID = "INC-forged", runID
				tm.InsertIncident(t, inc)
				wantIntegrity(t, failure(t, f.st, runID), runID, -1)
			})
		}
	})

	t.Run("SecondIncidentOfStoppedRun", func(t *testing.T) {
		f, tm := fixture(t)
		inc, _ := f.st.Incident(ctx, "acme", f.incidentID)
		inc.ID, inc.PolicyID, inc.Message = "INC-second", "step-limit", "another story"
		tm.InsertIncident(t, inc)
		err := failure(t, f.st, f.stopped)
		wantIntegrity(t, err, f.stopped, len(f.records[f.stopped])-2)
		if !strings.Contains(err.Error(), "INC-second") {
			t.Errorf("error does not name the second incident: %v", err)
		}
	})

	t.Run("IncidentOfRunThatDoesNotExist", func(t *testing.T) {
		f, tm := fixture(t)
		inc, _ := f.st.Incident(ctx, "acme", f.incidentID)
		inc.ID, inc.RunID = "INC-ghost", "RUN-ghost"
		tm.InsertIncident(t, inc)
		err := failure(t, f.st, "RUN-ghost")
		if !errors.Is(err, governance.ErrOrphan) || !strings.Contains(err.Error(), "INC-ghost") {
			t.Errorf("got %v, want an orphan incident", err)
		}
	})

	// One column beside one record, each in turn: the body and hashes are
	// untouched, so the chain verifies; the column does not.
	columns := []struct {
		name string
		run  func(f *auditFixture) string
		seq  func(f *auditFixture, runID string) int
		edit func(x *governance.RecordIndex)
	}{
		{"status", runOf("open"), func(*auditFixture, string) int { return 1 }, func(x *governance.RecordIndex) { x.Status = trace.StatusViolation }},
		{"policy_id", runOf("stopped"), inflectionSeq, func(x *governance.RecordIndex) { x.PolicyID = "step-limit" }},
		{"policy_id of run_end", runOf("stopped"), lastSeq, func(x *governance.RecordIndex) { x.PolicyID = "" }},
		{"inflection", runOf("stopped"), inflectionSeq, func(x *governance.RecordIndex) { x.Inflection = false }},
		{"inflection added", runOf("completed"), func(*auditFixture, string) int { return 1 }, func(x *governance.RecordIndex) { x.Inflection = true }},
		{"total_tokens of the last step of a running run", runOf("open"), lastSeq, func(x *governance.RecordIndex) { x.TotalTokens = 1 }},
		{"total_cost_cents", runOf("completed"), func(*auditFixture, string) int { return 2 }, func(x *governance.RecordIndex) { x.TotalCostCents = 0.5 }},
		{"time", runOf("completed"), func(*auditFixture, string) int { return 1 }, func(x *governance.RecordIndex) { x.At = x.At.Add(-time.Hour) }},
		{"kind", runOf("open"), lastSeq, func(x *governance.RecordIndex) { x.Kind = trace.KindRunEnd }},
		{"step_index", runOf("completed"), func(*auditFixture, string) int { return 2 }, func(x *governance.RecordIndex) { x.StepIndex = 7 }},
		{"seq of the last record", runOf("open"), lastSeq, func(x *governance.RecordIndex) { x.Seq += 10 }},
	}
	for _, col := range columns {
		t.Run("RecordColumn/"+col.name, func(t *testing.T) {
			f, tm := fixture(t)
			runID := col.run(f)
			seq := col.seq(f, runID)
			tm.EditRecordIndex(t, "acme", runID, seq, col.edit)
			wantIntegrity(t, failure(t, f.st, runID), runID, seq)
			_, err := governance.VerifyRun(ctx, f.st, "acme", runID)
			wantIntegrity(t, err, runID, seq)
		})
	}

	// A body that decodes to the very record its hash covers, spelled so
	// that a reader of the database reads something else.
	bodies := []struct {
		name string
		edit func(body []byte) []byte
	}{
		{"a forged first copy of a key", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"tool":"search"`), []byte(`"tool":"shell","tool":"search"`), 1)
		}},
		{"a key in another case", func(b []byte) []byte { return bytes.Replace(b, []byte(`"tool":`), []byte(`"TOOL":`), 1) }},
		{"other spacing", func(b []byte) []byte { return bytes.Replace(b, []byte(`,"tool":`), []byte(`, "tool": `), 1) }},
	}
	for _, bc := range bodies {
		t.Run("RecordBody/"+bc.name, func(t *testing.T) {
			f, tm := fixture(t)
			r := f.records[f.completed][2]
			body := bc.edit(trace.Encode(nil, &r))
			if d, err := trace.DecodeRecord(body, r.PrevHash, r.Hash); err != nil || !cmp.Equal(d, r) {
				t.Fatalf("the body must decode to the same record (fix the test): %v", err)
			}
			tm.SetBody(t, "acme", f.completed, 2, body)
			wantIntegrity(t, failure(t, f.st, f.completed), f.completed, 2)
		})
	}

	t.Run("ContentWhereNoStepIs", func(t *testing.T) {
		f, tm := fixture(t)
		tm.SetContent(t, "acme", f.completed, lastSeq(f, f.completed), trace.Content{Input: "what the run never said"})
		wantIntegrity(t, failure(t, f.st, f.completed), f.completed, -1)
	})

	t.Run("CheckpointRowOfAnotherRun", func(t *testing.T) {
		f, tm := fixture(t)
		// The completed run's last note stored as a checkpoint of the
		// running run, with columns that fit it; and globex's note of the
		// same run id as acme's completed run.
		cps := f.checkpoints[f.completed]
		c := cps[len(cps)-1]
		c.RunID, c.Size = f.open, 1
		tm.InsertCheckpoint(t, c)
		_, err := governance.VerifyRunCheckpoints(ctx, f.st, "acme", f.open, f.verifiers)
		var re *governance.CheckpointRunError
		if !errors.As(err, &re) || !errors.Is(err, governance.ErrCheckpointRun) || re.RunID != f.open || re.NoteRunID != f.completed {
			t.Errorf("another run's note among a run's checkpoints: got %v", err)
		}
		g := governance.Checkpoint{TenantID: "acme", RunID: f.completed, Size: 1, Head: f.records[f.completed][0].Hash, At: T0, KeyName: "storetest", Note: f.globexNote}
		tm.InsertCheckpoint(t, g)
		_, err = governance.VerifyRunCheckpoints(ctx, f.st, "acme", f.completed, f.verifiers)
		if !errors.As(err, &re) || re.NoteTenantID != "globex" || re.TenantID != "acme" {
			t.Errorf("another tenant's note among a run's checkpoints: got %v", err)
		}
	})
}

func runOf(which string) func(f *auditFixture) string {
	return func(f *auditFixture) string {
		return map[string]string{"stopped": f.stopped, "completed": f.completed, "open": f.open}[which]
	}
}

func inflectionSeq(f *auditFixture, runID string) int {
	inf, _ := trace.InflectionOf(f.records[runID])
	return inf.Seq
}

func lastSeq(f *auditFixture, runID string) int {
	return len(f.records[runID]) - 1
}

// wantIntegrity checks that err is an *IntegrityError of the run, naming
// record seq (-1: the run's row).
func wantIntegrity(t *testing.T, err error, runID string, seq int) {
	t.Helper()
	var ie *governance.IntegrityError
	if !errors.As(err, &ie) || !errors.Is(err, governance.ErrIntegrity) {
		t.Fatalf("got %v, want an IntegrityError", err)
	}
	if ie.RunID != runID || ie.TenantID != "acme" || ie.Seq != seq {
		t.Errorf("error names run %s (tenant %s) record %d, want run %s record %d: %v", ie.RunID, ie.TenantID, ie.Seq, runID, seq, err)
	}
}
