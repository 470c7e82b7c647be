package main_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// postgresURLEnv names the variable that holds the URL of a PostgreSQL
// server the tests may create databases on, as for store/postgres.
const postgresURLEnv = "STOPLINE_POSTGRES_URL"

// postgresDatabase creates a database named prefix and random hex on the
// server the tests may use, dropped when t ends, and returns its URL. It
// skips t when no server is given.
func postgresDatabase(t *testing.T, prefix string) string {
	t.Helper()
	base := os.Getenv(postgresURLEnv)
	if base == "" {
		t.Skipf("%s is unset: no PostgreSQL server to test against", postgresURLEnv)
	}
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		t.Skipf("%s is not a postgres:// URL", postgresURLEnv)
	}
	var b [8]byte
	rand.Read(b[:])
	name := prefix + hex.EncodeToString(b[:])
	admin := func(stmt string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatal(err)
		}
	}
	admin("CREATE DATABASE " + name)
	t.Cleanup(func() { admin("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)") })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// TestPostgres runs the main commands with --db postgres://..., on a
// database of its own. It skips when no server is given.
func TestPostgres(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.db = postgresDatabase(t, "stopline_cli_test_")
	res := c.runSteps("agent", "agent")
	if res.StoppedAtStep == nil || *res.StoppedAtStep != 7 || len(res.Warnings) != 3 {
		t.Errorf("run on Postgres: %+v", res)
	}
	var runs []runResult
	c.okJSON(&runs, "runs", "--tenant", "acme")
	if len(runs) != 1 || runs[0].RunID != res.RunID {
		t.Errorf("runs: %+v", runs)
	}
	golden(t, "show", c.ok("show", res.RunID))
	golden(t, "explain-stopped", c.ok("explain", res.RunID, "--at", "+4000"))
	c.ok("verify")
	c.ok("export", "evidence", *res.IncidentID, "-o", "evidence.json")
	c.ok("verify-bundle", "evidence.json")
}
