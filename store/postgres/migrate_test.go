package postgres_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore/sqlstoretest"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/postgres"
	"github.com/stopline/stopline/store/storetest"
)

// TestSchema runs the schema suite of the SQL stores on a new database
// each.
func TestSchema(t *testing.T) {
	serverURL(t)
	t.Parallel()
	sqlstoretest.RunSchema(t, func(t *testing.T) sqlstoretest.Schema {
		url := newDatabase(t)
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pool.Close)
		return sqlstoretest.Schema{
			Latest: postgres.LatestVersion(), Where: pool.Config().ConnConfig.Database,
			ErrTooNew: postgres.ErrSchemaTooNew, ErrOutdated: postgres.ErrSchemaOutdated,
			Open: func(ctx context.Context, migrate bool) (io.Closer, error) {
				if migrate {
					return postgres.Open(ctx, url, postgres.WithMaxConns(2))
				}
				return postgres.Open(ctx, url, postgres.WithMaxConns(2), postgres.WithoutMigrate())
			},
			Migrate: func(ctx context.Context) (int, int, error) { return postgres.Migrate(ctx, pool) },
			Exec: func(t *testing.T, q string) {
				if _, err := pool.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			},
			Query: func(t *testing.T, q string, dest ...any) {
				if err := pool.QueryRow(ctx, q).Scan(dest...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			},
		}
	})
}

func TestOpenMakesTables(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	openStore(t, url)
	conn := rawConn(t, url)
	for _, table := range []string{"snapshots", "policy_versions", "runs", "records", "incidents", "exports", "checkpoints",
		"ledger_windows", "ledger_events"} {
		if n := count(t, conn, `SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1`, table); n != 1 {
			t.Errorf("table %s missing", table)
		}
	}
}

// A database at the previous schema version keeps its data when a newer
// binary opens it, and the new version's features work on it.
func TestOpenMigratesFromPreviousVersion(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	prev := postgres.LatestVersion() - 1
	if err := postgres.MigrateTo(ctx, pool, prev); err != nil {
		t.Fatal(err)
	}
	// Write a stopped run with the previous schema. This code closes runs
	// into the tenant log: lend its tables while the run is written.
	create, drop := postgres.TenantLogTables()
	if _, err := pool.Exec(ctx, create); err != nil {
		t.Fatal(err)
	}
	old := postgres.Unmigrated(pool)
	r, err := governance.NewRunner(old, governance.WithoutKillSwitch()) // as a binary before kill switches
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: storetest.Snapshot(t, "acme")})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 5}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse}); !errors.Is(err, governance.ErrPolicyViolation) {
		t.Fatalf("step 3: got %v, want a violation", err)
	}
	if _, err := pool.Exec(ctx, drop); err != nil {
		t.Fatal(err)
	}
	conn := rawConn(t, url)
	if n := count(t, conn, `SELECT COUNT(*) FROM schema_migrations`); n != prev {
		t.Fatalf("%d migrations before the upgrade, want %d", n, prev)
	}

	s := openStore(t, url)
	if n := count(t, conn, `SELECT COUNT(*) FROM schema_migrations`); n != postgres.LatestVersion() {
		t.Errorf("%d migrations after the upgrade, want %d", n, postgres.LatestVersion())
	}
	if n, err := governance.VerifyRun(ctx, s, "acme", run.ID()); err != nil || n != 6 {
		t.Errorf("VerifyRun after the upgrade: %d records, %v", n, err)
	}
	if got, err := s.Run(ctx, "acme", run.ID()); err != nil || got.Status != governance.StatusFailedPolicy || got.StepCount != 4 {
		t.Errorf("run after the upgrade: %+v %v", got, err)
	}
	// The newest migration's tables are there and work.
	if _, err := s.Ledger().Usage(ctx, prevention.Counter{TenantID: "acme", Metric: prevention.MetricCostCents,
		Window: prevention.Window{Period: prevention.PeriodDay}}, storetest.T0); err != nil {
		t.Errorf("ledger after the upgrade: %v", err)
	}
}

func TestNewWithApplicationPool(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := postgres.New(ctx, nil); err == nil {
		t.Error("New(nil pool) succeeded")
	}
	if _, err := postgres.New(ctx, pool, postgres.WithMaxConns(3)); err == nil || !strings.HasPrefix(err.Error(), "postgres: WithMaxConns(3)") {
		t.Errorf("New with WithMaxConns: %v, want an error naming the option", err)
	}
	s, err := postgres.New(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.PutSnapshot(ctx, storetest.Snapshot(t, "acme")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The application's pool is still open.
	if err := pool.Ping(ctx); err != nil {
		t.Errorf("pool closed by Store.Close: %v", err)
	}
}

func TestOpenOptions(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	tests := []struct {
		name string
		url  string
		opts []postgres.Option
		ok   bool
	}{
		{"defaults", url, nil, true},
		{"max conns", url, []postgres.Option{postgres.WithMaxConns(2)}, true},
		{"zero max conns", url, []postgres.Option{postgres.WithMaxConns(0)}, false},
		{"negative max conns", url, []postgres.Option{postgres.WithMaxConns(-1)}, false},
		{"nil option", url, []postgres.Option{nil}, false},
		{"bad url", "postgres://[::1", nil, false},
		{"unknown database", withDatabase(t, serverURL(t), "stopline_no_such_database"), nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := postgres.Open(ctx, tc.url, tc.opts...)
			if (err == nil) != tc.ok {
				t.Fatalf("Open: err %v, want ok=%v", err, tc.ok)
			}
			if err == nil {
				s.Close()
			}
		})
	}
}
