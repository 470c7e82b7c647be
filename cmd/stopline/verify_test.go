package main_test

import (
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/mattn/go-sqlite3"

	"github.com/stopline/stopline/trace"
)

type verifyResult struct {
	OK          bool `json:"ok"`
	Tenants     int  `json:"tenants"`
	Runs        int  `json:"runs"`
	Records     int  `json:"records"`
	Checkpoints int  `json:"checkpoints"`
	Failures    []struct {
		TenantID string `json:"tenant_id"`
		RunID    string `json:"run_id"`
		Seq      *int   `json:"seq"`
		Error    string `json:"error"`
	} `json:"failures"`
}

// tamper opens the database as an attacker would, drops the append-only
// trigger, and runs the statement.
func tamper(t *testing.T, path, stmt string, args ...any) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DROP TRIGGER IF EXISTS records_no_update`); err != nil {
		t.Fatal(err)
	}
	res, err := db.Exec(stmt, args...)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		t.Fatalf("tampering changed %d rows, want 1", n)
	}
}

func TestVerifyTamperedDatabase(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	victim := c.runSteps("budget_tokens", "budget_tokens")
	other := c.runSteps("budget_steps", "budget_steps")
	if out := c.ok("verify"); !strings.Contains(out, "2 runs (11 records) of 1 tenant verified") {
		t.Errorf("verify before tampering: %q", out)
	}

	// One byte of the body of record 2 (step 1): its tokens 400 become 500.
	tamper(t, c.db, `UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '"tokens":400', '"tokens":500') AS BLOB)
		WHERE run_id = ? AND seq = 2`, victim.RunID)

	r := c.fails(1, []string{victim.RunID, "record 2"}, "verify", victim.RunID)
	if r.stdout != "" {
		t.Errorf("stdout %q on failure", r.stdout)
	}
	c.ok("verify", other.RunID)

	// The whole store: one line per failed run, then a summary line.
	r = c.run("verify")
	if r.code != 1 {
		t.Fatalf("verify: exit %d, want 1\n%s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], victim.RunID) || !strings.Contains(lines[0], "record 2") ||
		!strings.Contains(lines[1], "1 of 2 runs failed") {
		t.Errorf("verify stderr:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, other.RunID) {
		t.Errorf("the untouched run is reported:\n%s", r.stderr)
	}

	r = c.run("verify", "--json")
	var res verifyResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 1 {
		t.Fatalf("verify --json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if res.OK || res.Runs != 2 || len(res.Failures) != 1 || res.Failures[0].RunID != victim.RunID ||
		res.Failures[0].Seq == nil || *res.Failures[0].Seq != 2 || res.Failures[0].TenantID != "acme" {
		t.Errorf("verify --json: %+v", res)
	}

	// One tenant's runs.
	if r := c.run("verify", "--tenant", "acme"); r.code != 1 || !strings.Contains(r.stderr, victim.RunID+": record 2") ||
		!strings.Contains(r.stderr, "1 of 2 runs failed") {
		t.Errorf("verify --tenant acme: exit %d\n%s", r.code, r.stderr)
	}
	if out := c.ok("verify", "--tenant", "nobody"); !strings.Contains(out, "0 runs") {
		t.Errorf("verify --tenant nobody: %q", out)
	}

	// Nothing is explained from altered records.
	c.fails(1, []string{victim.RunID, "record 2"}, "explain", victim.RunID, "--at", "+0")
}

// TestVerifyCheckpoint: a writer who rewrites a record and recomputes the
// whole chain passes verify, but not the signed checkpoint.
func TestVerifyCheckpoint(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	key := filepath.Join(c.dir, "cp.key")
	c.ok("keygen", "-o", key, "--checkpoint", "test-key")
	res := c.runSteps("budget_steps", "budget_steps")
	note := filepath.Join(c.dir, "run.checkpoint")
	out := c.ok("checkpoint", res.RunID, "--key", key, "-o", note)
	if !strings.Contains(out, res.RunID) || !strings.Contains(out, "6 records") {
		t.Errorf("checkpoint output:\n%s", out)
	}
	data, err := os.ReadFile(note)
	if err != nil || !strings.HasPrefix(string(data), "stopline/run-checkpoint/v1\nacme\n"+res.RunID+"\n6\n") {
		t.Fatalf("checkpoint note: %v\n%s", err, data)
	}
	// Again: the stored checkpoint, not a conflicting second one.
	if again := c.ok("checkpoint", res.RunID, "--key", key); again != string(data) {
		t.Errorf("second checkpoint:\n%s\nwant the first:\n%s", again, data)
	}
	var v verifyResult
	c.okJSON(&v, "verify", "--checkpoint", note, "--checkpoint-key", key+".pub")
	if !v.OK || v.Checkpoints != 1 || v.Records != 6 {
		t.Errorf("verify --checkpoint: %+v", v)
	}
	c.okJSON(&v, "verify", "--checkpoint-key", key+".pub")
	if !v.OK || v.Checkpoints != 1 {
		t.Errorf("verify --checkpoint-key: %+v", v)
	}
	// A run checkpointed by the runner as it ends.
	c.ok("run", "--policies", policyFile("timeout"), "--steps", stepsFile("timeout"), "--checkpoint-key", key)
	c.okJSON(&v, "verify", "--checkpoint-key", key+".pub")
	if !v.OK || v.Checkpoints != 2 || v.Runs != 2 {
		t.Errorf("verify --checkpoint-key after a checkpointed run: %+v", v)
	}

	// Rewrite step 1's model and recompute every hash after it, the run's
	// head and the incident's record hash: the chain verifies again, the
	// signed checkpoint does not.
	rewriteChain(t, c.db, res.RunID, 2, func(r *trace.Record) { r.Model = "m-2" })
	c.ok("verify", res.RunID)
	c.fails(1, []string{res.RunID, "checkpoint", "changed"}, "verify", "--checkpoint", note, "--checkpoint-key", key+".pub")
	r := c.run("verify", "--checkpoint-key", key+".pub")
	if r.code != 1 || !strings.Contains(r.stderr, res.RunID) {
		t.Errorf("verify --checkpoint-key after the rewrite: exit %d\n%s", r.code, r.stderr)
	}

	// Another key does not verify the note.
	other := filepath.Join(c.dir, "other.key")
	c.ok("keygen", "-o", other, "--checkpoint", "test-key")
	c.fails(1, []string{"checkpoint"}, "verify", "--checkpoint", note, "--checkpoint-key", other+".pub")
	c.fails(2, []string{"--checkpoint-key"}, "verify", "--checkpoint", note)
	c.fails(1, []string{"not a checkpoint signer key"}, "checkpoint", res.RunID, "--key", key+".pub")
}

// rewriteChain changes the record at seq with edit and recomputes the
// hash of every record from there on, then the run's head hash and the
// incident's record hash, as a writer who has dropped the triggers can.
func rewriteChain(t *testing.T, path, runID string, seq int, edit func(*trace.Record)) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, trg := range []string{"records_no_update", "runs_ended_immutable", "incidents_facts_immutable"} {
		if _, err := db.Exec(`DROP TRIGGER IF EXISTS ` + trg); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := db.Query(`SELECT body, prev_hash, hash FROM records WHERE run_id = ? ORDER BY seq`, runID)
	if err != nil {
		t.Fatal(err)
	}
	var recs []trace.Record
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
		recs = append(recs, r)
	}
	rows.Close()
	edit(&recs[seq])
	for i := seq; i < len(recs); i++ {
		old := recs[i].Hash
		body := trace.Seal(&recs[i], recs[i-1].Hash, nil)
		if _, err := db.Exec(`UPDATE records SET body = ?, prev_hash = ?, hash = ? WHERE run_id = ? AND seq = ?`,
			body, recs[i].PrevHash, recs[i].Hash, runID, i); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`UPDATE incidents SET record_hash = ? WHERE run_id = ? AND record_hash = ?`, recs[i].Hash, runID, old); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(`UPDATE runs SET head_hash = ? WHERE run_id = ?`, recs[len(recs)-1].Hash, runID); err != nil {
		t.Fatal(err)
	}
}

// tamperAll opens the database as an attacker would, drops every
// trigger, and runs the statements.
func tamperAll(t *testing.T, path string, stmts ...string) {
	t.Helper()
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
	for _, n := range triggers {
		if _, err := db.Exec(`DROP TRIGGER ` + n); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range stmts {
		res, err := db.Exec(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			t.Fatalf("%s: changed nothing", q)
		}
	}
}

// TestVerifyCheckpointOfAnotherRun: a writer erases a run's stop (its
// inflection record, run_end and incident deleted, the run reopened),
// deletes its checkpoints and stores another run's signed notes as its
// checkpoints. Every note verifies — for the other run. verify with the
// checkpoint key refuses them: a note must name the run it is stored with.
func TestVerifyCheckpointOfAnotherRun(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	key := filepath.Join(c.dir, "cp.key")
	c.ok("keygen", "-o", key, "--checkpoint", "test-key")
	var a, b runResult
	c.okJSON(&a, "run", "--policies", policyFile("budget_steps"), "--steps", stepsFile("budget_steps"), "--checkpoint-key", key)
	c.okJSON(&b, "run", "--policies", policyFile("budget_steps"), "--steps", stepsFile("budget_steps"), "--checkpoint-key", key)
	if a.Status != "failed_policy" || a.StoppedAtStep == nil || *a.StoppedAtStep != 3 {
		t.Fatalf("run A: %+v", a)
	}
	noteB := filepath.Join(c.dir, "b.checkpoint")
	c.ok("checkpoint", b.RunID, "--key", key, "-o", noteB)
	var v verifyResult
	c.okJSON(&v, "verify", "--checkpoint-key", key+".pub")

	tamperAll(t, c.db,
		`DELETE FROM records WHERE run_id = '`+a.RunID+`' AND seq >= 4`,
		`DELETE FROM incidents WHERE run_id = '`+a.RunID+`'`,
		`UPDATE runs SET status = 'running', termination_reason = '', stopped_at_step = NULL, violation_policy_id = '', incident_id = '',
			ended_at = NULL, head_hash = '', chain_length = 0, step_count = 0, total_tokens = 0, total_cost_cents = 0 WHERE run_id = '`+a.RunID+`'`,
		`DELETE FROM checkpoints WHERE run_id = '`+a.RunID+`'`,
		`INSERT INTO checkpoints SELECT tenant_id, '`+a.RunID+`', size, key_name, head_hash, at_ns, note FROM checkpoints WHERE run_id = '`+b.RunID+`'`,
	)
	// The chain alone verifies: the stop was erased consistently.
	c.ok("verify", a.RunID)
	r := c.run("verify", "--checkpoint-key", key+".pub", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 1 {
		t.Fatalf("verify --checkpoint-key: exit %d, %v\n%s%s", r.code, err, r.stdout, r.stderr)
	}
	if v.OK || len(v.Failures) != 1 || v.Failures[0].RunID != a.RunID || !strings.Contains(v.Failures[0].Error, b.RunID) {
		t.Errorf("verify --checkpoint-key: %+v", v)
	}
	c.fails(1, []string{a.RunID, b.RunID, "checkpoint"}, "verify", a.RunID, "--checkpoint-key", key+".pub")
	// B's note presented for run A.
	c.fails(1, []string{a.RunID, b.RunID}, "verify", a.RunID, "--checkpoint", noteB, "--checkpoint-key", key+".pub")
	// B's note for B, and for tenant acme, is good.
	c.ok("verify", b.RunID, "--checkpoint", noteB, "--checkpoint-key", key+".pub")
	c.ok("verify", "--tenant", "acme", "--checkpoint", noteB, "--checkpoint-key", key+".pub")
	c.fails(1, []string{b.RunID, "globex"}, "verify", "--tenant", "globex", "--checkpoint", noteB, "--checkpoint-key", key+".pub")
}

// TestCheckpointSignsWithTheKeyGiven: when the store already holds a note
// for the run's size under the key's name, signed by ANOTHER key with
// that name, stopline checkpoint does not hand that note out as its own:
// it signs with the key given, says the new note could not be stored, and
// exits 1. With the key that did sign the stored note, the stored note is
// written again.
func TestCheckpointSignsWithTheKeyGiven(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	key := filepath.Join(c.dir, "cp.key")
	impostor := filepath.Join(c.dir, "impostor.key")
	c.ok("keygen", "-o", key, "--checkpoint", "test-key")
	c.ok("keygen", "-o", impostor, "--checkpoint", "test-key")
	res := c.runSteps("budget_steps", "budget_steps")
	stored := c.ok("checkpoint", res.RunID, "--key", impostor)

	note := filepath.Join(c.dir, "run.checkpoint")
	r := c.run("checkpoint", res.RunID, "--key", key, "-o", note)
	checkFailure(t, r, 1, []string{res.RunID, "NOT stored", "test-key"}, []string{"checkpoint"})
	data, err := os.ReadFile(note)
	if err != nil || string(data) == stored {
		t.Fatalf("the note written is the impostor's stored note (%v)", err)
	}
	c.ok("verify", res.RunID, "--checkpoint", note, "--checkpoint-key", key+".pub")
	c.fails(1, []string{"checkpoint"}, "verify", res.RunID, "--checkpoint", note, "--checkpoint-key", impostor+".pub")
	// On stdout too, and with --json.
	r = c.run("checkpoint", res.RunID, "--key", key)
	if r.code != 1 || !strings.HasPrefix(r.stdout, "stopline/run-checkpoint/v1\n") || r.stdout == stored {
		t.Errorf("checkpoint to stdout: exit %d\n%s", r.code, r.stdout)
	}
	// The key that signed the stored note gets it back.
	if again := c.ok("checkpoint", res.RunID, "--key", impostor); again != stored {
		t.Errorf("the stored note's own key:\n%s\nwant:\n%s", again, stored)
	}
}

// TestVerifyOrphans: a writer deletes only a run's row, leaving its
// records, checkpoints and incident; or adds an incident to a run that
// never stopped. Every chain left verifies; verify does not.
func TestVerifyOrphans(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	key := filepath.Join(c.dir, "cp.key")
	c.ok("keygen", "-o", key, "--checkpoint", "test-key")
	var victim, other runResult
	c.okJSON(&victim, "run", "--policies", policyFile("budget_steps"), "--steps", stepsFile("budget_steps"), "--checkpoint-key", key)
	other = c.runSteps("agent", "completes")
	if victim.IncidentID == nil {
		t.Fatalf("victim run did not stop: %+v", victim)
	}
	tamperAll(t, c.db, `DELETE FROM runs WHERE run_id = '`+victim.RunID+`'`)

	r := c.run("verify")
	if r.code != 1 || !strings.Contains(r.stderr, victim.RunID) || !strings.Contains(r.stderr, "row is missing") ||
		!strings.Contains(r.stderr, *victim.IncidentID) {
		t.Errorf("verify: exit %d\n%s", r.code, r.stderr)
	}
	var v verifyResult
	r = c.run("verify", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil || r.code != 1 {
		t.Fatalf("verify --json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if v.OK || len(v.Failures) != 1 || v.Failures[0].RunID != victim.RunID || v.Failures[0].TenantID != "acme" ||
		v.Failures[0].Seq == nil || *v.Failures[0].Seq != -1 {
		t.Errorf("verify --json: %+v", v)
	}
	if r := c.run("verify", "--tenant", "acme", "--checkpoint-key", key+".pub"); r.code != 1 || !strings.Contains(r.stderr, victim.RunID) {
		t.Errorf("verify --tenant acme: exit %d\n%s", r.code, r.stderr)
	}
	c.ok("verify", "--tenant", "globex")
	c.ok("verify", other.RunID)

	// An incident of the untouched run, which never stopped.
	tamperAll(t, c.db, `INSERT INTO incidents SELECT tenant_id, 'INC-forged', '`+other.RunID+`', trace_id, snapshot_id, policy_id, source,
		step_index, record_hash, reason, threshold, limit_value, observed, severity, title, message, created_at, status,
		acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution FROM incidents WHERE run_id = '`+victim.RunID+`'`)
	c.fails(1, []string{other.RunID, "INC-forged", "never stopped"}, "verify", other.RunID)
}

// TestCheckpointRefusesToSignAForgery: stopline checkpoint signs only a
// run that verifies and whose earlier checkpoints by the same key still
// verify: a chain rewritten consistently (every hash recomputed) is not
// vouched for by a new signature.
func TestCheckpointRefusesToSignAForgery(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	key := filepath.Join(c.dir, "cp.key")
	c.ok("keygen", "-o", key, "--checkpoint", "test-key")
	rewritten := c.runSteps("budget_steps", "budget_steps")
	changed := c.runSteps("agent", "completes")
	c.ok("checkpoint", rewritten.RunID, "--key", key)

	rewriteChain(t, c.db, rewritten.RunID, 2, func(r *trace.Record) { r.Model = "m-2" })
	c.ok("verify", rewritten.RunID) // the chain alone verifies
	c.fails(1, []string{"not signing", rewritten.RunID, "checkpoint"}, "checkpoint", rewritten.RunID, "--key", key)

	tamper(t, c.db, `UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '"step_index":0', '"step_index":0 ') AS BLOB)
		WHERE run_id = ? AND seq = 1`, changed.RunID)
	c.fails(1, []string{"not signing", changed.RunID, "record 1"}, "checkpoint", changed.RunID, "--key", key)
}
