package sqlstore

import (
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/stopline/stopline/internal/translog"
)

// Every statement an append runs has a text that TenantLogAppendSQL
// lists (the stores prepare those once), and an append adds exactly the
// stored hashes tlog stores for its leaf, at consecutive indexes from
// tlog.StoredHashIndex(0, n), before the log row moves to size n+1.
func TestAppendStmtsArePrepared(t *testing.T) {
	var st logState
	for n := range int64(40) {
		leaf := translog.Leaf{TenantID: "acme", RunID: "RUN-1", Kind: translog.KindRunEnd, Seq: int(n), Head: translog.HexHash(tlog.Hash{byte(n)})}
		stmts, err := appendStmts(leaf, st)
		if err != nil {
			t.Fatal(err)
		}
		hashes := 0
		for _, s := range stmts {
			if !slices.Contains(TenantLogAppendSQL, s.SQL) {
				t.Fatalf("size %d: statement %q is not in TenantLogAppendSQL", n, s.SQL)
			}
			if s.SQL == InsertLogHashSQL {
				if want := tlog.StoredHashIndex(0, n) + int64(hashes); s.Args[1] != want {
					t.Fatalf("size %d: stored hash at index %v, want %d", n, s.Args[1], want)
				}
				hashes++
			}
		}
		if want := tlog.StoredHashCount(n+1) - tlog.StoredHashCount(n); int64(hashes) != want {
			t.Fatalf("size %d: %d stored hashes, want %d", n, hashes, want)
		}
		last := stmts[len(stmts)-1]
		if last.SQL != UpdateLogSQL || last.Args[1] != n+1 {
			t.Fatalf("size %d: last statement %q %v, want the log row at size %d", n, last.SQL, last.Args, n+1)
		}
		st = logState{size: n + 1, frontier: last.Args[2].([]byte)}
	}
}
