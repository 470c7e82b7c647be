package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	neturl "net/url"
	"os"
	"strings"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/postgres"
	"github.com/stopline/stopline/store/sqlite"
)

// openStore opens the store that --db names, the one place a store is
// chosen: a postgres:// or postgresql:// URL is the Postgres store
// (store/postgres), anything else a SQLite file (store/sqlite). Both
// migrate an older schema on open, as the library does by default, so
// that every command works on a new file and after an upgrade; `stopline
// migrate` is the command that migrates and reports it. When mustExist is set (commands that only
// read), a SQLite file that does not exist is an error rather than a new
// empty database.
func openStore(ctx context.Context, db string, mustExist bool) (governance.Store, io.Closer, error) {
	if isPostgresURL(db) {
		st, err := postgres.Open(ctx, db)
		if err != nil {
			return nil, nil, redactedError(db, err)
		}
		return st, st, nil
	}
	if mustExist {
		if _, err := os.Stat(db); errors.Is(err, fs.ErrNotExist) {
			return nil, nil, fmt.Errorf("no database at %s (give --db PATH or set STOPLINE_DB)", db)
		}
	}
	st, err := sqlite.Open(ctx, db)
	if err != nil {
		return nil, nil, fmt.Errorf("opening %s: %w", db, err)
	}
	return st, st, nil
}

func isPostgresURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// redactedError is err of opening the database at url, saying which
// database without its password, wherever it shows.
func redactedError(url string, err error) error {
	msg := err.Error()
	if u, perr := neturl.Parse(url); perr == nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			msg = strings.ReplaceAll(msg, pw, "xxxxx")
		}
	}
	return fmt.Errorf("opening %s: %s", redactURL(url), msg)
}

// redactURL hides a password in a database URL.
func redactURL(s string) string {
	u, err := neturl.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// withStore opens the store for the duration of fn.
func withStore(ctx context.Context, e *env, mustExist bool, fn func(governance.Store) error) error {
	st, c, err := openStore(ctx, e.db, mustExist)
	if err != nil {
		return err
	}
	err = fn(st)
	if cerr := c.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("closing %s: %w", e.db, cerr)
	}
	return err
}
