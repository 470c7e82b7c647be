package postgres_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/postgres"
	"github.com/stopline/stopline/store/storetest"
)

func TestOpenMigratesEmptyDatabase(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	openStore(t, url)
	conn := rawConn(t, url)
	rows, err := conn.Query(ctx, `SELECT version, applied_at FROM schema_migrations ORDER BY version`)
	if err != nil {
		t.Fatal(err)
	}
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
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	latest := postgres.LatestVersion()
	if len(versions) != latest || versions[0] != 1 || versions[latest-1] != latest {
		t.Errorf("schema_migrations: %v, want 1..%d", versions, latest)
	}
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
	// Write a stopped run with the previous schema.
	old := postgres.Unmigrated(pool)
	r, err := governance.NewRunner(old)
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

func TestOpenRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	openStore(t, url)
	if _, err := rawConn(t, url).Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (99, 1)`); err != nil {
		t.Fatal(err)
	}
	_, err := postgres.Open(ctx, url)
	if !errors.Is(err, postgres.ErrSchemaTooNew) {
		t.Fatalf("Open of a newer schema: got %v, want ErrSchemaTooNew", err)
	}
	for _, want := range []string{"99", fmt.Sprintf("up to %d", postgres.LatestVersion()), "stopline_test_"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
}

// Replicas starting at once on an empty database: every Open succeeds and
// each migration is applied once.
func TestConcurrentOpens(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	const n = 8
	var wg sync.WaitGroup
	stores := make([]*postgres.Store, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stores[i], errs[i] = postgres.Open(ctx, url, postgres.WithMaxConns(2))
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
	conn := rawConn(t, url)
	if got := count(t, conn, `SELECT COUNT(*) FROM schema_migrations`); got != postgres.LatestVersion() {
		t.Errorf("%d migrations recorded, want %d", got, postgres.LatestVersion())
	}
	if got := count(t, conn, `SELECT COUNT(DISTINCT version) FROM schema_migrations`); got != postgres.LatestVersion() {
		t.Errorf("%d distinct migrations recorded, want %d", got, postgres.LatestVersion())
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
	if _, err := postgres.New(ctx, pool, postgres.WithMaxConns(3)); err == nil {
		t.Error("New with WithMaxConns succeeded")
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
