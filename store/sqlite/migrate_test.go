package sqlite_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore/sqlstoretest"
	"github.com/stopline/stopline/store/sqlite"
	"github.com/stopline/stopline/trace"
)

// latestVersion is the number of embedded migrations.
var latestVersion = sqlite.LatestVersion()

// TestSchema runs the schema suite of the SQL stores on a new file each.
func TestSchema(t *testing.T) {
	sqlstoretest.RunSchema(t, func(t *testing.T) sqlstoretest.Schema {
		path := dbPath(t)
		raw := rawDB(t, path)
		return sqlstoretest.Schema{
			Latest: latestVersion, Where: path,
			ErrTooNew: sqlite.ErrSchemaTooNew, ErrOutdated: sqlite.ErrSchemaOutdated,
			Open: func(ctx context.Context, migrate bool) (io.Closer, error) {
				if migrate {
					return sqlite.Open(ctx, path)
				}
				return sqlite.Open(ctx, path, sqlite.WithoutMigrate())
			},
			Migrate: func(ctx context.Context) (int, int, error) { return sqlite.Migrate(ctx, raw) },
			Exec:    func(t *testing.T, q string) { mustExec(t, raw, q) },
			Query: func(t *testing.T, q string, dest ...any) {
				if err := raw.QueryRow(q).Scan(dest...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			},
		}
	})
}

func TestOpenMakesTablesInWALMode(t *testing.T) {
	path := dbPath(t)
	openStore(t, path)
	db := rawDB(t, path)
	for _, table := range []string{"snapshots", "policy_versions", "runs", "records", "incidents", "exports", "checkpoints",
		"ledger_windows", "ledger_events"} {
		if n := count(t, db, `SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = ?`, table); n != 1 {
			t.Errorf("table %s missing", table)
		}
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Errorf("journal_mode %q %v, want wal", mode, err)
	}
}

func TestReopenKeepsDataAndSchema(t *testing.T) {
	path := dbPath(t)
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	c := startRun(t, s, newSnap(t, "acme"), "RUN-1", governance.StatusRunning)
	appendSteps(t, s, c, 3)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	s = openStore(t, path)
	run, err := s.Run(ctx, "acme", "RUN-1")
	if err != nil {
		t.Fatal(err)
	}
	if run.StepCount != 3 || run.ChainLength != 4 || run.HeadHash != c.prev {
		t.Errorf("after reopen: %+v", run)
	}
	recs, err := s.Records(ctx, "acme", "RUN-1")
	if err != nil {
		t.Fatal(err)
	}
	if head, err := trace.Verify(recs); err != nil || head != c.prev {
		t.Errorf("chain after reopen: %s %v", head, err)
	}
	// The run goes on where it was.
	appendSteps(t, s, c, 1)
	if n := count(t, rawDB(t, path), `SELECT COUNT(*) FROM schema_migrations`); n != latestVersion {
		t.Errorf("%d migrations recorded after reopen, want %d", n, latestVersion)
	}
}

func TestOpenOptions(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		opts []sqlite.Option
		ok   bool
	}{
		{"defaults", "a.db", nil, true},
		{"full", "b.db", []sqlite.Option{sqlite.WithSynchronous(sqlite.Full)}, true},
		{"normal", "c.db", []sqlite.Option{sqlite.WithSynchronous(sqlite.Normal)}, true},
		{"busy timeout", "d.db", []sqlite.Option{sqlite.WithBusyTimeout(0)}, true},
		{"zero synchronous", "e.db", []sqlite.Option{sqlite.WithSynchronous(0)}, false},
		{"unknown synchronous", "e.db", []sqlite.Option{sqlite.WithSynchronous(9)}, false},
		{"negative busy timeout", "e.db", []sqlite.Option{sqlite.WithBusyTimeout(-1)}, false},
		{"nil option", "e.db", []sqlite.Option{nil}, false},
		{"memory", ":memory:", nil, false},
		{"empty path", "", nil, false},
		{"uri", "file:x.db", nil, false},
		{"special characters", "we?ird#na%me.db", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path != "" && path != ":memory:" && !strings.HasPrefix(path, "file:") {
				path = filepath.Join(dir, path)
			}
			s, err := sqlite.Open(ctx, path, tc.opts...)
			if (err == nil) != tc.ok {
				t.Fatalf("Open: err %v, want ok=%v", err, tc.ok)
			}
			if err != nil {
				return
			}
			defer s.Close()
			if _, err := os.Stat(path); err != nil {
				t.Errorf("database file not where it was asked for: %v", err)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "e.db")); err == nil {
		t.Error("a refused Open created its file")
	}
}
