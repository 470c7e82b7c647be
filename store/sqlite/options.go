package sqlite

import (
	"fmt"
	"math"
	"time"

	"github.com/stopline/stopline/internal/sqlstore"
)

// Synchronous is the durability mode of a Store: how hard a commit works
// to reach the disk before the method that made it returns.
type Synchronous int

// Durability modes. Both run the database in WAL mode.
const (
	// Full (the default) is synchronous=FULL: every commit (every step)
	// is fsynced to the write-ahead log before the method returns, so
	// a step the agent was told about survives power loss.
	Full Synchronous = iota + 1
	// Normal is synchronous=NORMAL: commits are fsynced only at WAL
	// checkpoints. It may lose the last commits on power loss (never on
	// a crash of the process alone) and never corrupts the database.
	Normal
)

func (s Synchronous) String() string {
	switch s {
	case Full:
		return "FULL"
	case Normal:
		return "NORMAL"
	}
	return fmt.Sprintf("Synchronous(%d)", int(s))
}

// pragma is the value PRAGMA synchronous reports for s.
func (s Synchronous) pragma() int {
	if s == Normal {
		return 1
	}
	return 2
}

// Option configures Open or New. An invalid option makes them fail with
// an error that names it.
type Option func(*config) error

type config struct {
	sync        Synchronous
	busyTimeout time.Duration
	migrate     bool
	migrateTo   int  // the version to migrate to; 0: the newest (tests set others)
	forNew      bool // the options are New's
}

func newConfig(opts []Option, forNew bool) (config, error) {
	c := config{sync: Full, busyTimeout: 5 * time.Second, migrate: true, forNew: forNew}
	return c, sqlstore.Configure("sqlite", &c, opts)
}

// WithSynchronous sets the durability mode: Full (the default) or Normal.
// For New it is the least the application's connection must run with.
func WithSynchronous(s Synchronous) Option {
	return func(c *config) error {
		if s != Full && s != Normal {
			return fmt.Errorf("sqlite: WithSynchronous(%v): want Full or Normal", s)
		}
		c.sync = s
		return nil
	}
}

// WithBusyTimeout sets how long a connection waits for a lock held by
// another connection to the same file (another Store, another process)
// before it fails. The default is 5s; it must not be negative. New
// refuses it: the application's DSN sets its connection's
// (_busy_timeout), and New uses that.
func WithBusyTimeout(d time.Duration) Option {
	return func(c *config) error {
		switch {
		case c.forNew:
			return fmt.Errorf("sqlite: WithBusyTimeout(%v): New takes the busy timeout of the *sql.DB (its DSN's _busy_timeout)", d)
		case d < 0 || d > time.Duration(math.MaxInt32)*time.Millisecond:
			return fmt.Errorf("sqlite: WithBusyTimeout(%v): want 0 to %v", d, time.Duration(math.MaxInt32)*time.Millisecond)
		}
		c.busyTimeout = d
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

// busyTimeoutMillis rounds the busy timeout up to whole milliseconds.
func (c *config) busyTimeoutMillis() int64 {
	return int64((c.busyTimeout + time.Millisecond - 1) / time.Millisecond)
}
