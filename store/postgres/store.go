package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stopline/stopline/governance"
)

var _ governance.Store = (*Store)(nil)

// Store is the PostgreSQL governance.Store. It is safe for concurrent use,
// and any number of Stores, in any number of processes, may share one
// database: every check that keeps the record consistent is made by the
// database inside the statement that writes.
type Store struct {
	pool  *pgxpool.Pool
	owned bool // Open made the pool, so Close closes it
	name  string

	closeOnce sync.Once
}

// Open connects to the database at url (a PostgreSQL URL or key=value
// connection string, as pgxpool.ParseConfig reads it), migrates its schema
// to the newest version embedded in this package, and returns a Store
// over a new connection pool that Close closes.
//
// Defaults, each changed by an Option:
//   - WithMaxConns: pgxpool's pool size (the URL's pool_max_conns, else
//     the greater of 4 and the number of CPUs).
//
// Migrations are applied one transaction each under an advisory lock, so
// several replicas may open the same database at once; a database
// migrated by a newer version of this package is refused with an error
// matching ErrSchemaTooNew. An invalid option is an error here, not on
// first use.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	pc, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: parsing the connection string: %w", err)
	}
	if cfg.maxConns > 0 {
		pc.MaxConns = cfg.maxConns
		pc.MinConns = min(pc.MinConns, pc.MaxConns)
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: creating the connection pool: %w", err)
	}
	s, err := newStore(ctx, pool, true)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// New returns a Store over the application's own pool, after migrating
// the database's schema as Open does. Close does not close the pool. The
// pool's connections must use the schema the Store's tables are in
// (search_path) and must not run inside a transaction the application
// holds open. WithMaxConns is refused: the application sized its pool.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	if pool == nil {
		return nil, errors.New("postgres: New: nil pool")
	}
	cfg, err := newConfig(opts)
	if err != nil {
		return nil, err
	}
	if cfg.maxConns != 0 {
		return nil, errors.New("postgres: New: WithMaxConns applies to the pool Open creates, not to the application's pool")
	}
	return newStore(ctx, pool, false)
}

func newStore(ctx context.Context, pool *pgxpool.Pool, owned bool) (*Store, error) {
	s := &Store{pool: pool, owned: owned, name: dbName(pool)}
	if err := pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("postgres: connecting to %s: %w", s.name, err)
	}
	if err := migrate(ctx, pool, 0); err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the pool if Open created it, waiting for queries in
// progress; it leaves a pool given to New open. Methods called after
// Close fail. It always returns nil; calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if s.owned {
			s.pool.Close()
		}
	})
	return nil
}

// Pool returns the Store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// querier is what *pgxpool.Pool and pgx.Tx both offer.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// SQLSTATEs the store maps to governance errors. Class SL is raised by the
// schema's triggers (migrations/0001_init.sql).
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeImmutable           = "SL001"
	codeRunEnded            = "SL002"
	codeIncidentBackwards   = "SL003"
	codeChainBroken         = "SL004"
	codeNoSuchRun           = "SL005"
)

// pgError returns err's server error, if it has one.
func pgError(err error) (*pgconn.PgError, bool) {
	var pe *pgconn.PgError
	ok := errors.As(err, &pe)
	return pe, ok
}

// hasCode reports whether err is a server error with the given SQLSTATE
// (and, if constraint is not empty, on that constraint).
func hasCode(err error, code, constraint string) bool {
	pe, ok := pgError(err)
	return ok && pe.Code == code && (constraint == "" || pe.ConstraintName == constraint)
}

// Tenants lists every tenant that has runs or policy versions, sorted.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT tenant_id FROM runs UNION SELECT tenant_id FROM policy_versions ORDER BY 1`)
	if err != nil {
		return nil, fmt.Errorf("postgres: listing tenants: %w", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("postgres: listing tenants: %w", err)
	}
	return out, nil
}
