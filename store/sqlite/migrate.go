package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

// ErrSchemaTooNew is matched when the database was migrated by a newer
// version of this package than the running one: Open refuses it rather
// than write rows an older schema does not describe.
var ErrSchemaTooNew = errors.New("sqlite: database schema is newer than this binary")

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
		if !ok || err != nil || v < 1 {
			return nil, fmt.Errorf("sqlite: migration file %s is not named NNNN_name.sql", base)
		}
		if v != len(ms)+1 {
			return nil, fmt.Errorf("sqlite: migration %s: want version %d", base, len(ms)+1)
		}
		b, err := migrationFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	return ms, nil
}

const createMigrationsTable = `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
) STRICT`

// migrate brings the database at file up to the newest embedded schema,
// one BEGIN IMMEDIATE transaction per migration, so that several handles
// or processes opening the same file at once apply each migration exactly
// once. A database newer than the newest migration is ErrSchemaTooNew.
func migrate(ctx context.Context, db *sql.DB, file string) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	latest := len(ms)
	tooNew := func(cur int) error {
		return fmt.Errorf("%w: %s is at schema version %d; this binary knows versions up to %d",
			ErrSchemaTooNew, file, cur, latest)
	}

	// The common case, an up-to-date file, needs no write lock.
	cur, err := schemaVersion(ctx, db)
	if err != nil {
		return fmt.Errorf("sqlite: reading schema version of %s: %w", file, err)
	}
	if cur > latest {
		return tooNew(cur)
	}
	for _, m := range ms[cur:] {
		err := inTx(ctx, db, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, createMigrationsTable); err != nil {
				return err
			}
			var cur int
			if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
				return err
			}
			switch {
			case cur > latest:
				return tooNew(cur)
			case cur >= m.version: // another handle applied it first
				return nil
			case cur != m.version-1:
				return fmt.Errorf("schema version %d, cannot apply migration %d", cur, m.version)
			}
			if _, err := tx.ExecContext(ctx, m.sql); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`,
				m.version, time.Now().UnixNano())
			return err
		})
		if errors.Is(err, ErrSchemaTooNew) {
			return err
		}
		if err != nil {
			return fmt.Errorf("sqlite: applying migration %s to %s: %w", m.name, file, err)
		}
	}
	return nil
}

// schemaVersion returns the newest applied migration, 0 for a new file.
func schemaVersion(ctx context.Context, db *sql.DB) (int, error) {
	var n int
	err := db.QueryRowContext(ctx,
		`SELECT COUNT(*) FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'`).Scan(&n)
	if err != nil || n == 0 {
		return 0, err
	}
	var v int
	err = db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}
