package postgres_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/storetest"
)

// The append-only rules and the chain check hold against raw SQL, not
// only against the Store's own methods.
func TestTriggersRefuseRawWrites(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	s := openStore(t, url)
	r, err := governance.NewRunner(s)
	if err != nil {
		t.Fatal(err)
	}
	snap := storetest.Snapshot(t, "acme")
	if _, err := r.Publish(ctx, snap, "alice", ""); err != nil {
		t.Fatal(err)
	}
	ended, err := r.Start(ctx, governance.StartOptions{TenantID: "acme", RunID: "RUN-ended"})
	if err != nil {
		t.Fatal(err)
	}
	ended.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse})
	if _, err := ended.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"}); !errors.Is(err, governance.ErrPolicyViolation) {
		t.Fatal(err)
	}
	open, err := r.Start(ctx, governance.StartOptions{TenantID: "acme", RunID: "RUN-open"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse}); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordExport(ctx, governance.ExportRecord{TenantID: "acme", BundleID: "BND-1", Format: "json", BundleHash: "ab", CreatedAt: storetest.T0}); err != nil {
		t.Fatal(err)
	}
	if err := s.PutCheckpoint(ctx, governance.Checkpoint{TenantID: "acme", RunID: "RUN-ended", Size: 1, KeyName: "k", Head: strings.Repeat("ab", 32), Note: "n"}); err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, url)
	hashAt := func(run string, seq int) string { // seq -1: the head
		var h string
		if err := conn.QueryRow(ctx, `SELECT hash FROM records WHERE run_id = $1 AND (seq = $2 OR $2 = -1) ORDER BY seq DESC LIMIT 1`,
			run, seq).Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	openHead, endedHead := hashAt("RUN-open", -1), hashAt("RUN-ended", -1)
	const genesis = "0000000000000000000000000000000000000000000000000000000000000000"
	insert := `INSERT INTO records (tenant_id, run_id, seq, kind, step_index, inflection, total_tokens, total_cost_cents, body, prev_hash, hash)
		VALUES ('acme', $1, $2, 'step', 0, false, 0, 0, '\x7b7d', $3, 'h')`

	refused := []struct {
		name string
		sql  string
		args []any
		code string
	}{
		{"update record body", `UPDATE records SET body = '\x7b7d' WHERE run_id = 'RUN-ended' AND seq = 1`, nil, "SL001"},
		{"update record hash", `UPDATE records SET hash = prev_hash`, nil, "SL001"},
		{"update record content", `UPDATE records SET content = NULL`, nil, "SL001"},
		{"delete record", `DELETE FROM records WHERE run_id = 'RUN-ended' AND seq = 3`, nil, "SL001"},
		{"delete all records", `DELETE FROM records`, nil, "SL001"},
		{"truncate records", `TRUNCATE records`, nil, "SL001"},
		{"update snapshot", `UPDATE snapshots SET thresholds = '{"max_steps":1000}'`, nil, "SL001"},
		{"delete snapshot", `DELETE FROM snapshots`, nil, "SL001"},
		{"truncate snapshots", `TRUNCATE snapshots CASCADE`, nil, "SL001"},
		{"update policy version", `UPDATE policy_versions SET published_by = 'mallory'`, nil, "SL001"},
		{"delete policy version", `DELETE FROM policy_versions`, nil, "SL001"},
		{"policy version gap", `INSERT INTO policy_versions VALUES ('acme', 5, '` + snap.ID() + `', 'h', 'x', NULL, '')`, nil, "SL006"},
		{"delete run", `DELETE FROM runs WHERE run_id = 'RUN-open'`, nil, "SL001"},
		{"truncate runs", `TRUNCATE runs CASCADE`, nil, "SL001"},
		{"reopen ended run", `UPDATE runs SET status = 'running' WHERE run_id = 'RUN-ended'`, nil, "SL002"},
		{"rewrite ended run head", `UPDATE runs SET head_hash = 'x' WHERE run_id = 'RUN-ended'`, nil, "SL002"},
		{"move open run to another snapshot", `UPDATE runs SET snapshot_id = 'SNAP-000000000000' WHERE run_id = 'RUN-open'`, nil, "SL001"},
		{"relabel open run", `UPDATE runs SET labels = '{"agent":"other"}' WHERE run_id = 'RUN-open'`, nil, "SL001"},
		{"delete incident", `DELETE FROM incidents`, nil, "SL001"},
		{"rewrite incident policy", `UPDATE incidents SET policy_id = 'other'`, nil, "SL001"},
		{"rewrite incident record hash", `UPDATE incidents SET record_hash = 'x', status = 'acknowledged'`, nil, "SL001"},
		{"reopen incident", `UPDATE incidents SET status = 'resolved'; UPDATE incidents SET status = 'open'`, nil, "SL003"},
		{"update export", `UPDATE exports SET bundle_hash = 'cd'`, nil, "SL001"},
		{"delete export", `DELETE FROM exports`, nil, "SL001"},
		{"truncate exports", `TRUNCATE exports`, nil, "SL001"},
		{"update checkpoint", `UPDATE checkpoints SET note = 'forged'`, nil, "SL001"},
		{"delete checkpoint", `DELETE FROM checkpoints`, nil, "SL001"},
		{"append to unknown run", insert, []any{"RUN-none", 0, genesis}, "SL005"},
		{"append after the end", insert, []any{"RUN-ended", 4, endedHead}, "SL002"},
		{"append not after the head", insert, []any{"RUN-open", 2, genesis}, "SL004"},
		{"append with a gap", insert, []any{"RUN-open", 3, openHead}, "SL004"},
		{"append at a taken seq", insert, []any{"RUN-open", 1, hashAt("RUN-open", 0)}, "23505"},
		{"second run_start", insert, []any{"RUN-open", 0, genesis}, "23505"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			tx, err := conn.Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer tx.Rollback(ctx) // multi-statement cases must leave nothing behind
			var perr *pgconn.PgError
			_, err = tx.Exec(ctx, tc.sql, tc.args...)
			if !errors.As(err, &perr) || perr.Code != tc.code {
				t.Errorf("got %v, want SQLSTATE %s", err, tc.code)
			}
		})
	}

	// Lifecycle columns of an incident may change, forward.
	if _, err := conn.Exec(ctx, `UPDATE incidents SET status = 'acknowledged', acknowledged_by = 'oncall', acknowledged_at = 1`); err != nil {
		t.Errorf("acknowledging an incident with raw SQL: %v", err)
	}
	// An open run may be updated (that is how it ends).
	if _, err := conn.Exec(ctx, `UPDATE runs SET message = 'note' WHERE run_id = 'RUN-open'`); err != nil {
		t.Errorf("updating an open run: %v", err)
	}
	// A record that extends the head is accepted from raw SQL too.
	if _, err := conn.Exec(ctx, insert, "RUN-open", 2, openHead); err != nil {
		t.Errorf("appending at the head with raw SQL: %v", err)
	}

	// Everything refused left the chains intact.
	if n, err := governance.VerifyRun(ctx, s, "acme", "RUN-ended"); err != nil {
		t.Errorf("VerifyRun RUN-ended after refused writes: %d %v", n, err)
	}
	var inc incident.Incident
	if incs, err := s.Incidents(ctx, governance.IncidentFilter{TenantID: "acme"}); err != nil || len(incs) != 1 {
		t.Fatalf("incidents: %v %v", incs, err)
	} else {
		inc = incs[0]
	}
	if inc.Status != incident.StatusAcknowledged || inc.PolicyID != "tools" {
		t.Errorf("incident after raw writes: %+v", inc)
	}
	// Moving an incident back through the Store is ErrInvalidTransition.
	inc.Status = incident.StatusOpen
	if err := s.UpdateIncident(ctx, inc); !errors.Is(err, incident.ErrInvalidTransition) {
		t.Errorf("UpdateIncident back to open: got %v, want ErrInvalidTransition", err)
	}
}
