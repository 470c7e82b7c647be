package sqlite

import (
	"context"
	"database/sql"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// The pragmas each connection runs with are what the options promise.
func TestConnectionPragmas(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name   string
		opts   []Option
		sync   int // PRAGMA synchronous: 1 NORMAL, 2 FULL
		busyMS int
	}{
		{"defaults", nil, 2, 5000},
		{"normal", []Option{WithSynchronous(Normal)}, 1, 5000},
		{"busy", []Option{WithBusyTimeout(1500 * time.Microsecond)}, 2, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(ctx, filepath.Join(t.TempDir(), "p.db"), tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			pragma := func(db *sql.DB, name string) string {
				t.Helper()
				var v string
				if err := db.QueryRowContext(ctx, "PRAGMA "+name).Scan(&v); err != nil {
					t.Fatalf("PRAGMA %s: %v", name, err)
				}
				return v
			}
			for _, p := range []struct {
				db         *sql.DB
				name, want string
			}{
				{s.w, "journal_mode", "wal"},
				{s.w, "synchronous", strconv.Itoa(tc.sync)},
				{s.w, "foreign_keys", "1"},
				{s.w, "busy_timeout", strconv.Itoa(tc.busyMS)},
				{s.w, "query_only", "0"},
				{s.r, "query_only", "1"},
				{s.r, "busy_timeout", strconv.Itoa(tc.busyMS)},
			} {
				if got := pragma(p.db, p.name); got != p.want {
					t.Errorf("PRAGMA %s = %s, want %s", p.name, got, p.want)
				}
			}
			if n := s.w.Stats().MaxOpenConnections; n != 1 {
				t.Errorf("write pool allows %d connections, want 1", n)
			}
		})
	}
}
