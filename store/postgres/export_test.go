package postgres

import (
	"context"
	"fmt"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stopline/stopline/governance"
)

// Hooks for the black-box tests.

// MigrateTo applies the embedded migrations up to version v only.
func MigrateTo(ctx context.Context, pool *pgxpool.Pool, v int) error {
	_, _, err := migrateTo(ctx, pool, v)
	return err
}

// LatestVersion is the number of embedded migrations.
func LatestVersion() int {
	ms, err := dialect.Migrations()
	if err != nil {
		panic(err)
	}
	return len(ms)
}

// Unmigrated returns a Store over pool without touching its schema.
func Unmigrated(pool *pgxpool.Pool) *Store { return build(pool, false) }

// BatchAppends turns on (the default) or off sending the AppendSteps
// waiting at one moment in one round trip (group.go); off, every step is
// sent alone, as the Store did before.
func BatchAppends(s *Store, on bool) { s.appends.off = !on }

// CloseRunUnpipelined is CloseRun as the Store made it before it was
// pipelined: BEGIN, the status read, the writes and COMMIT, each in a
// round trip of its own.
func CloseRunUnpipelined(s *Store, ctx context.Context, c governance.Close) error {
	return s.db.CloseRun(ctx, c)
}

// AppendsQueued is how many AppendSteps are in s's queue (the batch being
// sent included).
func AppendsQueued(s *Store) int {
	s.appends.mu.Lock()
	defer s.appends.mu.Unlock()
	return len(s.appends.queue)
}

// TenantLogTables is the SQL of the migration that creates the tenant
// log's tables, whatever its number, and the SQL that drops them.
func TenantLogTables() (create, drop string) {
	names, err := fs.Glob(schema, "migrations/*_tenant_log.sql")
	if err != nil || len(names) != 1 {
		panic(fmt.Sprint("the tenant log's migration: ", names, err))
	}
	b, err := fs.ReadFile(schema, names[0])
	if err != nil {
		panic(err)
	}
	return string(b), `DROP TABLE tenant_logs; DROP TABLE tenant_log_leaves; DROP TABLE tenant_log_hashes;
		DROP FUNCTION stopline_tenant_logs_grow()`
}

// WithoutTenantLog makes s append nothing to the tenant log (the
// benchmarks' baseline).
func WithoutTenantLog(s *Store) { s.db.NoTenantLog = true }
