package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/stopline/stopline/internal/sqlstore"
)

// Schema errors.
var (
	// ErrSchemaTooNew is matched when the database was migrated by a
	// newer version of this package than the running one: Open, New and
	// Migrate refuse it rather than write rows an older schema does not
	// describe.
	ErrSchemaTooNew = errors.New("sqlite: database schema is newer than this binary")
	// ErrSchemaOutdated is matched when Open or New with WithoutMigrate
	// finds a database at an older schema version than this package's;
	// the error names both versions. Migrate brings it up to date.
	ErrSchemaOutdated = errors.New("sqlite: database schema is older than this binary")
)

// migrate brings s's file up to the newest embedded schema (or, without
// apply, checks that it is there), one BEGIN IMMEDIATE transaction per
// migration, so that several handles or processes opening the same file
// at once apply each migration exactly once.
func (s *Store) migrate(ctx context.Context, apply bool, upTo int) error {
	if !apply {
		return s.db.CheckSchema(ctx)
	}
	_, _, err := s.db.Migrate(ctx, upTo)
	return err
}

// Migrate brings the schema of the SQLite database db up to the newest
// version embedded in this package, and returns the version it found
// and the one it left (equal when there was nothing to do). Each
// migration is applied in its own transaction, exactly once however many
// handles and processes migrate or open the file at once: a migration
// that finds the file busy is retried for up to 5 seconds. A database
// newer than this package is refused with ErrSchemaTooNew and left alone.
//
// db must be a github.com/mattn/go-sqlite3 database on a file; Stores open
// on it may stay open (they run the new schema only after reopening).
// Open and New migrate by themselves unless given WithoutMigrate.
func Migrate(ctx context.Context, db *sql.DB) (from, to int, err error) {
	if err := checkDriver(db); err != nil {
		return 0, 0, fmt.Errorf("sqlite: Migrate: %w", err)
	}
	file, err := mainFile(ctx, db)
	if err != nil {
		return 0, 0, err
	}
	rb := &rebinder{}
	m := sqlstore.DB{Dialect: dialect, Where: file, W: querier{q: db, db: db, rb: rb},
		Tx: func(ctx context.Context, fn func(sqlstore.Querier) error) error {
			return inTx(ctx, db, func(tx *sql.Tx) error { return fn(querier{q: tx, rb: rb}) })
		}}
	err = retryBusy(ctx, 5000, func() error {
		from, to, err = m.Migrate(ctx, 0)
		return err
	})
	return from, to, err
}
