package postgres

import (
	"github.com/stopline/stopline/internal/changes"

	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stopline/stopline/internal/sqlstore"
)

// Store is the PostgreSQL governance.Store. It is safe for concurrent use,
// and any number of Stores, in any number of processes, may share one
// database: every check that keeps the record consistent is made by the
// database inside the statement that writes.
type Store struct {
	pool   *pgxpool.Pool
	owned  bool // Open made the pool, so Close closes it
	db     sqlstore.DB
	ledger *sqlstore.Ledger

	// appends sends the AppendSteps waiting at one moment in one round
	// trip (group.go).
	appends appendQueue

	// hub signals changes to holds and kill switches (operator.go);
	// listen feeds it from LISTEN stopline_operator (listen.go).
	hub    changes.Hub
	listen listener

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
//   - migrations applied on open; WithoutMigrate refuses a database that
//     is not at the newest schema (ErrSchemaOutdated) instead.
//
// Migrations are applied one transaction each under an advisory lock, so
// several replicas may open the same database at once; a database
// migrated by a newer version of this package is refused with an error
// matching ErrSchemaTooNew. An invalid option is an error here, naming
// it, not on first use.
func Open(ctx context.Context, url string, opts ...Option) (*Store, error) {
	cfg, err := newConfig(opts, false)
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
	s, err := newStore(ctx, pool, true, cfg)
	if err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// New returns a Store over the application's own pool, after migrating
// the database's schema as Open does (unless WithoutMigrate). Close does
// not close the pool. The pool's connections must use the schema the
// Store's tables are in (search_path) and must not run inside a
// transaction the application holds open. WithMaxConns is refused: the
// application sized its pool.
func New(ctx context.Context, pool *pgxpool.Pool, opts ...Option) (*Store, error) {
	if pool == nil {
		return nil, errors.New("postgres: New: nil pool")
	}
	cfg, err := newConfig(opts, true)
	if err != nil {
		return nil, err
	}
	return newStore(ctx, pool, false, cfg)
}

func newStore(ctx context.Context, pool *pgxpool.Pool, owned bool, cfg config) (*Store, error) {
	s := build(pool, owned)
	if err := pool.Ping(ctx); err != nil {
		return nil, fmt.Errorf("postgres: connecting to %s: %w", s.db.Where, err)
	}
	var err error
	if cfg.migrate {
		_, _, err = s.db.Migrate(ctx, 0)
	} else {
		err = s.db.CheckSchema(ctx)
	}
	if err != nil {
		return nil, err
	}
	return s, nil
}

// build returns a Store over pool, without touching the database.
func build(pool *pgxpool.Pool, owned bool) *Store {
	s := &Store{pool: pool, owned: owned}
	q := querier{pool}
	s.db = sqlstore.DB{
		Dialect: dialect,
		Where:   dbName(pool),
		R:       q,
		W:       q,
		Tx: func(ctx context.Context, fn func(sqlstore.Querier) error) error {
			return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error { return fn(querier{tx}) })
		},
	}
	s.ledger = sqlstore.NewLedger(&s.db, s.chargeRolling)
	return s
}

// dbName names the pool's database in errors (never its password).
func dbName(pool *pgxpool.Pool) string {
	cc := pool.Config().ConnConfig
	return fmt.Sprintf("database %q on %s:%d", cc.Database, cc.Host, cc.Port)
}

// Close closes the pool if Open created it, waiting for queries in
// progress; it leaves a pool given to New open. Methods called after
// Close fail. It always returns nil; calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.listen.stop()
		if s.owned {
			s.pool.Close()
		}
	})
	return nil
}

// Pool returns the Store's connection pool.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }
