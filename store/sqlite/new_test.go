package sqlite_test

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore/sqlstoretest"
	"github.com/stopline/stopline/store/sqlite"
)

// goodDSN is what New needs of the application's connection.
const goodDSN = "_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_txlock=immediate&_busy_timeout=5000"

// appDB opens path as an application would, with the DSN parameters
// params and at most maxConns connections, closed when t ends.
func appDB(t testing.TB, path, params string, maxConns int) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?"+params)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(maxConns)
	t.Cleanup(func() { db.Close() })
	return db
}

// Close leaves the application's *sql.DB open, and the Store and the
// application share its one connection.
func TestNewLeavesTheDBToTheApplication(t *testing.T) {
	path := dbPath(t)
	db := appDB(t, path, goodDSN, 1)
	s, err := sqlite.New(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	c := startRun(t, s, newSnap(t, "acme"), "RUN-1", governance.StatusRunning)
	appendSteps(t, s, c, 2)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := count(t, db, `SELECT COUNT(*) FROM records`); n != 3 {
		t.Errorf("%d records through the application's connection, want 3", n)
	}
	// Another Store on the file sees what this one wrote.
	if run, err := openStore(t, path).Run(ctx, "acme", "RUN-1"); err != nil || run.StepCount != 2 {
		t.Errorf("Run after New's Close: %+v %v", run, err)
	}
}

// otherDriver is a database/sql driver that is not go-sqlite3.
type otherDriver struct{}

func (otherDriver) Open(string) (driver.Conn, error)                 { return nil, errors.New("no") }
func (d otherDriver) OpenConnector(string) (driver.Connector, error) { return d, nil }
func (d otherDriver) Connect(context.Context) (driver.Conn, error)   { return nil, errors.New("no") }
func (d otherDriver) Driver() driver.Driver                          { return d }

func TestNewRefuses(t *testing.T) {
	other := sql.OpenDB(otherDriver{})
	other.SetMaxOpenConns(1)
	t.Cleanup(func() { other.Close() })
	tests := []struct {
		name     string
		db       func(t *testing.T) *sql.DB
		opts     []sqlite.Option
		wantErr  string // "" for success
		wantSent error
	}{
		{"good", func(t *testing.T) *sql.DB { return appDB(t, dbPath(t), goodDSN, 1) }, nil, "", nil},
		{"stronger synchronous than asked", func(t *testing.T) *sql.DB { return appDB(t, dbPath(t), goodDSN, 1) },
			[]sqlite.Option{sqlite.WithSynchronous(sqlite.Normal)}, "", nil},
		{"normal when asked", func(t *testing.T) *sql.DB {
			return appDB(t, dbPath(t), strings.Replace(goodDSN, "FULL", "NORMAL", 1), 1)
		}, []sqlite.Option{sqlite.WithSynchronous(sqlite.Normal)}, "", nil},
		{"nil", func(*testing.T) *sql.DB { return nil }, nil, "nil *sql.DB", nil},
		{"another driver", func(*testing.T) *sql.DB { return other }, nil, "not github.com/mattn/go-sqlite3", nil},
		{"several connections", func(t *testing.T) *sql.DB { return appDB(t, dbPath(t), goodDSN, 0) }, nil, "SetMaxOpenConns(1)", nil},
		{"in memory", func(t *testing.T) *sql.DB { return appDB(t, ":memory:", goodDSN, 1) }, nil, "not a file", nil},
		{"rollback journal", func(t *testing.T) *sql.DB {
			return appDB(t, dbPath(t), strings.Replace(goodDSN, "WAL", "DELETE", 1), 1)
		}, nil, "_journal_mode=WAL", nil},
		{"weaker synchronous", func(t *testing.T) *sql.DB {
			return appDB(t, dbPath(t), strings.Replace(goodDSN, "FULL", "NORMAL", 1), 1)
		}, nil, "_synchronous=FULL", nil},
		{"foreign keys off", func(t *testing.T) *sql.DB {
			return appDB(t, dbPath(t), strings.Replace(goodDSN, "_foreign_keys=1", "_foreign_keys=0", 1), 1)
		}, nil, "_foreign_keys=1", nil},
		{"deferred transactions", func(t *testing.T) *sql.DB {
			return appDB(t, dbPath(t), strings.Replace(goodDSN, "_txlock=immediate", "_txlock=deferred", 1), 1)
		}, nil, "_txlock=immediate", nil},
		{"query only", func(t *testing.T) *sql.DB { return appDB(t, dbPath(t), goodDSN+"&_query_only=1", 1) }, nil, "query-only", nil},
		{"busy timeout option", func(t *testing.T) *sql.DB { return appDB(t, dbPath(t), goodDSN, 1) },
			[]sqlite.Option{sqlite.WithBusyTimeout(0)}, "WithBusyTimeout(0s)", nil},
		{"without migrate", func(t *testing.T) *sql.DB { return appDB(t, dbPath(t), goodDSN, 1) },
			[]sqlite.Option{sqlite.WithoutMigrate()}, "version 0", sqlite.ErrSchemaOutdated},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := tc.db(t)
			s, err := sqlite.New(ctx, db, tc.opts...)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				startRun(t, s, newSnap(t, "acme"), "RUN-1", governance.StatusRunning)
				s.Close()
				return
			}
			if err == nil {
				s.Close()
				t.Fatalf("New succeeded, want an error naming %q", tc.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "sqlite: ") || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New: %q, want an error starting sqlite: and naming %q", err, tc.wantErr)
			}
			if tc.wantSent != nil && !errors.Is(err, tc.wantSent) {
				t.Errorf("New: %v, want it to match %v", err, tc.wantSent)
			}
		})
	}
}

// Checking how db begins transactions leaves its busy timeout as it was.
func TestNewKeepsTheBusyTimeout(t *testing.T) {
	for _, dsn := range []string{goodDSN, strings.Replace(goodDSN, "_txlock=immediate", "_txlock=deferred", 1)} {
		db := appDB(t, filepath.Join(t.TempDir(), "b.db"), strings.Replace(dsn, "5000", "1234", 1), 1)
		if s, err := sqlite.New(ctx, db); err == nil {
			s.Close()
		}
		var ms int
		if err := db.QueryRow(`PRAGMA busy_timeout`).Scan(&ms); err != nil || ms != 1234 {
			t.Errorf("%s: busy_timeout %d %v after New, want 1234", dsn, ms, err)
		}
	}
}

// A bad option fails Open with an error that names it.
func TestOptionErrorsNameTheOption(t *testing.T) {
	for _, tc := range []struct {
		opt  sqlite.Option
		want string
	}{
		{sqlite.WithSynchronous(7), "sqlite: WithSynchronous(Synchronous(7))"},
		{sqlite.WithBusyTimeout(-1), "sqlite: WithBusyTimeout(-1ns)"},
		{nil, "sqlite: nil Option"},
	} {
		_, err := sqlite.Open(ctx, dbPath(t), tc.opt)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Open: %v, want an error starting %q", err, tc.want)
		}
	}
}

func TestErrorsNameTheStore(t *testing.T) {
	sqlstoretest.ErrorsNameTheStore(t, openStore(t, dbPath(t)), "sqlite")
}
