package sqlite_test

import (
	"database/sql"
	"golang.org/x/mod/sumdb/tlog"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/store/storetest"
	"github.com/stopline/stopline/trace"
)

// TestTamperConformance runs the tamper suite every store passes, editing
// the file with plain SQL, its triggers dropped and foreign keys off.
func TestTamperConformance(t *testing.T) {
	storetest.RunTamper(t, func(t *testing.T) (governance.Store, storetest.Tamper) {
		path := dbPath(t)
		s := openStore(t, path)
		db := tamperDB(t, path)
		t.Cleanup(func() { db.Close() })
		return s, sqlTamper{db}
	})
}

// sqlTamper edits a database file as its writer could.
type sqlTamper struct{ db *sql.DB }

func nanos(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UnixNano()
}

func orNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (tm sqlTamper) DeleteRunRow(t testing.TB, tenantID, runID string) {
	mustExec(t, tm.db, `DELETE FROM runs WHERE tenant_id = ? AND run_id = ?`, tenantID, runID)
}

func (tm sqlTamper) EditRecordIndex(t testing.TB, tenantID, runID string, seq int, edit func(*governance.RecordIndex)) {
	t.Helper()
	var (
		x              governance.RecordIndex
		kind           string
		at             sql.NullInt64
		status, policy sql.NullString
		inflection     int
	)
	err := tm.db.QueryRow(`SELECT seq, kind, step_index, at_ns, status, inflection, policy_id, total_tokens, total_cost_cents
		FROM records WHERE tenant_id = ? AND run_id = ? AND seq = ?`, tenantID, runID, seq).
		Scan(&x.Seq, &kind, &x.StepIndex, &at, &status, &inflection, &policy, &x.TotalTokens, &x.TotalCostCents)
	if err != nil {
		t.Fatal(err)
	}
	x.Kind, x.Status, x.Inflection, x.PolicyID = trace.Kind(kind), trace.Status(status.String), inflection != 0, policy.String
	if at.Valid {
		x.At = time.Unix(0, at.Int64).UTC()
	}
	edit(&x)
	infl := 0
	if x.Inflection {
		infl = 1
	}
	mustExec(t, tm.db, `UPDATE records SET seq = ?, kind = ?, step_index = ?, at_ns = ?, status = ?, inflection = ?, policy_id = ?,
		total_tokens = ?, total_cost_cents = ? WHERE tenant_id = ? AND run_id = ? AND seq = ?`,
		x.Seq, string(x.Kind), x.StepIndex, nanos(x.At), orNull(string(x.Status)), infl, orNull(x.PolicyID),
		x.TotalTokens, x.TotalCostCents, tenantID, runID, seq)
}

func (tm sqlTamper) SetBody(t testing.TB, tenantID, runID string, seq int, body []byte) {
	mustExec(t, tm.db, `UPDATE records SET body = ? WHERE tenant_id = ? AND run_id = ? AND seq = ?`, body, tenantID, runID, seq)
}

func (tm sqlTamper) SetContent(t testing.TB, tenantID, runID string, seq int, c trace.Content) {
	mustExec(t, tm.db, `UPDATE records SET content = ? WHERE tenant_id = ? AND run_id = ? AND seq = ?`,
		string(trace.EncodeContent(nil, &c)), tenantID, runID, seq)
}

func (tm sqlTamper) InsertIncident(t testing.TB, inc incident.Incident) {
	mustExec(t, tm.db, `INSERT INTO incidents
		(tenant_id, incident_id, run_id, trace_id, snapshot_id, policy_id, source, step_index, record_hash,
		 reason, threshold, limit_value, observed, severity, title, message, created_at,
		 status, acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '', NULL, '', '')`,
		inc.TenantID, inc.ID, inc.RunID, inc.TraceID, inc.SnapshotID, inc.PolicyID, string(inc.Source), inc.StepIndex, inc.RecordHash,
		string(inc.Reason), inc.Threshold, inc.Limit, inc.Observed, string(inc.Severity), inc.Title, inc.Message, nanos(inc.CreatedAt),
		string(inc.Status))
}

func (tm sqlTamper) InsertCheckpoint(t testing.TB, c governance.Checkpoint) {
	mustExec(t, tm.db, `INSERT INTO checkpoints (tenant_id, run_id, size, key_name, head_hash, at_ns, note) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		c.TenantID, c.RunID, c.Size, c.KeyName, c.Head, nanos(c.At), c.Note)
}

// TestTenantLogTamper runs the tenant log's tamper suite on a database
// file edited with plain SQL, its triggers dropped.
func TestTenantLogTamper(t *testing.T) {
	storetest.RunTenantLogTamper(t, func(t *testing.T) (governance.Store, storetest.LogTamper) {
		path := dbPath(t)
		s := openStore(t, path)
		db := tamperDB(t, path)
		t.Cleanup(func() { db.Close() })
		return s, sqlTamper{db}
	})
}

// DeleteRun implements storetest.LogTamper: every row of the run, its
// checkpoints and its incident.
func (tm sqlTamper) DeleteRun(t testing.TB, tenantID, runID string) {
	for _, q := range []string{`DELETE FROM checkpoints WHERE tenant_id = ? AND run_id = ?`, `DELETE FROM incidents WHERE tenant_id = ? AND run_id = ?`} {
		if _, err := tm.db.Exec(q, tenantID, runID); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	mustExec(t, tm.db, `DELETE FROM records WHERE tenant_id = ? AND run_id = ?`, tenantID, runID)
	mustExec(t, tm.db, `DELETE FROM runs WHERE tenant_id = ? AND run_id = ?`, tenantID, runID)
}

// ReplaceTenantLog implements storetest.LogTamper.
func (tm sqlTamper) ReplaceTenantLog(t testing.TB, tenantID string, leaves []governance.LogLeaf, hashes []tlog.Hash, frontier []byte) {
	for _, q := range []string{`DELETE FROM tenant_log_leaves WHERE tenant_id = ?`, `DELETE FROM tenant_log_hashes WHERE tenant_id = ?`} {
		if _, err := tm.db.Exec(q, tenantID); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, l := range leaves {
		mustExec(t, tm.db, `INSERT INTO tenant_log_leaves (tenant_id, idx, run_id, kind, seq, head_hash, key_name, note_hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, tenantID, l.Index, l.RunID, l.Kind, l.Seq, l.Head, l.KeyName, l.NoteHash)
	}
	for i, h := range hashes {
		mustExec(t, tm.db, `INSERT INTO tenant_log_hashes (tenant_id, idx, hash) VALUES (?, ?, ?)`, tenantID, i, h[:])
	}
	mustExec(t, tm.db, `UPDATE tenant_logs SET size = ?, frontier = ? WHERE tenant_id = ?`, len(leaves), frontier, tenantID)
}
