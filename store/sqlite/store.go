package sqlite

import (
	"github.com/stopline/stopline/internal/changes"

	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mattn/go-sqlite3" // registers the "sqlite3" database/sql driver

	"github.com/stopline/stopline/internal/sqlstore"
)

// Store is the SQLite governance.Store. It is safe for concurrent use.
//
// All writes go through one connection, in BEGIN IMMEDIATE transactions
// or single statements, so writers never race for SQLite's one write lock
// (and never see "database is locked" from each other); reads use a pool
// of query-only connections that WAL lets run while the writer commits.
type Store struct {
	file   string
	w      *sql.DB // exactly one connection: every write
	ownsW  bool    // Open made w, so Close closes it
	r      *sql.DB // query-only pool: every read
	rb     rebinder
	db     sqlstore.DB
	ledger *sqlstore.Ledger

	insertRecord *sql.Stmt // on w; a step's INSERT (see insertStep)
	// prepared holds the statements of a tenant log's append, prepared
	// on w at open, by their rebound text: the transactions of w run
	// them (querier.stmt). They cannot be prepared later, on demand:
	// the transaction that needs one holds w's only connection.
	prepared map[string]*sql.Stmt

	// group is the queue that AppendStep, CreateRun and CloseRun join:
	// the writes waiting at one moment share a transaction (group.go).
	group group

	// heads holds the chain head of each open run this handle has
	// written or read: AppendStep checks a record against it instead of
	// reading the database. A stale head (another handle appended) only
	// makes this handle pick a seq that is taken, which the primary key
	// refuses; it can never let a record break the chain. It changes only
	// with a commit (group.go), under headsMu, which the batch being
	// written holds.
	headsMu sync.Mutex
	heads   map[runKey]sqlstore.Head
	commits atomic.Int64 // transactions of the queue committed, for the benchmarks

	closeOnce sync.Once
	closeErr  error

	// hub signals the changes to holds and kill switches made through
	// this handle (operator.go).
	hub changes.Hub
}

// Open opens (creating it if needed) the SQLite database at path and
// migrates its schema to the newest version embedded in this package,
// each migration in its own transaction. Several handles and processes
// may open the same file at once. A file migrated by a newer version of
// this package is refused with an error matching ErrSchemaTooNew.
//
// Defaults, each changed by an Option:
//   - WithSynchronous(Full): WAL journal, synchronous=FULL, one fsync per
//     commit, so every acknowledged step survives power loss.
//   - WithBusyTimeout(5 * time.Second): how long to wait for a lock held
//     by another handle or process on the same file.
//   - migrations applied on open; WithoutMigrate refuses a file that is
//     not at the newest schema (ErrSchemaOutdated) instead.
//
// Always, whatever the options: foreign keys are enforced; writes go
// through one connection (multi-statement writes in BEGIN IMMEDIATE
// transactions: _txlock=immediate); reads use up to max(4, GOMAXPROCS)
// query-only connections.
//
// path is a file name, not a URI; ":memory:" is refused because the write
// connection and the read pool would each see a database of their own.
// An invalid option is an error here, naming it, not on first use.
func Open(ctx context.Context, path string, opts ...Option) (*Store, error) {
	cfg, err := newConfig(opts, false)
	if err != nil {
		return nil, err
	}
	if path == "" || path == ":memory:" || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: %q is not a database file name", path)
	}
	file, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("sqlite: %s: %w", path, err)
	}
	w, err := sql.Open("sqlite3", dsn(file, url.Values{
		"_journal_mode": {"WAL"},
		"_synchronous":  {cfg.sync.String()},
		"_busy_timeout": {strconv.FormatInt(cfg.busyTimeoutMillis(), 10)},
		"_foreign_keys": {"1"},
		"_txlock":       {"immediate"},
	}))
	if err != nil {
		return nil, fmt.Errorf("sqlite: opening %s: %w", file, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	return open(ctx, w, true, file, cfg)
}

// open makes a Store whose write connection is w (closed on failure if
// owned), on file: it brings the schema up to date (or checks it), then
// opens the read pool and prepares the step INSERT.
func open(ctx context.Context, w *sql.DB, owned bool, file string, cfg config) (*Store, error) {
	s := &Store{file: file, w: w, ownsW: owned, heads: map[runKey]sqlstore.Head{}}
	s.db = sqlstore.DB{
		Dialect: dialect,
		Where:   file,
		// W's prep is set once prepared (open's end): its Batch runs in
		// transactions of w.
		W:  querier{q: w, db: w, rb: &s.rb},
		Tx: s.write,
	}
	s.ledger = sqlstore.NewLedger(&s.db, s.chargeRolling)
	fail := func(err error) (*Store, error) {
		s.closeAll()
		return nil, err
	}
	// Switching a new file to WAL takes an exclusive lock, and SQLite
	// reports a conflicting open as busy at once, without waiting in the
	// busy handler: retry for as long as the busy timeout allows.
	if err := retryBusy(ctx, cfg.busyTimeoutMillis(), func() error {
		if err := w.PingContext(ctx); err != nil {
			return fmt.Errorf("sqlite: opening %s: %w", file, err)
		}
		return s.migrate(ctx, cfg.migrate, cfg.migrateTo)
	}); err != nil {
		return fail(err)
	}

	var err error
	s.r, err = sql.Open("sqlite3", dsn(file, url.Values{
		"_busy_timeout": {strconv.FormatInt(cfg.busyTimeoutMillis(), 10)},
		"_query_only":   {"1"},
	}))
	if err != nil {
		return fail(fmt.Errorf("sqlite: opening %s: %w", file, err))
	}
	readers := max(4, runtime.GOMAXPROCS(0))
	s.r.SetMaxOpenConns(readers)
	s.r.SetMaxIdleConns(readers)
	if err := s.r.PingContext(ctx); err != nil {
		return fail(fmt.Errorf("sqlite: opening %s: %w", file, err))
	}
	s.db.R = querier{q: s.r, db: s.r, rb: &s.rb}

	s.insertRecord, err = w.PrepareContext(ctx, s.rb.rebind(sqlstore.InsertRecordSQL))
	if err != nil {
		return fail(fmt.Errorf("sqlite: preparing statements on %s: %w", file, err))
	}
	s.prepared = make(map[string]*sql.Stmt, len(sqlstore.TenantLogAppendSQL))
	appendSQL := sqlstore.TenantLogAppendSQL
	if cfg.migrateTo != 0 {
		appendSQL = nil // an older schema, written by tests: the log's tables may not exist
	}
	for _, q := range appendSQL {
		q = s.rb.rebind(q)
		st, err := w.PrepareContext(ctx, q)
		if err != nil {
			return fail(fmt.Errorf("sqlite: preparing statements on %s: %w", file, err))
		}
		s.prepared[q] = st
	}
	s.db.W = querier{q: w, db: w, prep: s.prepared, rb: &s.rb}
	return s, nil
}

// dsn returns the go-sqlite3 data source name of file with params: a
// file: URI, so that any file name (with '?' or '#' in it) is taken
// literally.
func dsn(file string, params url.Values) string {
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(file))
	if !strings.HasPrefix(esc, "/") {
		esc = "/" + esc // a Windows drive letter: file:/C:/...
	}
	return "file:" + esc + "?" + params.Encode()
}

// Close closes the connections the Store opened, waiting for queries in
// progress (a *sql.DB given to New stays open); methods called after
// Close fail. Calling Close again returns the first call's result.
func (s *Store) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.closeAll() })
	return s.closeErr
}

func (s *Store) closeAll() error {
	var errs []error
	if s.insertRecord != nil {
		errs = append(errs, s.insertRecord.Close())
	}
	for _, st := range s.prepared {
		errs = append(errs, st.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	if s.ownsW {
		errs = append(errs, s.w.Close())
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sqlite: closing %s: %w", s.file, err)
	}
	return nil
}

// inTx runs fn in a transaction of db, which for the write connection is
// BEGIN IMMEDIATE (the DSN's _txlock): it takes the write lock before its
// first read, so a read-then-write never fails with "database is locked".
func inTx(ctx context.Context, db *sql.DB, fn func(tx *sql.Tx) error) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback() // the error that matters is fn's
		return err
	}
	return tx.Commit()
}

// write runs fn in a BEGIN IMMEDIATE transaction of the write connection.
func (s *Store) write(ctx context.Context, fn func(q sqlstore.Querier) error) error {
	return inTx(ctx, s.w, func(tx *sql.Tx) error { return fn(s.txQuerier(tx)) })
}

// txQuerier is the querier of tx, a transaction of the write connection,
// which runs the statements prepared at open as such.
func (s *Store) txQuerier(tx *sql.Tx) querier {
	return querier{q: tx, tx: tx, prep: s.prepared, rb: &s.rb}
}

// retryBusy calls f until it succeeds, fails with something other than
// SQLITE_BUSY/SQLITE_LOCKED, or timeoutMillis have passed.
func retryBusy(ctx context.Context, timeoutMillis int64, f func() error) error {
	deadline := time.Now().Add(time.Duration(timeoutMillis) * time.Millisecond)
	wait := 2 * time.Millisecond
	for {
		err := f()
		se, ok := sqliteError(err)
		if err == nil || !ok || (se.Code != sqlite3.ErrBusy && se.Code != sqlite3.ErrLocked) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
		wait = min(2*wait, 100*time.Millisecond)
	}
}
