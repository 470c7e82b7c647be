package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrSchemaTooNew is matched when the database was migrated by a newer
// version of this package than the running one: Open and New refuse it
// rather than write rows an older schema does not describe.
var ErrSchemaTooNew = errors.New("postgres: database schema is newer than this binary")

//go:embed migrations/*.sql
var migrationFiles embed.FS

// A migration is one embedded migrations/NNNN_name.sql file.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations returns the embedded migrations in version order, checking
// that they are numbered 1, 2, ... without gaps.
func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	ms := make([]migration, 0, len(names))
	for _, name := range names { // fs.Glob returns names sorted
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(ms)+1 {
			return nil, fmt.Errorf("postgres: migration %s is not number %d", base, len(ms)+1)
		}
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	return ms, nil
}

// Advisory lock keys (the two-int4 form, class and key). Transaction-level
// locks only: they are released by COMMIT or ROLLBACK, so a replica that
// dies holding one never blocks the others.
const (
	lockClassMigrate int32 = 0x73746c00 + iota // key 0: schema migrations
	lockClassPublish                           // key hashtext(tenant): policy versions
	lockClassLedger                            // key hashtext(tenant, counter): rolling windows
)

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    applied_at bigint  NOT NULL
)`

// migrate brings the database up to migration upTo (0: the newest
// embedded one). Each migration is applied in its own transaction that
// first takes a transaction-level advisory lock, so that several replicas
// starting at once apply each migration exactly once and the others wait
// for it. A database newer than the newest migration is ErrSchemaTooNew.
func migrate(ctx context.Context, pool *pgxpool.Pool, upTo int) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	latest := len(ms)
	if upTo == 0 {
		upTo = latest
	}
	tooNew := func(cur int) error {
		return fmt.Errorf("%w: %s is at schema version %d; this binary knows versions up to %d",
			ErrSchemaTooNew, dbName(pool), cur, latest)
	}
	// The common case, an up-to-date database, takes no lock.
	cur, err := schemaVersion(ctx, pool)
	if err != nil {
		return fmt.Errorf("postgres: reading the schema version of %s: %w", dbName(pool), err)
	}
	if cur > latest {
		return tooNew(cur)
	}
	for _, m := range ms[min(cur, upTo):upTo] {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, 0)`, lockClassMigrate); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, createMigrationsTable); err != nil {
				return err
			}
			var cur int
			if err := tx.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
				return err
			}
			switch {
			case cur > latest:
				return tooNew(cur)
			case cur >= m.version: // another replica applied it first
				return nil
			case cur != m.version-1:
				return fmt.Errorf("schema version %d, cannot apply migration %d", cur, m.version)
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				m.version, time.Now().UnixNano())
			return err
		})
		if errors.Is(err, ErrSchemaTooNew) {
			return err
		}
		if err != nil {
			return fmt.Errorf("postgres: applying migration %s to %s: %w", m.name, dbName(pool), err)
		}
	}
	return nil
}

// schemaVersion returns the newest applied migration, 0 for a new database.
func schemaVersion(ctx context.Context, q querier) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass('schema_migrations') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// dbName names the pool's database in errors (never its password).
func dbName(pool *pgxpool.Pool) string {
	cc := pool.Config().ConnConfig
	return fmt.Sprintf("database %q on %s:%d", cc.Database, cc.Host, cc.Port)
}
