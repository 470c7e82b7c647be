package sqlite_test

import (
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/sqlite"
	"github.com/stopline/stopline/trace"
)

// The tamper suite: someone with write access to the database file edits
// it, with the append-only triggers dropped, by every kind of logical
// edit and by flipping raw bytes of the file. The promise checked is
// "detected, or the logical content is unchanged": either verification
// (governance.VerifyStore over the file, and the run's signed checkpoints,
// kept outside the database) reports a problem naming the run, or every
// run's decoded records and contents are exactly what was written.

// tamperFixture is a pristine database with three runs of tenant acme:
// one stopped by a policy (with its incident), one completed, one still
// running; a checkpoint was signed after every step and at every end, and
// the notes were kept outside the database.
type tamperFixture struct {
	path      string // pristine file; copy it before editing
	runs      map[string]string
	records   map[string][]trace.Record
	contents  map[string]map[int]trace.Content
	notes     map[string][]string // run id -> every checkpoint note, as kept outside
	verifiers note.Verifiers
}

func newTamperFixture(t *testing.T) *tamperFixture {
	t.Helper()
	f := &tamperFixture{path: filepath.Join(t.TempDir(), "pristine.db"), runs: map[string]string{},
		records: map[string][]trace.Record{}, contents: map[string]map[int]trace.Content{}, notes: map[string][]string{}}
	skey, vkey, err := governance.GenerateCheckpointKey("stopline-tamper")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	f.verifiers = note.VerifierList(v)

	s, err := sqlite.Open(ctx, f.path)
	if err != nil {
		t.Fatal(err)
	}
	clock := governance.NewFakeClock(t0)
	r, err := governance.NewRunner(s, governance.WithClock(clock), governance.WithCheckpoints(signer, 1))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Parse("p.json", []byte(crashPolicy), t0, prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	step := func(run *governance.Run, tool string, i int) error {
		clock.Advance(time.Second)
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: tool, Model: "gpt-x",
			Input: fmt.Sprintf(`{"q":"question %d"}`, i), Output: fmt.Sprintf("answer %d", i), Tokens: int64(10 + i), CostCents: 1.25,
			Metadata: map[string]string{"i": fmt.Sprint(i)}})
		return err
	}
	for _, name := range []string{"blocked", "completed", "open"} {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		f.runs[name] = run.ID()
		for i := 0; i < 3; i++ {
			if err := step(run, "search", i); err != nil {
				t.Fatal(err)
			}
		}
		switch name {
		case "blocked":
			var v *governance.Violation
			if err := step(run, "shell", 3); !errors.As(err, &v) {
				t.Fatal(err)
			}
		case "completed":
			if _, err := run.Finish(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, id := range f.runs {
		if f.records[id], err = s.Records(ctx, "acme", id); err != nil {
			t.Fatal(err)
		}
		if f.contents[id], err = s.Contents(ctx, "acme", id); err != nil {
			t.Fatal(err)
		}
		cps, err := s.Checkpoints(ctx, "acme", id)
		if err != nil || len(cps) == 0 {
			t.Fatalf("checkpoints of %s: %v %v", id, cps, err)
		}
		for _, c := range cps {
			f.notes[id] = append(f.notes[id], c.Note)
		}
	}
	if err := s.Close(); err != nil { // checkpoints the WAL into the file
		t.Fatal(err)
	}
	if _, err := os.Stat(f.path + "-wal"); err == nil {
		t.Fatal("the WAL survived Close: the pristine file is not self-contained")
	}
	return f
}

// copy returns a fresh copy of the pristine file.
func (f *tamperFixture) copy(t testing.TB) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "tampered.db")
	in, err := os.Open(f.path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	return dst
}

// verdict is what verification said about a file.
type verdict struct {
	openErr    error   // the file did not even open
	chain      []error // VerifyStore failures, and reads that failed
	checkpoint []error // checkpoints kept outside that no longer verify
	stored     []error // stored checkpoints that do not verify (VerifyRunCheckpoints)
}

func (v verdict) detected() bool {
	return v.openErr != nil || len(v.chain) > 0 || len(v.checkpoint) > 0 || len(v.stored) > 0
}

func (v verdict) String() string {
	return fmt.Sprintf("open: %v; chain and store: %v; checkpoints kept outside: %v; stored checkpoints: %v", v.openErr, v.chain, v.checkpoint, v.stored)
}

// verify opens path and runs every verifier an auditor has: VerifyStore
// over the file, a read of every run the auditor knows of (from the
// checkpoints kept outside), every kept checkpoint, and the checkpoints
// stored with every run (with the trusted key). It returns the
// verdict, and the decoded records and contents of every run it could
// read, for comparison with the originals.
func (f *tamperFixture) verify(t testing.TB, path string) (verdict, map[string][]trace.Record, map[string]map[int]trace.Content) {
	t.Helper()
	var v verdict
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		v.openErr = err
		return v, nil, nil
	}
	defer s.Close()
	rep, err := governance.VerifyStore(ctx, s, nil)
	if err != nil {
		v.chain = append(v.chain, err)
	}
	v.chain = append(v.chain, rep.Failures...)
	recs := map[string][]trace.Record{}
	conts := map[string]map[int]trace.Content{}
	for _, id := range f.runs {
		if _, err := governance.VerifyRun(ctx, s, "acme", id); err != nil && rep.Failures == nil {
			v.chain = append(v.chain, err) // a run VerifyStore no longer lists
		}
		r, err := s.Records(ctx, "acme", id)
		if err != nil {
			v.chain = append(v.chain, err)
		}
		c, err := s.Contents(ctx, "acme", id)
		if err != nil {
			v.chain = append(v.chain, err)
		}
		recs[id], conts[id] = r, c
		for _, n := range f.notes[id] {
			if _, err := governance.VerifyCheckpoint(ctx, s, []byte(n), f.verifiers); err != nil {
				v.checkpoint = append(v.checkpoint, err)
			}
		}
	}
	runs, err := s.Runs(ctx, governance.RunFilter{TenantID: "acme"})
	if err != nil {
		v.chain = append(v.chain, err)
	}
	for _, r := range runs {
		if _, err := governance.VerifyRunCheckpoints(ctx, s, "acme", r.RunID, f.verifiers); err != nil {
			v.stored = append(v.stored, err)
		}
	}
	return v, recs, conts
}

// unchanged reports how the records and contents read differ from the
// originals ("" when they do not).
func (f *tamperFixture) unchanged(recs map[string][]trace.Record, conts map[string]map[int]trace.Content) string {
	if d := cmp.Diff(f.records, recs); d != "" {
		return "records differ (-original +read):\n" + d
	}
	if d := cmp.Diff(f.contents, conts); d != "" {
		return "contents differ (-original +read):\n" + d
	}
	return ""
}

// tamperDB opens path with plain SQL, the triggers dropped as an attacker
// who can write the file would.
func tamperDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	rows, err := db.Query(`SELECT name FROM sqlite_master WHERE type = 'trigger'`)
	if err != nil {
		t.Fatal(err)
	}
	var triggers []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		triggers = append(triggers, n)
	}
	rows.Close()
	if len(triggers) == 0 {
		t.Fatal("no triggers to drop")
	}
	for _, n := range triggers {
		if _, err := db.Exec(`DROP TRIGGER ` + n); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	res, err := db.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		t.Fatalf("%s: changed nothing", q)
	}
}

// rawRecords reads a run's records straight from the file.
func rawRecords(t testing.TB, db *sql.DB, runID string) []trace.Record {
	t.Helper()
	rows, err := db.Query(`SELECT body, prev_hash, hash FROM records WHERE run_id = ? ORDER BY seq`, runID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []trace.Record
	for rows.Next() {
		var (
			body       []byte
			prev, hash string
		)
		if err := rows.Scan(&body, &prev, &hash); err != nil {
			t.Fatal(err)
		}
		r, err := trace.DecodeRecord(body, prev, hash)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// rewrite stores records as the run's chain from seq from on, resealing
// every one after prev (the attacker recomputes the hashes), and returns
// the new head.
func rewrite(t testing.TB, db *sql.DB, recs []trace.Record, from int) string {
	t.Helper()
	prev := trace.GenesisHash
	if from > 0 {
		prev = recs[from-1].Hash
	}
	for i := from; i < len(recs); i++ {
		body := trace.Seal(&recs[i], prev, nil)
		prev = recs[i].Hash
		mustExec(t, db, `UPDATE records SET body = ?, prev_hash = ?, hash = ?, total_tokens = ? WHERE run_id = ? AND seq = ?`,
			body, recs[i].PrevHash, recs[i].Hash, recs[i].TotalTokens, recs[i].RunID, recs[i].Seq)
	}
	return prev
}

// TestTamperLogicalEdits makes every kind of logical edit, each on a fresh
// copy of the fixture, and checks each is detected by the verifier that
// should catch it: the chain (trace.ErrChainBroken), the run's stored
// facts (governance.ErrIntegrity, snapshot.ErrHashMismatch), or, where an
// attacker recomputed hashes so that the chain alone verifies, the signed
// checkpoints kept outside the database (ErrCheckpointMismatch).
func TestTamperLogicalEdits(t *testing.T) {
	f := newTamperFixture(t)
	blocked, completed, open := f.runs["blocked"], f.runs["completed"], f.runs["open"]
	const (
		byChain      = "chain"
		byIntegrity  = "integrity"
		byCheckpoint = "checkpoint"
		byStored     = "stored checkpoints" // only the checkpoints stored with the run, verified with the trusted key
	)
	tests := []struct {
		name string
		by   string // the first verifier that must catch it
		edit func(t *testing.T, db *sql.DB)
	}{
		{"update a step's tokens in its body", byChain, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '"tokens":11', '"tokens":1') AS BLOB) WHERE run_id = ? AND seq = 2`, completed)
		}},
		{"update a step and recompute its own hash", byChain, func(t *testing.T, db *sql.DB) {
			recs := rawRecords(t, db, completed)
			recs[2].Tokens = 1
			body := trace.Seal(&recs[2], recs[1].Hash, nil)
			mustExec(t, db, `UPDATE records SET body = ?, hash = ? WHERE run_id = ? AND seq = 2`, body, recs[2].Hash, completed)
		}},
		{"update the blocking decision to allow", byChain, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '"action":"block"', '"action":"allow"') AS BLOB) WHERE run_id = ? AND inflection = 1`, blocked)
		}},
		{"update a step's type", byChain, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '"step_type":"tool_call"', '"step_type":"message"') AS BLOB) WHERE run_id = ? AND seq = 1`, blocked)
		}},
		{"change the facts an incident states (threshold, limit, observed, message)", byIntegrity, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE incidents SET threshold = 'max_steps', limit_value = 1000, observed = 1, message = 'nothing happened' WHERE run_id = ?`, blocked)
		}},
		{"update a step's content", byIntegrity, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET content = replace(content, 'answer 1', 'answer X') WHERE run_id = ? AND seq = 2`, completed)
		}},
		{"delete a middle record", byChain, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM records WHERE run_id = ? AND seq = 2`, completed)
		}},
		{"delete a middle record and renumber the rest", byChain, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM records WHERE run_id = ? AND seq = 2`, completed)
			mustExec(t, db, `UPDATE records SET seq = seq - 1 WHERE run_id = ? AND seq > 2`, completed)
		}},
		{"reorder two steps", byChain, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET seq = seq + 100 WHERE run_id = ? AND seq IN (1, 2)`, completed)
			mustExec(t, db, `UPDATE records SET seq = CASE seq WHEN 101 THEN 2 ELSE 1 END WHERE run_id = ? AND seq IN (101, 102)`, completed)
		}},
		{"truncate the tail of an ended run", byIntegrity, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM records WHERE run_id = ? AND kind = 'run_end'`, completed)
		}},
		{"truncate the tail of an ended run and reopen it", byCheckpoint, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM records WHERE run_id = ? AND seq >= 3`, completed)
			mustExec(t, db, `UPDATE runs SET status = 'running', termination_reason = '', ended_at = NULL, head_hash = '', chain_length = 0 WHERE run_id = ?`, completed)
		}},
		{"truncate the tail of a running run", byCheckpoint, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `DELETE FROM records WHERE run_id = ? AND seq = 3`, open)
		}},
		{"truncate a stop: delete the inflection, end and incident, reopen", byCheckpoint, func(t *testing.T, db *sql.DB) {
			eraseStop(t, db, blocked)
		}},
		{"insert a forged record after run_end", byChain, func(t *testing.T, db *sql.DB) {
			recs := rawRecords(t, db, completed)
			forged := recs[1]
			forged.Seq = len(recs)
			body := trace.Seal(&forged, recs[len(recs)-1].Hash, nil)
			mustExec(t, db, `INSERT INTO records SELECT tenant_id, run_id, ?, kind, step_index, at_ns, status, inflection, policy_id, total_tokens, total_cost_cents, ?, ?, ?, content FROM records WHERE run_id = ? AND seq = 1`,
				forged.Seq, body, forged.PrevHash, forged.Hash, completed)
		}},
		{"insert a forged step in the middle, chained, and shift the rest", byChain, func(t *testing.T, db *sql.DB) {
			recs := rawRecords(t, db, completed)
			forged := recs[2]
			forged.Seq = 3
			forged.StepIndex = 2
			trace.Seal(&forged, recs[2].Hash, nil)
			mustExec(t, db, `UPDATE records SET seq = seq + 100 WHERE run_id = ? AND seq >= 3`, completed)
			mustExec(t, db, `UPDATE records SET seq = seq - 99 WHERE run_id = ? AND seq >= 100`, completed)
			mustExec(t, db, `INSERT INTO records SELECT tenant_id, run_id, 3, kind, step_index, at_ns, status, inflection, policy_id, total_tokens, total_cost_cents, ?, ?, ?, NULL FROM records WHERE run_id = ? AND seq = 2`,
				trace.Encode(nil, &forged), forged.PrevHash, forged.Hash, completed)
		}},
		{"move a record to another run", byChain, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET run_id = ?, seq = 100 WHERE run_id = ? AND seq = 2`, open, completed)
		}},
		{"change an ended run's outcome in its row", byIntegrity, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE runs SET status = 'succeeded', termination_reason = 'completed' WHERE run_id = ?`, blocked)
		}},
		{"change the incident's policy", byIntegrity, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE incidents SET policy_id = 'steps' WHERE run_id = ?`, blocked)
		}},
		{"raise a threshold in the stored snapshot", byIntegrity, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE snapshots SET thresholds = replace(thresholds, '1000', '5000')`)
		}},
		{"recompute the whole chain of a completed run", byCheckpoint, func(t *testing.T, db *sql.DB) {
			recs := rawRecords(t, db, completed)
			recs[2].Tokens, recs[2].TotalTokens = 1, recs[2].TotalTokens-10
			head := rewrite(t, db, recs, 0)
			mustExec(t, db, `UPDATE runs SET head_hash = ? WHERE run_id = ?`, head, completed)
		}},
		{"recompute the whole chain of a stopped run, incident included", byCheckpoint, func(t *testing.T, db *sql.DB) {
			recs := rawRecords(t, db, blocked)
			for i := range recs {
				if recs[i].Inflection {
					recs[i].Decision.Message = "all fine"
					recs[i].Findings[0].Message = "all fine"
				}
			}
			head := rewrite(t, db, recs, 0)
			mustExec(t, db, `UPDATE runs SET head_hash = ? WHERE run_id = ?`, head, blocked)
			mustExec(t, db, `UPDATE incidents SET record_hash = ? WHERE run_id = ?`, recs[4].Hash, blocked)
		}},
		{"recompute the chain of a running run from a step on", byCheckpoint, func(t *testing.T, db *sql.DB) {
			recs := rawRecords(t, db, open)
			recs[3].Model = "other-model"
			rewrite(t, db, recs, 3)
		}},
		{"erase a stop and store another run's notes as its checkpoints", byStored, func(t *testing.T, db *sql.DB) {
			eraseStop(t, db, blocked)
			mustExec(t, db, `DELETE FROM checkpoints WHERE run_id = ?`, blocked)
			mustExec(t, db, `INSERT INTO checkpoints SELECT tenant_id, ?, size, key_name, head_hash, at_ns, note FROM checkpoints WHERE run_id = ?`, blocked, completed)
		}},
		{"store another run's note as a run's checkpoint, its columns made to fit", byStored, func(t *testing.T, db *sql.DB) {
			// The completed run's note of size 2 in place of the open run's
			// own: size and key as the row had them, the head the other's.
			mustExec(t, db, `UPDATE checkpoints SET note = (SELECT note FROM checkpoints WHERE run_id = ? AND size = 2),
				head_hash = (SELECT head_hash FROM checkpoints WHERE run_id = ? AND size = 2) WHERE run_id = ? AND size = 2`, completed, completed, open)
		}},
		{"change a stored checkpoint's size and head columns", byStored, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE checkpoints SET size = 100 WHERE run_id = ? AND size = 2`, open)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := f.copy(t)
			db := tamperDB(t, path)
			tc.edit(t, db)
			db.Close()
			v, recs, conts := f.verify(t, path)
			if !v.detected() {
				diff := f.unchanged(recs, conts)
				if diff == "" {
					t.Fatal("the edit changed nothing: fix the test")
				}
				t.Fatalf("undetected edit:\n%s", diff)
			}
			switch tc.by {
			case byChain:
				if !anyIs(v.chain, trace.ErrChainBroken) {
					t.Errorf("want a chain error; got %v", v)
				}
			case byIntegrity:
				if !anyIs(v.chain, governance.ErrIntegrity) && !anyIs(v.chain, snapshot.ErrHashMismatch) {
					t.Errorf("want an integrity error; got %v", v)
				}
			case byCheckpoint:
				if len(v.chain) > 0 {
					t.Logf("(also caught without checkpoints: %v)", v.chain)
				}
				if !anyIs(v.checkpoint, governance.ErrCheckpointMismatch) {
					t.Errorf("want a checkpoint mismatch; got %v", v)
				}
			case byStored:
				if len(v.chain) > 0 {
					t.Logf("(also caught without checkpoints: %v)", v.chain)
				}
				if !anyIs(v.stored, governance.ErrCheckpointMismatch) {
					t.Errorf("want a stored checkpoint refused; got %v", v)
				}
			}
			// Every error names the run it is about.
			for _, err := range append(append(append([]error{}, v.chain...), v.checkpoint...), v.stored...) {
				named := false
				for _, id := range f.runs {
					named = named || strings.Contains(err.Error(), id)
				}
				if !named {
					t.Errorf("error names no run: %v", err)
				}
			}
		})
	}
}

// eraseStop deletes a stopped run's inflection record, run_end and
// incident, and reopens the run, consistently: the chain that is left
// verifies.
func eraseStop(t testing.TB, db *sql.DB, runID string) {
	t.Helper()
	mustExec(t, db, `DELETE FROM records WHERE run_id = ? AND seq >= 4`, runID)
	mustExec(t, db, `DELETE FROM incidents WHERE run_id = ?`, runID)
	mustExec(t, db, `UPDATE runs SET status = 'running', termination_reason = '', stopped_at_step = NULL, violation_policy_id = '', incident_id = '',
		ended_at = NULL, head_hash = '', chain_length = 0, step_count = 0, total_tokens = 0, total_cost_cents = 0 WHERE run_id = ?`, runID)
}

func anyIs(errs []error, target error) bool {
	for _, err := range errs {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

// TestTamperLimits pins down, so that GUARANTEES.md stays true, the edits
// that verification does NOT detect: a forged record appended to a run
// that is still running, after its last checkpoint (the live runner
// refuses to go on, but a verifier cannot tell); a whole run deleted
// together with its stored checkpoints; and a rewrite whose stored
// checkpoints were deleted too, when the verifier relies on the stored
// checkpoints instead of notes kept outside the database.
func TestTamperLimits(t *testing.T) {
	f := newTamperFixture(t)
	completed, open := f.runs["completed"], f.runs["open"]

	t.Run("append to a running run", func(t *testing.T) {
		path := f.copy(t)
		db := tamperDB(t, path)
		recs := rawRecords(t, db, open)
		forged := recs[len(recs)-1]
		forged.Seq++
		forged.StepIndex++
		forged.ContentHash = ""
		body := trace.Seal(&forged, recs[len(recs)-1].Hash, nil)
		mustExec(t, db, `INSERT INTO records SELECT tenant_id, run_id, ?, kind, step_index + 1, at_ns, status, inflection, policy_id, total_tokens, total_cost_cents, ?, ?, ?, NULL FROM records WHERE run_id = ? AND seq = ?`,
			forged.Seq, body, forged.PrevHash, forged.Hash, open, forged.Seq-1)
		db.Close()
		if v, _, _ := f.verify(t, path); v.detected() {
			t.Fatalf("now detected (update GUARANTEES.md): %v", v)
		}
	})

	t.Run("append to a running run is refused by its live runner", func(t *testing.T) {
		// The run's own process keeps going: its next step does not
		// extend the chain the forger extended, so it is not recorded,
		// and the run fails closed.
		path := dbPath(t)
		s := openStore(t, path)
		r, err := governance.NewRunner(s)
		if err != nil {
			t.Fatal(err)
		}
		snap, _ := snapshot.Parse("p.json", []byte(crashPolicy), t0, prevention.Builtin())
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		in := governance.StepInput{Type: prevention.StepToolCall, Tool: "search"}
		if _, err := run.Step(ctx, in); err != nil {
			t.Fatal(err)
		}
		db := tamperDB(t, path)
		recs := rawRecords(t, db, run.ID())
		forged := recs[len(recs)-1]
		forged.Seq++
		forged.StepIndex++
		body := trace.Seal(&forged, recs[len(recs)-1].Hash, nil)
		mustExec(t, db, `INSERT INTO records SELECT tenant_id, run_id, ?, kind, step_index + 1, at_ns, status, inflection, policy_id, total_tokens, total_cost_cents, ?, ?, ?, NULL FROM records WHERE run_id = ? AND seq = ?`,
			forged.Seq, body, forged.PrevHash, forged.Hash, run.ID(), forged.Seq-1)
		db.Close()
		if _, err := run.Step(ctx, in); !errors.Is(err, governance.ErrRecordFailed) || !errors.Is(err, governance.ErrChainConflict) {
			t.Fatalf("the live runner's next step: %v, want ErrRecordFailed and ErrChainConflict", err)
		}
		if _, err := run.Step(ctx, in); !errors.Is(err, governance.ErrRunStopped) {
			t.Errorf("after that: %v", err)
		}
	})

	t.Run("delete a whole run with its checkpoints", func(t *testing.T) {
		path := f.copy(t)
		db := tamperDB(t, path)
		mustExec(t, db, `DELETE FROM checkpoints WHERE run_id = ?`, completed)
		mustExec(t, db, `DELETE FROM records WHERE run_id = ?`, completed)
		mustExec(t, db, `DELETE FROM runs WHERE run_id = ?`, completed)
		db.Close()
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		rep, err := governance.VerifyStore(ctx, s, nil)
		if err != nil || len(rep.Failures) > 0 || rep.Runs != 2 {
			t.Fatalf("now detected by VerifyStore (update GUARANTEES.md): %+v %v", rep, err)
		}
		// Only a checkpoint note kept outside the database tells.
		notes := f.notes[completed]
		if _, err := governance.VerifyCheckpoint(ctx, s, []byte(notes[len(notes)-1]), f.verifiers); !errors.Is(err, governance.ErrNotFound) {
			t.Errorf("the kept note of the deleted run: got %v, want ErrNotFound", err)
		}
	})

	t.Run("rewrite and delete the stored checkpoints", func(t *testing.T) {
		path := f.copy(t)
		db := tamperDB(t, path)
		recs := rawRecords(t, db, completed)
		recs[1].Tool = "other"
		head := rewrite(t, db, recs, 0)
		mustExec(t, db, `UPDATE runs SET head_hash = ? WHERE run_id = ?`, head, completed)
		mustExec(t, db, `DELETE FROM checkpoints WHERE run_id = ?`, completed)
		db.Close()
		s, err := sqlite.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if n, err := governance.VerifyRunCheckpoints(ctx, s, "acme", completed, f.verifiers); err != nil || n != 0 {
			t.Fatalf("stored checkpoints: %d %v", n, err)
		}
		if _, err := governance.VerifyRun(ctx, s, "acme", completed); err != nil {
			t.Fatalf("now detected without checkpoints (update GUARANTEES.md): %v", err)
		}
		// The notes kept outside catch it.
		if v, _, _ := f.verify(t, path); !anyIs(v.checkpoint, governance.ErrCheckpointMismatch) {
			t.Errorf("kept notes: %v", v)
		}
	})
}

// TestTamperByteFlips flips random bits of the database FILE (half of
// them near stored record bodies, hashes and contents, the rest anywhere),
// reopens it, and checks "detected, or the logical content is unchanged".
// CI flips in 150 copies; STOPLINE_LONG=1 in 2,000.
func TestTamperByteFlips(t *testing.T) {
	f := newTamperFixture(t)
	pristine, err := os.ReadFile(f.path)
	if err != nil {
		t.Fatal(err)
	}
	// Offsets of stored record bodies, to aim half of the flips at.
	var targets []int
	for _, pat := range [][]byte{[]byte(`{"at":"`), []byte(`"tenant_id":"acme"`), []byte(`{"input":`)} {
		for off := 0; ; {
			i := bytes.Index(pristine[off:], pat)
			if i < 0 {
				break
			}
			targets = append(targets, off+i)
			off += i + 1
		}
	}
	if len(targets) < 10 {
		t.Fatalf("found only %d record bodies in the file", len(targets))
	}
	trials := 150
	if long() {
		trials = 2000
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 5))
	t.Logf("seed %d, %d bytes, %d record bodies", seed, len(pristine), len(targets))
	var openFailed, detected, unchanged int
	dir := t.TempDir()
	for trial := 0; trial < trials; trial++ {
		data := bytes.Clone(pristine)
		var flips []string
		for n := 1 + rng.IntN(3); n > 0; n-- {
			var off int
			if rng.IntN(2) == 0 {
				off = targets[rng.IntN(len(targets))] + rng.IntN(700)
			} else {
				off = rng.IntN(len(data))
			}
			off = min(off, len(data)-1)
			bit := byte(1) << rng.IntN(8)
			data[off] ^= bit
			flips = append(flips, fmt.Sprintf("byte %d (page %d) ^ %#02x", off, off/4096+1, bit))
		}
		path := filepath.Join(dir, fmt.Sprintf("flip-%04d.db", trial))
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		v, recs, conts := f.verify(t, path)
		switch {
		case v.openErr != nil:
			openFailed++
		case v.detected():
			detected++
		default:
			if diff := f.unchanged(recs, conts); diff != "" {
				t.Errorf("trial %d (%s): undetected change:\n%s", trial, strings.Join(flips, ", "), diff)
			}
			unchanged++
		}
		os.Remove(path)
	}
	t.Logf("%d files with flipped bits: %d refused to open, %d detected by verification, %d unchanged in content",
		trials, openFailed, detected, unchanged)
}

// TestTamperDeepJSON stores JSON nested far too deep where the store
// decodes JSON (a step's content, a run's labels, a record body) and
// checks every read refuses it with an error, and verification reports
// it, without exhausting the stack.
func TestTamperDeepJSON(t *testing.T) {
	f := newTamperFixture(t)
	completed := f.runs["completed"]
	deep := strings.Repeat(`{"a":`, 200_000) + "1" + strings.Repeat("}", 200_000)
	for _, tc := range []struct{ name, sql string }{
		{"content", `UPDATE records SET content = ? WHERE run_id = ? AND seq = 1`},
		{"labels", `UPDATE runs SET labels = ? WHERE run_id = ?`},
		{"record body", `UPDATE records SET body = CAST(? AS BLOB) WHERE run_id = ? AND seq = 2`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := f.copy(t)
			db := tamperDB(t, path)
			mustExec(t, db, tc.sql, deep, completed)
			db.Close()
			v, _, _ := f.verify(t, path)
			if !v.detected() {
				t.Errorf("deeply nested %s not reported: %v", tc.name, v)
			}
		})
	}
}

// TestTamperColumnEdits edits, with the triggers dropped, only what the
// store keeps BESIDE the hashed bodies — a column of a record that the
// store queries by, a run row's totals, a row of another table — or a
// body's spelling but not what it decodes to, so that every chain still
// verifies. Each edit is reported by VerifyStore (and
// VerifyRun), naming the run and the record (seq -1: the run's row).
func TestTamperColumnEdits(t *testing.T) {
	f := newTamperFixture(t)
	blocked, completed, open := f.runs["blocked"], f.runs["completed"], f.runs["open"]
	tests := []struct {
		name string
		run  string
		seq  int // the record the error must name; -1 the run's row
		edit func(t *testing.T, db *sql.DB)
	}{
		{"a step's status column", completed, 2, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET status = 'violation' WHERE run_id = ? AND seq = 2`, completed)
		}},
		{"the inflection's policy_id column", blocked, 4, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET policy_id = 'steps' WHERE run_id = ? AND seq = 4`, blocked)
		}},
		{"the inflection column moved to an earlier step", blocked, 3, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET inflection = 0 WHERE run_id = ? AND seq = 4`, blocked)
			mustExec(t, db, `UPDATE records SET inflection = 1 WHERE run_id = ? AND seq = 3`, blocked)
		}},
		{"the total_tokens column of a running run's last step (its row's totals)", open, 3, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET total_tokens = 1, total_cost_cents = 0 WHERE run_id = ? AND seq = 3`, open)
		}},
		{"a record's time column", completed, 1, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET at_ns = at_ns - 3600000000000 WHERE run_id = ? AND seq = 1`, completed)
		}},
		{"a running run's last step made its run_end by its kind column", open, 3, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET kind = 'run_end' WHERE run_id = ? AND seq = 3`, open)
		}},
		{"step_index columns swapped (contents change steps)", completed, 1, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET step_index = CASE seq WHEN 1 THEN 1 ELSE 0 END WHERE run_id = ? AND seq IN (1, 2)`, completed)
		}},
		{"the seq column of a running run's last record", open, 3, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET seq = 9 WHERE run_id = ? AND seq = 3`, open)
		}},
		{"an ended run's step_count, totals and chain_length", completed, -1, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE runs SET step_count = 2, total_tokens = 21, total_cost_cents = 2.5, chain_length = 4 WHERE run_id = ?`, completed)
		}},
		{"a body key in another case (the record decodes the same)", completed, 2, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '"tool":', '"TOOL":') AS BLOB) WHERE run_id = ? AND seq = 2`, completed)
		}},
		{"a forged first copy of a key in a body (the record decodes the same)", blocked, 4, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '"tool":"shell"', '"tool":"search","tool":"shell"') AS BLOB) WHERE run_id = ? AND seq = 4`, blocked)
		}},
		{"an ended run's ended_at", completed, 4, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE runs SET ended_at = ended_at + 1 WHERE run_id = ?`, completed)
		}},
		{"a running run's row stating a stop", open, -1, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE runs SET termination_reason = 'policy_block', stopped_at_step = 1, violation_policy_id = 'tools' WHERE run_id = ?`, open)
		}},
		{"a run's created_at", completed, 0, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE runs SET created_at = created_at - 86400000000000 WHERE run_id = ?`, completed)
		}},
		{"a running run with steps made queued", open, -1, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE runs SET status = 'queued' WHERE run_id = ?`, open)
		}},
		{"a policy version that never published the run's snapshot", completed, -1, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE runs SET policy_version = 7 WHERE run_id = ?`, completed)
		}},
		{"the incident's trace_id and created_at", blocked, 4, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE incidents SET trace_id = 'TRC-other', created_at = created_at + 1 WHERE run_id = ?`, blocked)
		}},
		{"content stored on a run_end record", completed, -1, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `UPDATE records SET content = '{"input":"never said"}' WHERE run_id = ? AND kind = 'run_end'`, completed)
		}},
		{"an incident added to a run that never stopped", completed, -1, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `INSERT INTO incidents SELECT tenant_id, 'INC-forged', ?, trace_id, snapshot_id, policy_id, source, step_index, record_hash,
				reason, threshold, limit_value, observed, severity, title, message, created_at, status, acknowledged_at, acknowledged_by,
				resolved_at, resolved_by, resolution FROM incidents WHERE run_id = ?`, completed, blocked)
		}},
		{"a second incident of a stopped run", blocked, 4, func(t *testing.T, db *sql.DB) {
			mustExec(t, db, `INSERT INTO incidents SELECT tenant_id, 'INC-second', run_id, trace_id, snapshot_id, 'steps', source, step_index, record_hash,
				reason, threshold, limit_value, observed, severity, title, 'another story', created_at, status, acknowledged_at, acknowledged_by,
				resolved_at, resolved_by, resolution FROM incidents WHERE run_id = ?`, blocked)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := f.copy(t)
			db := tamperDB(t, path)
			tc.edit(t, db)
			db.Close()
			s := openStore(t, path)
			// Every chain still verifies: only the columns changed.
			recs, err := s.Records(ctx, "acme", tc.run)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := trace.Verify(recs); err != nil {
				t.Fatalf("the edit broke the chain, fix the test: %v", err)
			}
			rep, err := governance.VerifyStore(ctx, s, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Failures) != 1 {
				t.Fatalf("VerifyStore: want one failure, got %v", rep.Failures)
			}
			for _, err := range []error{rep.Failures[0], second(governance.VerifyRun(ctx, s, "acme", tc.run))} {
				var ie *governance.IntegrityError
				if !errors.As(err, &ie) || !errors.Is(err, governance.ErrIntegrity) {
					t.Fatalf("got %v, want an IntegrityError", err)
				}
				if ie.RunID != tc.run || ie.TenantID != "acme" || ie.Seq != tc.seq || !strings.Contains(err.Error(), tc.run) {
					t.Errorf("error names run %s record %d, want run %s record %d: %v", ie.RunID, ie.Seq, tc.run, tc.seq, err)
				}
			}
		})
	}

	t.Run("the run's row deleted, its records, checkpoints and incident left", func(t *testing.T) {
		path := f.copy(t)
		db := tamperDB(t, path)
		mustExec(t, db, `DELETE FROM runs WHERE run_id = ?`, blocked)
		db.Close()
		s := openStore(t, path)
		rep, err := governance.VerifyStore(ctx, s, nil)
		if err != nil || len(rep.Failures) != 1 || rep.Runs != 2 {
			t.Fatalf("VerifyStore: %+v %v", rep, err)
		}
		var oe *governance.OrphanError
		if err := rep.Failures[0]; !errors.As(err, &oe) || !errors.Is(err, governance.ErrOrphan) || oe.RunID != blocked ||
			!strings.Contains(err.Error(), blocked) {
			t.Fatalf("got %v, want an OrphanError naming run %s", err, blocked)
		}
		kinds := map[governance.OrphanKind]int{}
		for _, o := range oe.Rows {
			kinds[o.Kind]++
		}
		if kinds[governance.OrphanRecord] != 6 || kinds[governance.OrphanContent] != 4 || kinds[governance.OrphanIncident] != 1 ||
			kinds[governance.OrphanCheckpoint] != len(f.notes[blocked]) || rep.Orphans != len(oe.Rows) {
			t.Errorf("orphans: %v (report: %d)", kinds, rep.Orphans)
		}
		// The checkpoints kept outside: the run is gone.
		notes := f.notes[blocked]
		if _, err := governance.VerifyCheckpoint(ctx, s, []byte(notes[len(notes)-1]), f.verifiers); !errors.Is(err, governance.ErrNotFound) {
			t.Errorf("kept note of the run: got %v, want ErrNotFound", err)
		}
	})
}
