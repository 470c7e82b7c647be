package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/translog"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/tenantlog"
)

// LogTamper edits a store's runs and tenant log behind its back, as a
// writer of the database could (triggers dropped).
type LogTamper interface {
	// DeleteRun deletes everything the store keeps of a run: its row,
	// records, step contents, checkpoints and incident. Its leaves stay.
	DeleteRun(t testing.TB, tenantID, runID string)
	// ReplaceTenantLog replaces the tenant's log with leaves (indexed 0,
	// 1, ...), the stored hashes of their tree (tlog.StoredHashIndex
	// order) and its frontier (the size is len(leaves)).
	ReplaceTenantLog(t testing.TB, tenantID string, leaves []governance.LogLeaf, hashes []tlog.Hash, frontier []byte)
}

// LogTamperOpener returns a new, empty store for one test and a
// LogTamper that edits it.
type LogTamperOpener func(t *testing.T) (governance.Store, LogTamper)

// treeOf builds a log's stored hashes and frontier from its leaves, and
// reindexes them.
func treeOf(t testing.TB, leaves []governance.LogLeaf) ([]governance.LogLeaf, []tlog.Hash, []byte) {
	t.Helper()
	var f translog.Frontier
	var hashes []tlog.Hash
	out := make([]governance.LogLeaf, len(leaves))
	for i, l := range leaves {
		l.Index = int64(i)
		out[i] = l
		b, err := tenantlog.EncodeLeaf(l)
		if err != nil {
			t.Fatal(err)
		}
		var stored []tlog.Hash
		if stored, f, err = f.Append(int64(i), tlog.RecordHash(b)); err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, stored...)
	}
	return out, hashes, f.Bytes()
}

// RunTenantLogTamper is the tenant log's tamper suite: a run deleted with
// its checkpoints, which VerifyStore cannot see, fails tenantlog.Verify
// against a head signed before, naming the run; so does a log rewritten
// without the run (a fork), and a log cut short.
func RunTenantLogTamper(t *testing.T, open LogTamperOpener) {
	fixture := func(t *testing.T) (governance.Store, LogTamper, []string, tenantlog.Head, note.Verifiers, func()) {
		st, tm := open(t)
		signer, verifiers := logKeys(t)
		clock := governance.NewFakeClock(T0)
		ids := &seqIDs{}
		r, err := governance.NewRunner(st, governance.WithClock(clock), governance.WithIDGenerator(ids.next), governance.WithCheckpoints(signer, 1))
		if err != nil {
			t.Fatal(err)
		}
		var runs []string
		for i := range 4 {
			run, err := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, "acme")})
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				clock.Advance(time.Second)
				if _, err := run.Step(ctx, step(prevention.StepToolCall, "search")); err != nil {
					t.Fatal(err)
				}
			}
			if i == 2 {
				if _, err := run.Step(ctx, step(prevention.StepToolCall, "shell")); !errors.Is(err, governance.ErrPolicyViolation) {
					t.Fatal(err)
				}
			} else if _, err := run.Finish(ctx); err != nil {
				t.Fatal(err)
			}
			runs = append(runs, run.ID())
		}
		head, err := tenantlog.SignHead(ctx, st, signer, "acme", clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tenantlog.Verify(ctx, st, []byte(head.Note), verifiers); err != nil {
			t.Fatalf("before tampering: %v", err)
		}
		more := func() { // a run that ends: two leaves (its end, its last checkpoint)
			run, err := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, "acme")})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := run.Finish(ctx); err != nil {
				t.Fatal(err)
			}
		}
		more() // the log grows after the head, consistently
		return st, tm, runs, head, verifiers, more
	}

	t.Run("delete a whole run with its checkpoints", func(t *testing.T) {
		st, tm, runs, head, vs, _ := fixture(t)
		msg := []byte(head.Note)
		gone := runs[2] // the stopped run, with its incident
		tm.DeleteRun(t, "acme", gone)
		// Nothing is left that names the run: the store alone verifies.
		if rep, err := governance.VerifyStore(ctx, st, nil); err != nil || len(rep.Failures) != 0 {
			t.Fatalf("VerifyStore after deleting a whole run: %+v %v (the limit the log lifts)", rep, err)
		}
		_, err := tenantlog.Verify(ctx, st, msg, vs)
		var le *tenantlog.LeafError
		if !errors.Is(err, tenantlog.ErrMismatch) || !errors.As(err, &le) || le.Leaf.RunID != gone || !errors.Is(err, governance.ErrNotFound) {
			t.Fatalf("Verify after deleting run %s: %v, want a LeafError naming it", gone, err)
		}
		if !strings.Contains(err.Error(), gone) {
			t.Errorf("the error does not name run %s: %v", gone, err)
		}
	})
	t.Run("delete a run and rewrite the log without it", func(t *testing.T) {
		st, tm, runs, head, vs, more := fixture(t)
		msg := []byte(head.Note)
		gone := runs[1]
		ls := logStoreOf(t, st)
		var kept []governance.LogLeaf
		for _, l := range leavesOf(t, ls, "acme") {
			if l.RunID != gone {
				kept = append(kept, l)
			}
		}
		tm.DeleteRun(t, "acme", gone)
		leaves, hashes, frontier := treeOf(t, kept)
		tm.ReplaceTenantLog(t, "acme", leaves, hashes, frontier)
		// New runs grow the forked log past the head's size.
		for cur, _ := tenantlog.Current(ctx, st, "acme"); cur.Size <= head.Size; cur, _ = tenantlog.Current(ctx, st, "acme") {
			more()
		}
		leaves = leavesOf(t, ls, "acme")
		// The forked log is a sound tree of sound runs...
		cur, err := tenantlog.Current(ctx, st, "acme")
		if err != nil || cur.Root != rebuilt(t, leaves) {
			t.Fatalf("forked log: %+v %v", cur, err)
		}
		// ...that the head signed before does not accept.
		_, err = tenantlog.Verify(ctx, st, msg, vs)
		if !errors.Is(err, tenantlog.ErrMismatch) || !strings.Contains(err.Error(), "forked") {
			t.Fatalf("Verify of a forked log: %v, want ErrMismatch (forked)", err)
		}
	})
	t.Run("cut the log short", func(t *testing.T) {
		st, tm, _, head, vs, _ := fixture(t)
		msg := []byte(head.Note)
		ls := logStoreOf(t, st)
		all := leavesOf(t, ls, "acme")
		leaves, hashes, frontier := treeOf(t, all[:head.Size-1])
		tm.ReplaceTenantLog(t, "acme", leaves, hashes, frontier)
		if _, err := tenantlog.Verify(ctx, st, msg, vs); !errors.Is(err, tenantlog.ErrMismatch) {
			t.Fatalf("Verify of a log cut short: %v, want ErrMismatch", err)
		}
	})
	t.Run("a leaf edited in place", func(t *testing.T) {
		st, tm, runs, head, vs, _ := fixture(t)
		msg := []byte(head.Note)
		ls := logStoreOf(t, st)
		all := leavesOf(t, ls, "acme")
		for i := range all {
			if all[i].RunID == runs[0] && all[i].Kind == tenantlog.KindRunEnd {
				all[i].Seq++
			}
		}
		leaves, hashes, frontier := treeOf(t, all)
		tm.ReplaceTenantLog(t, "acme", leaves, hashes, frontier)
		_, err := tenantlog.Verify(ctx, st, msg, vs)
		var le *tenantlog.LeafError
		if !errors.Is(err, tenantlog.ErrMismatch) || !errors.As(err, &le) || le.Leaf.RunID != runs[0] {
			t.Fatalf("Verify of an edited leaf: %v, want a LeafError naming run %s", err, runs[0])
		}
	})
}
