package postgres_test

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

	"github.com/stopline/stopline/store/postgres"
)

var ctx = context.Background()

// URLEnv names the environment variable that holds the URL of a server the
// tests may create databases on (CI sets it). Tests that need a server
// skip when it is unset, and only then.
const URLEnv = "STOPLINE_POSTGRES_URL"

// serverURL returns the server's URL, or skips t.
func serverURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(URLEnv)
	if u == "" {
		t.Skipf("%s is unset: no PostgreSQL server to test against", URLEnv)
	}
	return u
}

// newDatabase creates an empty database of its own for t and returns its
// URL. The database is dropped (WITH (FORCE), closing any connection left
// open) when t ends, so tests can run in parallel and leave nothing.
func newDatabase(t testing.TB) string {
	t.Helper()
	base := serverURL(t)
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "stopline_test_" + hex.EncodeToString(b[:])
	admin(t, base, "CREATE DATABASE "+name)
	t.Cleanup(func() { admin(t, base, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)") })
	return withDatabase(t, base, name)
}

// admin runs one statement on the server's own database.
func admin(t testing.TB, base, stmt string) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, err := pgx.Connect(c, base)
	if err != nil {
		t.Fatalf("connecting to %s: %v", URLEnv, err)
	}
	defer conn.Close(c)
	if _, err := conn.Exec(c, stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

// withDatabase returns base with its database replaced by name.
func withDatabase(t testing.TB, base, name string) string {
	t.Helper()
	if !strings.HasPrefix(base, "postgres://") && !strings.HasPrefix(base, "postgresql://") {
		return base + " dbname=" + name // keyword/value form: the last setting wins
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// openStore opens a Store on url and closes it when t ends.
func openStore(t testing.TB, url string, opts ...postgres.Option) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(ctx, url, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// rawConn is a plain connection to url, for SQL the Store would never run.
func rawConn(t testing.TB, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(ctx) })
	return conn
}

// count returns the result of a COUNT(*) query.
func count(t testing.TB, conn *pgx.Conn, query string, args ...any) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
