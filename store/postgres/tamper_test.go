package postgres_test

import (
	"golang.org/x/mod/sumdb/tlog"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/store/storetest"
	"github.com/stopline/stopline/trace"
)

// TestTamperConformance runs the tamper suite every store passes, editing
// the database with plain SQL on a connection in replica mode, where
// neither triggers nor foreign keys fire: what a writer of the database
// with enough rights can do.
func TestTamperConformance(t *testing.T) {
	serverURL(t)
	t.Parallel()
	storetest.RunTamper(t, func(t *testing.T) (governance.Store, storetest.Tamper) {
		url := newDatabase(t)
		s := openStore(t, url)
		conn := rawConn(t, url)
		if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
			t.Fatal(err)
		}
		return s, pgTamper{conn}
	})
}

// pgTamper edits a database as its writer could.
type pgTamper struct{ conn *pgx.Conn }

func (tm pgTamper) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	tag, err := tm.conn.Exec(ctx, q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if tag.RowsAffected() == 0 {
		t.Fatalf("%s: changed nothing", q)
	}
}

func nanos(t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	n := t.UnixNano()
	return &n
}

func orNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (tm pgTamper) DeleteRunRow(t testing.TB, tenantID, runID string) {
	tm.exec(t, `DELETE FROM runs WHERE tenant_id = $1 AND run_id = $2`, tenantID, runID)
}

func (tm pgTamper) EditRecordIndex(t testing.TB, tenantID, runID string, seq int, edit func(*governance.RecordIndex)) {
	t.Helper()
	var (
		x              governance.RecordIndex
		kind           string
		at             *int64
		status, policy *string
	)
	err := tm.conn.QueryRow(ctx, `SELECT seq, kind, step_index, at_ns, status, inflection, policy_id, total_tokens, total_cost_cents
		FROM records WHERE tenant_id = $1 AND run_id = $2 AND seq = $3`, tenantID, runID, seq).
		Scan(&x.Seq, &kind, &x.StepIndex, &at, &status, &x.Inflection, &policy, &x.TotalTokens, &x.TotalCostCents)
	if err != nil {
		t.Fatal(err)
	}
	x.Kind = trace.Kind(kind)
	if at != nil {
		x.At = time.Unix(0, *at).UTC()
	}
	if status != nil {
		x.Status = trace.Status(*status)
	}
	if policy != nil {
		x.PolicyID = *policy
	}
	edit(&x)
	tm.exec(t, `UPDATE records SET seq = $1, kind = $2, step_index = $3, at_ns = $4, status = $5, inflection = $6, policy_id = $7,
		total_tokens = $8, total_cost_cents = $9 WHERE tenant_id = $10 AND run_id = $11 AND seq = $12`,
		x.Seq, string(x.Kind), x.StepIndex, nanos(x.At), orNull(string(x.Status)), x.Inflection, orNull(x.PolicyID),
		x.TotalTokens, x.TotalCostCents, tenantID, runID, seq)
}

func (tm pgTamper) SetBody(t testing.TB, tenantID, runID string, seq int, body []byte) {
	tm.exec(t, `UPDATE records SET body = $1 WHERE tenant_id = $2 AND run_id = $3 AND seq = $4`, body, tenantID, runID, seq)
}

func (tm pgTamper) SetContent(t testing.TB, tenantID, runID string, seq int, c trace.Content) {
	tm.exec(t, `UPDATE records SET content = $1 WHERE tenant_id = $2 AND run_id = $3 AND seq = $4`,
		string(trace.EncodeContent(nil, &c)), tenantID, runID, seq)
}

func (tm pgTamper) InsertIncident(t testing.TB, inc incident.Incident) {
	tm.exec(t, `INSERT INTO incidents
		(tenant_id, incident_id, run_id, trace_id, snapshot_id, policy_id, source, step_index, record_hash,
		 reason, threshold, limit_value, observed, severity, title, message, created_at,
		 status, acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, NULL, '', NULL, '', '')`,
		inc.TenantID, inc.ID, inc.RunID, inc.TraceID, inc.SnapshotID, inc.PolicyID, string(inc.Source), inc.StepIndex, inc.RecordHash,
		string(inc.Reason), inc.Threshold, inc.Limit, inc.Observed, string(inc.Severity), inc.Title, inc.Message, nanos(inc.CreatedAt),
		string(inc.Status))
}

func (tm pgTamper) InsertCheckpoint(t testing.TB, c governance.Checkpoint) {
	tm.exec(t, `INSERT INTO checkpoints (tenant_id, run_id, size, key_name, head_hash, at_ns, note) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		c.TenantID, c.RunID, c.Size, c.KeyName, c.Head, nanos(c.At), c.Note)
}

// TestTenantLogTamper runs the tenant log's tamper suite on a database
// edited with plain SQL in replica mode.
func TestTenantLogTamper(t *testing.T) {
	serverURL(t)
	t.Parallel()
	storetest.RunTenantLogTamper(t, func(t *testing.T) (governance.Store, storetest.LogTamper) {
		url := newDatabase(t)
		s := openStore(t, url)
		conn := rawConn(t, url)
		if _, err := conn.Exec(ctx, `SET session_replication_role = replica`); err != nil {
			t.Fatal(err)
		}
		return s, pgTamper{conn}
	})
}

// DeleteRun implements storetest.LogTamper: every row of the run, its
// checkpoints and its incident.
func (tm pgTamper) DeleteRun(t testing.TB, tenantID, runID string) {
	for _, q := range []string{`DELETE FROM checkpoints WHERE tenant_id = $1 AND run_id = $2`,
		`DELETE FROM incidents WHERE tenant_id = $1 AND run_id = $2`, `DELETE FROM records WHERE tenant_id = $1 AND run_id = $2`} {
		if _, err := tm.conn.Exec(ctx, q, tenantID, runID); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	tm.exec(t, `DELETE FROM runs WHERE tenant_id = $1 AND run_id = $2`, tenantID, runID)
}

// ReplaceTenantLog implements storetest.LogTamper.
func (tm pgTamper) ReplaceTenantLog(t testing.TB, tenantID string, leaves []governance.LogLeaf, hashes []tlog.Hash, frontier []byte) {
	for _, q := range []string{`DELETE FROM tenant_log_leaves WHERE tenant_id = $1`, `DELETE FROM tenant_log_hashes WHERE tenant_id = $1`} {
		if _, err := tm.conn.Exec(ctx, q, tenantID); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	for _, l := range leaves {
		tm.exec(t, `INSERT INTO tenant_log_leaves (tenant_id, idx, run_id, kind, seq, head_hash, key_name, note_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, tenantID, l.Index, l.RunID, l.Kind, l.Seq, l.Head, l.KeyName, l.NoteHash)
	}
	for i, h := range hashes {
		tm.exec(t, `INSERT INTO tenant_log_hashes (tenant_id, idx, hash) VALUES ($1, $2, $3)`, tenantID, i, h[:])
	}
	tm.exec(t, `UPDATE tenant_logs SET size = $1, frontier = $2 WHERE tenant_id = $3`, len(leaves), frontier, tenantID)
}
