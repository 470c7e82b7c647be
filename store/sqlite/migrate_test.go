package sqlite_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/sqlite"
	"github.com/stopline/stopline/trace"
)

// latestVersion is the number of embedded migrations.
const latestVersion = 4

func TestOpenMigratesEmptyFile(t *testing.T) {
	path := dbPath(t)
	openStore(t, path)
	db := rawDB(t, path)

	rows, err := db.Query(`SELECT version, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var versions []int
	for rows.Next() {
		var v int
		var at int64
		if err := rows.Scan(&v, &at); err != nil {
			t.Fatal(err)
		}
		if at <= 0 {
			t.Errorf("migration %d: applied_at %d", v, at)
		}
		versions = append(versions, v)
	}
	if len(versions) != latestVersion || versions[0] != 1 || versions[latestVersion-1] != latestVersion {
		t.Errorf("schema_migrations: %v, want 1..%d", versions, latestVersion)
	}
	for _, table := range []string{"snapshots", "policy_versions", "runs", "records", "incidents", "exports"} {
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

func TestOpenRefusesNewerSchema(t *testing.T) {
	path := dbPath(t)
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := rawDB(t, path).Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (99, 1)`); err != nil {
		t.Fatal(err)
	}
	_, err = sqlite.Open(ctx, path)
	if !errors.Is(err, sqlite.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: got %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{"99", fmt.Sprintf("up to %d", latestVersion), path} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

func TestConcurrentOpenOfNewFile(t *testing.T) {
	path := dbPath(t)
	const n = 8
	var wg sync.WaitGroup
	stores := make([]*sqlite.Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = sqlite.Open(ctx, path)
		}()
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Errorf("Open %d: %v", i, errs[i])
			continue
		}
		defer stores[i].Close()
	}
	if n := count(t, rawDB(t, path), `SELECT COUNT(*) FROM schema_migrations`); n != latestVersion {
		t.Errorf("%d migrations recorded, want %d", n, latestVersion)
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
