package main

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stopline/stopline/store/postgres"
	"github.com/stopline/stopline/store/sqlite"
)

// migrateResult is what `stopline migrate --json` prints.
type migrateResult struct {
	Database string `json:"database"`
	From     int    `json:"from"`
	To       int    `json:"to"`
	Migrated bool   `json:"migrated"`
}

func migrateCmd() *command {
	return &command{
		name:     "migrate",
		section:  "Database",
		synopsis: "[--db PATH|URL] [--json]",
		summary:  "bring the database's schema up to this binary's version, and say from which",
		desc: `Applies the schema migrations this binary embeds that the database does not
have yet, each in its own transaction, and prints the schema version it found
and the one it left. Nothing else is written; a database already current is
left alone (exit 0). A SQLite file that does not exist is created.

It is safe while stores and replicas have the database open, and when several
operators or replicas migrate at once: each migration is applied exactly once
(SQLite: under the file's write lock; PostgreSQL: under an advisory lock).
A database migrated by a newer binary is refused (exit 1) and left alone.

The other commands, like the library's Open, migrate an older database by
themselves when they open it. Run this one first where an operator changes
the schema before the applications that open the database with
WithoutMigrate are deployed.

--json prints {"database","from","to","migrated"}.`,
		examples: []string{
			"stopline migrate --db /var/lib/stopline/stopline.db",
			"stopline migrate --db postgres://stopline@db.internal/stopline --json",
		},
		store: true, json: true,
		run: func(ctx context.Context, e *env, _ []string) error {
			res := migrateResult{Database: e.db}
			var err error
			if isPostgresURL(e.db) {
				res.Database = redactURL(e.db)
				res.From, res.To, err = migratePostgres(ctx, e.db)
			} else {
				res.From, res.To, err = migrateSQLite(ctx, e.db)
			}
			if err != nil {
				return err
			}
			res.Migrated = res.To != res.From
			if e.jsonOut {
				return writeJSON(e.stdout, res)
			}
			if !res.Migrated {
				_, err = fmt.Fprintf(e.stdout, "%s is at schema version %d, this binary's: nothing to do\n", res.Database, res.To)
				return err
			}
			_, err = fmt.Fprintf(e.stdout, "migrated %s from schema version %d to %d\n", res.Database, res.From, res.To)
			return err
		},
	}
}

// migrateSQLite migrates the SQLite file at path, creating it if needed.
func migrateSQLite(ctx context.Context, path string) (from, to int, err error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return 0, 0, err
	}
	// A file: URI takes any file name literally; other handles on the
	// file are waited for up to 5 s.
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs), RawQuery: "_busy_timeout=5000"}
	db, err := sql.Open("sqlite3", u.String())
	if err != nil {
		return 0, 0, fmt.Errorf("opening %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	return sqlite.Migrate(ctx, db)
}

// migratePostgres migrates the database at url.
func migratePostgres(ctx context.Context, url string) (from, to int, err error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return 0, 0, redactedError(url, err)
	}
	defer pool.Close()
	from, to, err = postgres.Migrate(ctx, pool)
	if err != nil {
		return from, to, redactedError(url, err)
	}
	return from, to, nil
}
