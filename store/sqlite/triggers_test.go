package sqlite_test

import (
	"strings"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/trace"
)

// The append-only rules hold against raw SQL on the file, not only
// against the Store's own methods.
func TestTriggersRefuseRawWrites(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)
	snap := newSnap(t, "acme")
	if _, err := s.PublishPolicy(ctx, snap, governance.PolicyVersion{PublishedBy: "alice", PublishedAt: t0}); err != nil {
		t.Fatal(err)
	}
	ended := startRun(t, s, snap, "RUN-ended", governance.StatusRunning)
	appendSteps(t, s, ended, 2)
	blockRun(t, s, ended, "INC-1")
	open := startRun(t, s, snap, "RUN-open", governance.StatusRunning)
	appendSteps(t, s, open, 1)
	if err := s.RecordExport(ctx, governance.ExportRecord{TenantID: "acme", BundleID: "BND-1", Format: "json", BundleHash: "ab", CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}

	db := rawDB(t, path)
	refused := []struct {
		name, sql, want string
	}{
		{"update record body", `UPDATE records SET body = x'7b7d' WHERE run_id = 'RUN-ended' AND seq = 1`, "records are append-only"},
		{"update record hash", `UPDATE records SET hash = prev_hash`, "records are append-only"},
		{"update record content", `UPDATE records SET content = NULL`, "records are append-only"},
		{"delete record", `DELETE FROM records WHERE run_id = 'RUN-ended' AND seq = 3`, "records are append-only"},
		{"delete all records", `DELETE FROM records`, "records are append-only"},
		{"update snapshot", `UPDATE snapshots SET thresholds = '{"max_steps":1000}'`, "snapshots are immutable"},
		{"delete snapshot", `DELETE FROM snapshots`, "snapshots are immutable"},
		{"update policy version", `UPDATE policy_versions SET published_by = 'mallory'`, "policy versions are append-only"},
		{"delete policy version", `DELETE FROM policy_versions`, "policy versions are append-only"},
		{"policy version gap", `INSERT INTO policy_versions VALUES ('acme', 5, '` + snap.ID() + `', 'h', 'x', NULL, '')`, "not the next one"},
		{"delete run", `DELETE FROM runs WHERE run_id = 'RUN-open'`, "runs are never deleted"},
		{"reopen ended run", `UPDATE runs SET status = 'running' WHERE run_id = 'RUN-ended'`, "run already ended"},
		{"rewrite ended run head", `UPDATE runs SET head_hash = 'x' WHERE run_id = 'RUN-ended'`, "run already ended"},
		{"move open run to another snapshot", `UPDATE runs SET snapshot_id = 'SNAP-000000000000' WHERE run_id = 'RUN-open'`, "identity never changes"},
		{"delete incident", `DELETE FROM incidents`, "incidents are never deleted"},
		{"rewrite incident policy", `UPDATE incidents SET policy_id = 'other'`, "links and facts never change"},
		{"rewrite incident record hash", `UPDATE incidents SET record_hash = 'x', status = 'acknowledged'`, "links and facts never change"},
		{"reopen incident", `UPDATE incidents SET status = 'resolved'; UPDATE incidents SET status = 'open'`, "cannot go back"},
		{"append to unknown run", `INSERT INTO records VALUES ('acme', 'RUN-none', 0, 'run_start', -1, 0, NULL, 0, NULL, 0, 0, x'7b7d', '` + trace.GenesisHash + `', 'h', NULL)`, "FOREIGN KEY constraint failed"},
		{"second inflection", `INSERT INTO records SELECT tenant_id, run_id, seq + 1, 'step', 1, at_ns, 'violation', 1, NULL, 0, 0, body, hash, 'h', NULL
			FROM records WHERE run_id = 'RUN-open' AND seq = 1; INSERT INTO records SELECT tenant_id, run_id, seq + 1, 'step', 2, at_ns, 'violation', 1, NULL, 0, 0, body, hash, 'h2', NULL
			FROM records WHERE run_id = 'RUN-open' AND seq = 2`, "UNIQUE constraint failed"},
		{"unknown record kind", `INSERT INTO records SELECT tenant_id, run_id, seq + 1, 'note', 1, at_ns, 'ok', 0, NULL, 0, 0, body, hash, 'h', NULL
			FROM records WHERE run_id = 'RUN-open' AND seq = 1`, "CHECK constraint failed"},
		{"second run_end", `INSERT INTO records SELECT tenant_id, run_id, seq + 1, 'run_end', -1, at_ns, NULL, 0, NULL, 0, 0, body, hash, 'h', NULL
			FROM records WHERE run_id = 'RUN-ended' AND kind = 'run_end'`, "UNIQUE constraint failed"},
		{"update export", `UPDATE exports SET bundle_hash = 'cd'`, "export log is append-only"},
		{"delete export", `DELETE FROM exports`, "export log is append-only"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := db.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback() // multi-statement cases must leave nothing behind
			_, err = tx.Exec(tc.sql)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}

	// Lifecycle columns of an incident may change.
	if _, err := db.Exec(`UPDATE incidents SET status = 'acknowledged', acknowledged_by = 'oncall', acknowledged_at = 1`); err != nil {
		t.Errorf("acknowledging an incident with raw SQL: %v", err)
	}
	// An open run may be updated (that is how it ends).
	if _, err := db.Exec(`UPDATE runs SET message = 'note' WHERE run_id = 'RUN-open'`); err != nil {
		t.Errorf("updating an open run: %v", err)
	}

	// Everything refused left the chains intact.
	for _, id := range []string{"RUN-ended", "RUN-open"} {
		if n, err := governance.VerifyRun(ctx, s, "acme", id); err != nil {
			t.Errorf("VerifyRun %s after refused writes: %d %v", id, n, err)
		}
	}
}
