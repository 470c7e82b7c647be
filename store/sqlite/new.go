package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/mattn/go-sqlite3"
)

// New returns a Store whose writes go through the application's own
// *sql.DB, for an application that opens and configures its database
// itself (its driver registration, its connect hooks, its file). It
// migrates the schema as Open does (unless WithoutMigrate), and opens a
// pool of query-only connections on the same file for reads; Close closes
// that pool and leaves db open.
//
// A Store keeps its guarantees only over a connection set up as Open sets
// up its own, so New checks db and refuses, with an error saying what to
// change, anything else:
//
//   - the driver is github.com/mattn/go-sqlite3's, on a file (not
//     ":memory:", not a temporary database);
//   - db.SetMaxOpenConns(1): the Store is the file's single writer in this
//     process, and writes queue for that one connection (db's other users
//     queue with them);
//   - the DSN sets _journal_mode=WAL, _synchronous=FULL (or NORMAL with
//     WithSynchronous(Normal); a stronger mode is accepted),
//     _foreign_keys=1 and _txlock=immediate (New begins a transaction
//     while a second connection holds the write lock: it must wait for
//     the lock, as BEGIN IMMEDIATE does), and not _query_only. These must
//     come from the DSN, not from statements run on one connection, so
//     that a connection database/sql opens again has them too.
//
// The busy timeout is the DSN's (_busy_timeout); the read pool uses the
// same. WithBusyTimeout is refused. For example:
//
//	db, err := sql.Open("sqlite3", "file:/var/lib/app/stopline.db?_journal_mode=WAL&_synchronous=FULL"+
//		"&_foreign_keys=1&_txlock=immediate&_busy_timeout=5000")
//	db.SetMaxOpenConns(1)
//	st, err := sqlite.New(ctx, db)
func New(ctx context.Context, db *sql.DB, opts ...Option) (*Store, error) {
	cfg, err := newConfig(opts, true)
	if err != nil {
		return nil, err
	}
	file, busy, err := checkWriter(ctx, db, cfg.sync)
	if err != nil {
		return nil, err
	}
	cfg.busyTimeout = busy
	return open(ctx, db, false, file, cfg)
}

// checkWriter checks that db can be a Store's write connection (see New)
// and returns its file and busy timeout.
func checkWriter(ctx context.Context, db *sql.DB, want Synchronous) (file string, busy time.Duration, err error) {
	fail := func(format string, args ...any) (string, time.Duration, error) {
		return "", 0, fmt.Errorf("sqlite: New: "+format, args...)
	}
	if err := checkDriver(db); err != nil {
		return fail("%w", err)
	}
	if n := db.Stats().MaxOpenConnections; n != 1 {
		many := "any number of"
		if n > 1 {
			many = fmt.Sprint(n)
		}
		return fail("the *sql.DB may open %s connections; the Store writes through exactly one: call SetMaxOpenConns(1)", many)
	}
	if file, err = mainFile(ctx, db); err != nil {
		return "", 0, err
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return fail("%w", err)
	}
	defer conn.Close()
	var (
		mode                 string
		sync, fk, ro, busyMS int
	)
	for _, p := range []struct {
		pragma string
		dest   any
	}{{"journal_mode", &mode}, {"synchronous", &sync}, {"foreign_keys", &fk}, {"query_only", &ro}, {"busy_timeout", &busyMS}} {
		if err := conn.QueryRowContext(ctx, "PRAGMA "+p.pragma).Scan(p.dest); err != nil {
			return fail("PRAGMA %s: %w", p.pragma, err)
		}
	}
	switch {
	case !strings.EqualFold(mode, "wal"):
		return fail("%s is in journal mode %s: add _journal_mode=WAL to the DSN", file, mode)
	case sync < want.pragma():
		return fail("the connection runs with synchronous=%d, weaker than %v: add _synchronous=%v to the DSN (or pass WithSynchronous(Normal))", sync, want, want)
	case fk != 1:
		return fail("foreign keys are off: add _foreign_keys=1 to the DSN")
	case ro != 0:
		return fail("the connection is query-only: a Store writes through it")
	}
	if err := checkImmediate(ctx, conn, file, busyMS); err != nil {
		return "", 0, err
	}
	return file, time.Duration(busyMS) * time.Millisecond, nil
}

// checkImmediate checks that conn's transactions begin IMMEDIATE: while a
// second connection holds the file's write lock, BEGIN on conn (with its
// busy timeout set to 0 meanwhile) must fail as busy. A DEFERRED BEGIN
// takes no lock and succeeds.
func checkImmediate(ctx context.Context, conn *sql.Conn, file string, busyMS int) error {
	probe, err := sql.Open("sqlite3", dsn(file, url.Values{"_busy_timeout": {fmt.Sprint(busyMS)}}))
	if err != nil {
		return fmt.Errorf("sqlite: New: %w", err)
	}
	defer probe.Close()
	pc, err := probe.Conn(ctx)
	if err != nil {
		return fmt.Errorf("sqlite: New: %w", err)
	}
	defer pc.Close()
	if _, err := pc.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("sqlite: New: taking the write lock of %s: %w", file, err)
	}
	defer pc.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")

	if _, err := conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		return fmt.Errorf("sqlite: New: %w", err)
	}
	tx, berr := conn.BeginTx(ctx, nil)
	if berr == nil {
		berr = tx.Rollback()
		if berr == nil {
			berr = errors.New("the *sql.DB begins transactions DEFERRED: add _txlock=immediate to the DSN, so that a write transaction takes the write lock before it reads")
		}
	} else if se, ok := sqliteError(berr); ok && se.Code == sqlite3.ErrBusy {
		berr = nil // BEGIN IMMEDIATE asked for the lock: as it should
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", busyMS)); err != nil {
		// Do not leave a connection that gives up on locks at once.
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		return fmt.Errorf("sqlite: New: restoring the busy timeout: %w", err)
	}
	if berr != nil {
		return fmt.Errorf("sqlite: New: %w", berr)
	}
	return nil
}

// checkDriver checks that db is a database of github.com/mattn/go-sqlite3.
func checkDriver(db *sql.DB) error {
	if db == nil {
		return errors.New("nil *sql.DB")
	}
	if _, ok := db.Driver().(*sqlite3.SQLiteDriver); !ok {
		return fmt.Errorf("the *sql.DB's driver is %T, not github.com/mattn/go-sqlite3's", db.Driver())
	}
	return nil
}

// mainFile returns the file of db's main database, or an error for a
// database that has none (in memory, temporary).
func mainFile(ctx context.Context, db *sql.DB) (string, error) {
	rows, err := db.QueryContext(ctx, "PRAGMA database_list")
	if err != nil {
		return "", fmt.Errorf("sqlite: reading the database's file: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			seq        int
			name, file string
		)
		if err := rows.Scan(&seq, &name, &file); err != nil {
			return "", fmt.Errorf("sqlite: reading the database's file: %w", err)
		}
		if name == "main" && file != "" {
			return file, nil
		}
	}
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("sqlite: reading the database's file: %w", err)
	}
	return "", errors.New("sqlite: the database is not a file (in memory or temporary): a Store needs one, which its read connections open too")
}
