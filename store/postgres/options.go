package postgres

import (
	"fmt"

	"github.com/stopline/stopline/internal/sqlstore"
)

// Option configures Open or New. An invalid option makes them fail with
// an error that names it.
type Option func(*config) error

type config struct {
	maxConns int32 // 0: pgxpool's default (or the URL's pool_max_conns)
	migrate  bool
	forNew   bool // the options are New's
}

// WithMaxConns sets the size of the connection pool Open creates (by
// default pgxpool's: the URL's pool_max_conns, else the greater of 4 and
// the number of CPUs). It must be positive. New refuses it: the
// application sized its own pool.
func WithMaxConns(n int) Option {
	return func(c *config) error {
		switch {
		case c.forNew:
			return fmt.Errorf("postgres: WithMaxConns(%d): New uses the application's pool, which the application sized", n)
		case n <= 0 || n > 1<<20:
			return fmt.Errorf("postgres: WithMaxConns(%d): want a positive pool size", n)
		}
		c.maxConns = int32(n)
		return nil
	}
}

// WithoutMigrate makes Open and New leave the schema alone: a database
// that is not at the newest schema version this package knows is refused
// with an error matching ErrSchemaOutdated, naming both versions, for an
// operator to run Migrate (or `stopline migrate`) first. A newer schema
// is ErrSchemaTooNew either way.
func WithoutMigrate() Option {
	return func(c *config) error {
		c.migrate = false
		return nil
	}
}

func newConfig(opts []Option, forNew bool) (config, error) {
	c := config{migrate: true, forNew: forNew}
	return c, sqlstore.Configure("postgres", &c, opts)
}
