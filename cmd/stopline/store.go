package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strings"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/postgres"
	"github.com/stopline/stopline/store/sqlite"
)

// openStore opens the store that --db names, the one place a store is
// chosen: a postgres:// or postgresql:// URL is the Postgres store
// (store/postgres, which migrates the schema on open), anything else a
// SQLite file (store/sqlite). When mustExist is set (commands that only
// read), a SQLite file that does not exist is an error rather than a new
// empty database.
func openStore(ctx context.Context, db string, mustExist bool) (governance.Store, io.Closer, error) {
	if isPostgresURL(db) {
		st, err := postgres.Open(ctx, db)
		if err != nil {
			// Say which database without its password, wherever it shows.
			msg := err.Error()
			if u, perr := url.Parse(db); perr == nil {
				if pw, ok := u.User.Password(); ok && pw != "" {
					msg = strings.ReplaceAll(msg, pw, "xxxxx")
				}
			}
			return nil, nil, fmt.Errorf("opening %s: %s", redactURL(db), msg)
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

// redactURL hides a password in a database URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
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
