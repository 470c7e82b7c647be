package sqlite

import (
	"context"
	"testing"
)

// Hooks for the tests and benchmarks of package sqlite_test.

// CommitAlone makes s commit every write on its own, as the store did
// before group commit (one commit, so one fsync in FULL mode, per step):
// the baseline the benchmarks compare group commit with, in one process.
func CommitAlone(s *Store, alone bool) {
	s.group.mu.Lock()
	s.group.alone = alone
	s.group.mu.Unlock()
}

// Commits is how many write transactions of steps, run starts and run
// ends s has committed.
func Commits(s *Store) int64 { return s.commits.Load() }

// Queued is how many writes are in s's queue (the one being written
// included).
func Queued(s *Store) int {
	s.group.mu.Lock()
	defer s.group.mu.Unlock()
	return len(s.group.queue)
}

// HoldWriter takes s's write connection until the returned function is
// called: the write that leads meanwhile waits for it, and the writes
// queued behind it form the next batch.
func HoldWriter(t testing.TB, s *Store) (release func()) {
	t.Helper()
	conn, err := s.w.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return func() { conn.Close() }
}

// LatestVersion is the number of embedded migrations.
func LatestVersion() int {
	ms, err := dialect.Migrations()
	if err != nil {
		panic(err)
	}
	return len(ms)
}

// WithoutTenantLog makes s append nothing to the tenant log (the
// benchmarks' baseline).
func WithoutTenantLog(s *Store) { s.db.NoTenantLog = true }
