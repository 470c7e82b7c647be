package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// migrateTo makes Open bring the schema to version v only, to write a
// file as an older release did.
func migrateTo(v int) Option {
	return func(c *config) error {
		c.migrateTo = v
		return nil
	}
}

// recordRow is one row of records, as stored, with its rowid.
type recordRow struct {
	RowID, Seq, StepIndex, Inflection, TotalTokens int64
	Tenant, Run, Kind, PrevHash, Hash              string
	AtNS                                           *int64
	Status, PolicyID, Content                      *string
	Cost                                           float64
	Body                                           []byte
}

func recordRows(t *testing.T, db *sql.DB) []recordRow {
	t.Helper()
	rows, err := db.Query(`SELECT rowid, tenant_id, run_id, seq, kind, step_index, at_ns, status, inflection,
		policy_id, total_tokens, total_cost_cents, body, prev_hash, hash, content FROM records ORDER BY rowid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []recordRow
	for rows.Next() {
		var r recordRow
		if err := rows.Scan(&r.RowID, &r.Tenant, &r.Run, &r.Seq, &r.Kind, &r.StepIndex, &r.AtNS, &r.Status, &r.Inflection,
			&r.PolicyID, &r.TotalTokens, &r.Cost, &r.Body, &r.PrevHash, &r.Hash, &r.Content); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Migration 5 rebuilds the records table: a file written at version 4
// keeps every record as it was (rowid, columns, body), every chain
// verifies, an open run goes on, and the table's rules still hold.
func TestMigrationRebuildsRecordsKeepingThem(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v4.db")
	s, err := Open(ctx, path, migrateTo(4))
	if err != nil {
		t.Fatal(err)
	}
	if v, err := s.db.SchemaVersion(ctx); err != nil || v != 4 {
		t.Fatalf("schema version %d %v, want 4", v, err)
	}
	snap, err := snapshot.Parse("p.json", []byte(`{"tenant_id":"acme","thresholds":{"max_steps":100},"policies":[
		{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
		{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`), time.Now(), prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	// This code closes runs into the tenant log, a later migration's
	// tables: lend them to the version-4 file while it is written, and
	// take them away before it is migrated.
	logTables := tenantLogTables(t)
	if _, err := s.w.ExecContext(ctx, logTables); err != nil {
		t.Fatal(err)
	}
	r, err := governance.NewRunner(s, governance.WithoutKillSwitch()) // as a binary before kill switches
	if err != nil {
		t.Fatal(err)
	}
	step := governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Input: "q", Output: "a", Tokens: 3}
	var open *governance.Run
	for i := range 3 {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			if _, err := run.Step(ctx, step); err != nil {
				t.Fatal(err)
			}
		}
		switch i {
		case 0:
			if _, err := run.Finish(ctx); err != nil {
				t.Fatal(err)
			}
		case 1: // stopped: an inflection point, an incident
			var v *governance.Violation
			if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"}); !errors.As(err, &v) {
				t.Fatalf("blocked step: %v", err)
			}
		case 2:
			open = run
		}
	}
	raw, err := sql.Open("sqlite3", dsn(path, map[string][]string{"_busy_timeout": {"5000"}}))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	before := recordRows(t, raw)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := raw.ExecContext(ctx, `DROP TABLE tenant_logs; DROP TABLE tenant_log_leaves; DROP TABLE tenant_log_hashes`); err != nil {
		t.Fatal(err)
	}

	s, err = Open(ctx, path) // migrates to the newest
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if v, err := s.db.SchemaVersion(ctx); err != nil || v < 5 {
		t.Fatalf("schema version %d %v after reopening, want at least 5", v, err)
	}
	if after := recordRows(t, raw); !reflect.DeepEqual(before, after) {
		t.Fatalf("records changed by the migration:\nbefore %+v\nafter  %+v", before, after)
	}
	rep, err := governance.VerifyStore(ctx, s, nil)
	if err != nil || len(rep.Failures) > 0 {
		t.Fatalf("VerifyStore after the migration: %+v %v", rep.Failures, err)
	}
	// The open run goes on, through the new table, on a new handle.
	r2, err := governance.NewRunner(s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := governance.RecoverRun(ctx, s, "acme", open.ID(), "", time.Now()); err != nil {
		t.Fatal(err)
	}
	run, err := r2.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Step(ctx, step); err != nil {
		t.Fatal(err)
	}

	var sqlText string
	if err := raw.QueryRow(`SELECT sql FROM sqlite_schema WHERE type = 'table' AND name = 'records'`).Scan(&sqlText); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sqlText, "records_v5") || strings.Contains(sqlText, "kind IN") {
		t.Errorf("records table after the migration: %s", sqlText)
	}
	var objects int
	if err := raw.QueryRow(`SELECT COUNT(*) FROM sqlite_schema WHERE tbl_name = 'records' AND name IN
		('records_one_inflection', 'records_one_end', 'records_no_update', 'records_no_delete')`).Scan(&objects); err != nil || objects != 4 {
		t.Errorf("%d of the records table's 2 indexes and 2 triggers after the migration (%v)", objects, err)
	}
}

// tenantLogTables is the SQL of the migration that creates the tenant
// log's tables, whatever its number.
func tenantLogTables(t *testing.T) string {
	t.Helper()
	names, err := fs.Glob(dialect.Schema, "migrations/*_tenant_log.sql")
	if err != nil || len(names) != 1 {
		t.Fatalf("the tenant log's migration: %v %v", names, err)
	}
	b, err := fs.ReadFile(dialect.Schema, names[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
