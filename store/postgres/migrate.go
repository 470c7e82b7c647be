package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Schema errors.
var (
	// ErrSchemaTooNew is matched when the database was migrated by a
	// newer version of this package than the running one: Open, New and
	// Migrate refuse it rather than write rows an older schema does not
	// describe.
	ErrSchemaTooNew = errors.New("postgres: database schema is newer than this binary")
	// ErrSchemaOutdated is matched when Open or New with WithoutMigrate
	// finds a database at an older schema version than this package's;
	// the error names both versions. Migrate brings it up to date.
	ErrSchemaOutdated = errors.New("postgres: database schema is older than this binary")
)

// Migrate brings the schema of the database pool connects to up to the
// newest version embedded in this package, and returns the version it
// found and the one it left (equal when there was nothing to do). Each
// migration is applied in its own transaction that first takes a
// transaction-level advisory lock (pg_advisory_xact_lock), so replicas
// and operators migrating at once apply each migration exactly once, the
// others waiting; a database newer than this package is refused with
// ErrSchemaTooNew and left alone. Open and New migrate by themselves
// unless given WithoutMigrate.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (from, to int, err error) {
	if pool == nil {
		return 0, 0, errors.New("postgres: Migrate: nil pool")
	}
	return migrateTo(ctx, pool, 0)
}

// migrateTo applies the embedded migrations up to version upTo (0: all).
func migrateTo(ctx context.Context, pool *pgxpool.Pool, upTo int) (from, to int, err error) {
	return build(pool, false).db.Migrate(ctx, upTo)
}
