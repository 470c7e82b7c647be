package sqlite_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/sqlite"
	"github.com/stopline/stopline/trace"
)

// stoppedRun governs a run on a real file until the tool allowlist stops
// it at step 3, and returns the store, the file and the run id.
func stoppedRun(t *testing.T) (*sqlite.Store, string, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "stopline.db")
	s := openStore(t, path)
	snap, err := snapshot.Parse("p.json", []byte(`{"tenant_id":"acme","thresholds":{"max_steps":10},"policies":[
		{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
		{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`), time.Now(), prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	r, err := governance.NewRunner(s)
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	for i, tool := range []string{"search", "search", "search", "shell"} {
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: tool, Input: fmt.Sprintf(`{"n":%d}`, i), Tokens: 7})
		if (err != nil) != (tool == "shell") {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	return s, path, run.ID()
}

// TestChangedByteIsDetected changes one stored record at a time (a byte of
// its body, hash, prev_hash or content), on a fresh run each time and with
// the append-only trigger dropped as an attacker would, and checks that
// VerifyRun reports it and names the run and the record.
func TestChangedByteIsDetected(t *testing.T) {
	type edit struct {
		name string
		seq  int
		sql  string // %[1]s is the run id, %[2]d the seq
	}
	var edits []edit
	for seq := 0; seq < 6; seq++ {
		edits = append(edits,
			edit{fmt.Sprintf("body of record %d", seq), seq,
				`UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '"seq":%[2]d', '"seq":1%[2]d') AS BLOB) WHERE run_id = '%[1]s' AND seq = %[2]d`},
			edit{fmt.Sprintf("hash of record %d", seq), seq,
				`UPDATE records SET hash = substr(hash, 1, 10) || CASE substr(hash, 11, 1) WHEN 'a' THEN 'b' ELSE 'a' END || substr(hash, 12) WHERE run_id = '%[1]s' AND seq = %[2]d`},
			edit{fmt.Sprintf("prev_hash of record %d", seq), seq,
				`UPDATE records SET prev_hash = substr(prev_hash, 1, 63) || CASE substr(prev_hash, 64, 1) WHEN '1' THEN '2' ELSE '1' END WHERE run_id = '%[1]s' AND seq = %[2]d`},
		)
	}
	for seq := 1; seq <= 4; seq++ {
		edits = append(edits, edit{fmt.Sprintf("content of record %d", seq), seq,
			`UPDATE records SET content = replace(content, '\"n', '\"m') WHERE run_id = '%[1]s' AND seq = %[2]d AND content LIKE '%%\"n%%'`})
	}
	edits = append(edits,
		edit{"tokens in a step body", 2, `UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '"tokens":7', '"tokens":1') AS BLOB) WHERE run_id = '%[1]s' AND seq = %[2]d`},
		edit{"decision in the inflection body", 4, `UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '"action":"block"', '"action":"allow"') AS BLOB) WHERE run_id = '%[1]s' AND seq = %[2]d`},
	)
	for _, e := range edits {
		t.Run(e.name, func(t *testing.T) {
			s, path, runID := stoppedRun(t)
			if _, err := governance.VerifyRun(ctx, s, "acme", runID); err != nil {
				t.Fatalf("untouched run: %v", err)
			}
			db := rawDB(t, path)
			if _, err := db.Exec(`DROP TRIGGER records_no_update`); err != nil {
				t.Fatal(err)
			}
			res, err := db.Exec(fmt.Sprintf(e.sql, runID, e.seq))
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := res.RowsAffected(); n != 1 {
				t.Fatalf("edit touched %d rows", n)
			}
			_, verr := governance.VerifyRun(ctx, s, "acme", runID)
			if verr == nil {
				t.Fatal("VerifyRun did not detect the change")
			}
			var ce *trace.ChainError
			var ie *governance.IntegrityError
			switch {
			case errors.As(verr, &ce):
				// The first bad record is the edited one, or the one after
				// it whose prev_hash no longer matches.
				if ce.RunID != runID || (ce.Seq != e.seq && ce.Seq != e.seq+1) {
					t.Errorf("chain error names run %q record %d, want %s record %d: %v", ce.RunID, ce.Seq, runID, e.seq, verr)
				}
			case errors.As(verr, &ie):
				if ie.RunID != runID || (ie.Seq != e.seq && ie.Seq != -1) {
					t.Errorf("integrity error names run %q record %d, want record %d: %v", ie.RunID, ie.Seq, e.seq, verr)
				}
			default:
				// A body that no longer decodes: the store names the record.
				if !strings.Contains(verr.Error(), runID) || !strings.Contains(verr.Error(), fmt.Sprintf("seq %d", e.seq)) {
					t.Errorf("error does not name run and record: %v", verr)
				}
			}
		})
	}
}
