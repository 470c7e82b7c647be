package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

// A Migration is one embedded migrations/NNNN_name.sql file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations reads the dialect's migrations (Schema) in version order,
// checking that they are numbered 1, 2, ... without gaps.
func (d *Dialect) Migrations() ([]Migration, error) {
	fsys := d.Schema
	names, err := fs.Glob(fsys, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	ms := make([]Migration, 0, len(names))
	for _, name := range names { // fs.Glob returns names sorted
		base := path.Base(name)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v != len(ms)+1 {
			return nil, d.errorf("migration %s is not number %d (migrations/NNNN_name.sql)", base, len(ms)+1)
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		ms = append(ms, Migration{Version: v, Name: base, SQL: string(b)})
	}
	return ms, nil
}

// SchemaVersion returns the newest migration applied to the database, 0
// for a database without any.
func (db *DB) SchemaVersion(ctx context.Context) (int, error) {
	var exists bool
	if err := db.W.QueryRow(ctx, db.SchemaTableExists).Scan(&exists); err != nil || !exists {
		return 0, err
	}
	var v int
	err := db.W.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v)
	return v, err
}

// tooNew is the error for a database at schema version cur, newer than
// the newest migration, latest.
func (db *DB) tooNew(cur, latest int) error {
	return fmt.Errorf("%w: %s is at schema version %d; this binary knows versions up to %d",
		db.ErrSchemaTooNew, db.Where, cur, latest)
}

// CheckSchema returns nil if the database is at the newest migration, an
// error matching ErrSchemaOutdated if it is older (naming both versions),
// and one matching ErrSchemaTooNew if it is newer.
func (db *DB) CheckSchema(ctx context.Context) error {
	ms, err := db.Migrations()
	if err != nil {
		return err
	}
	cur, err := db.SchemaVersion(ctx)
	if err != nil {
		return db.errorf("reading the schema version of %s: %w", db.Where, err)
	}
	switch latest := len(ms); {
	case cur > latest:
		return db.tooNew(cur, latest)
	case cur < latest:
		return fmt.Errorf("%w: %s is at schema version %d, this binary needs version %d: migrate it first",
			db.ErrSchemaOutdated, db.Where, cur, latest)
	}
	return nil
}

// Migrate brings the database up to migration upTo (0: the newest)
// and returns the version it found and the version it left. Each
// migration is applied in its own transaction (Tx), which first runs the
// dialect's LockMigrate and then reads the version again, so that several
// processes migrating at once apply each migration exactly once. A
// database newer than the newest migration is ErrSchemaTooNew, and
// nothing is written to it.
func (db *DB) Migrate(ctx context.Context, upTo int) (from, to int, err error) {
	ms, err := db.Migrations()
	if err != nil {
		return 0, 0, err
	}
	latest := len(ms)
	if upTo == 0 {
		upTo = latest
	}
	// The common case, an up-to-date database, takes no write lock.
	from, err = db.SchemaVersion(ctx)
	if err != nil {
		return 0, 0, db.errorf("reading the schema version of %s: %w", db.Where, err)
	}
	if from > latest {
		return from, from, db.tooNew(from, latest)
	}
	to = from
	for _, m := range ms[min(from, upTo):upTo] {
		err := db.Tx(ctx, func(q Querier) error {
			if db.LockMigrate != "" {
				if _, err := q.Exec(ctx, db.LockMigrate); err != nil {
					return err
				}
			}
			if _, err := q.Exec(ctx, db.CreateSchemaTable); err != nil {
				return err
			}
			var cur int
			if err := q.QueryRow(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&cur); err != nil {
				return err
			}
			switch {
			case cur > latest:
				return db.tooNew(cur, latest)
			case cur >= m.Version: // another process applied it first
				return nil
			case cur != m.Version-1:
				return fmt.Errorf("schema version %d, cannot apply migration %d", cur, m.Version)
			}
			if _, err := q.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := q.Exec(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)`,
				int64(m.Version), time.Now().UnixNano())
			return err
		})
		if err != nil {
			if errors.Is(err, db.ErrSchemaTooNew) {
				return from, to, err
			}
			return from, to, db.errorf("applying migration %s to %s: %w", m.Name, db.Where, err)
		}
		to = m.Version
	}
	return from, to, nil
}
