package sqlite

import (
	"fmt"
	"math"
	"time"
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

// Option configures Open.
type Option func(*config)

type config struct {
	sync        Synchronous
	busyTimeout time.Duration
}

func defaultConfig() config {
	return config{sync: Full, busyTimeout: 5 * time.Second}
}

// WithSynchronous sets the durability mode: Full (the default) or Normal.
func WithSynchronous(s Synchronous) Option { return func(c *config) { c.sync = s } }

// WithBusyTimeout sets how long a connection waits for a lock held by
// another connection to the same file (another Store, another process)
// before it fails. The default is 5s; it must not be negative.
func WithBusyTimeout(d time.Duration) Option { return func(c *config) { c.busyTimeout = d } }

func (c *config) validate() error {
	if c.sync != Full && c.sync != Normal {
		return fmt.Errorf("sqlite: invalid synchronous mode %v (want Full or Normal)", c.sync)
	}
	if c.busyTimeout < 0 {
		return fmt.Errorf("sqlite: negative busy timeout %v", c.busyTimeout)
	}
	if c.busyTimeout > time.Duration(math.MaxInt32)*time.Millisecond {
		return fmt.Errorf("sqlite: busy timeout %v too long", c.busyTimeout)
	}
	return nil
}

// busyTimeoutMillis rounds the busy timeout up to whole milliseconds.
func (c *config) busyTimeoutMillis() int64 {
	return int64((c.busyTimeout + time.Millisecond - 1) / time.Millisecond)
}
