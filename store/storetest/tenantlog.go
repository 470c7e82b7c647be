package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/translog"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/tenantlog"
)

// logKeys returns a signer and its verifiers, for checkpoints and heads.
func logKeys(t testing.TB) (note.Signer, note.Verifiers) {
	t.Helper()
	skey, vkey, err := governance.GenerateCheckpointKey("storetest-log")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	return signer, note.VerifierList(v)
}

func logStoreOf(t testing.TB, st governance.Store) governance.TenantLogStore {
	t.Helper()
	ls, ok := st.(governance.TenantLogStore)
	if !ok {
		t.Fatalf("%T does not implement governance.TenantLogStore", st)
	}
	return ls
}

// leavesOf returns every leaf of a tenant's log.
func leavesOf(t testing.TB, ls governance.TenantLogStore, tenant string) []governance.LogLeaf {
	t.Helper()
	n, err := ls.TenantLogSize(ctx, tenant)
	if err != nil {
		t.Fatal(err)
	}
	leaves, err := ls.TenantLogLeaves(ctx, tenant, "", 0, n)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(leaves)) != n {
		t.Fatalf("tenant %s: %d leaves for a log of size %d", tenant, len(leaves), n)
	}
	return leaves
}

// rebuilt is the tree hash of leaves, recomputed from their encodings.
func rebuilt(t testing.TB, leaves []governance.LogLeaf) string {
	t.Helper()
	var f translog.Frontier
	for i, l := range leaves {
		b, err := tenantlog.EncodeLeaf(l)
		if err != nil {
			t.Fatal(err)
		}
		if _, f, err = f.Append(int64(i), tlog.RecordHash(b)); err != nil {
			t.Fatal(err)
		}
	}
	root, err := f.Root(int64(len(leaves)))
	if err != nil {
		t.Fatal(err)
	}
	return translog.HexHash(root)
}

// testTenantLog: every run's end and every checkpoint is appended to its
// tenant's log, in order, once; the stored tree is the tree of its
// leaves; signed heads verify, and older heads stay consistent.
func testTenantLog(t *testing.T, open Opener) {
	st := open(t)
	ls := logStoreOf(t, st)
	signer, verifiers := logKeys(t)
	clock := governance.NewFakeClock(T0)
	ids := &seqIDs{}
	r, err := governance.NewRunner(st, governance.WithClock(clock), governance.WithIDGenerator(ids.next), governance.WithCheckpoints(signer, 2))
	if err != nil {
		t.Fatal(err)
	}
	if h, err := tenantlog.Current(ctx, st, "acme"); err != nil || h.Size != 0 {
		t.Fatalf("empty log: %+v %v", h, err)
	}
	var heads []tenantlog.Head
	runOne := func(tenant string, stop bool) *governance.Run {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, tenant)})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			clock.Advance(time.Second)
			if _, err := run.Step(ctx, step(prevention.StepToolCall, "search")); err != nil {
				t.Fatal(err)
			}
		}
		if stop {
			if _, err := run.Step(ctx, step(prevention.StepToolCall, "shell")); !errors.Is(err, governance.ErrPolicyViolation) {
				t.Fatalf("blocked step: %v", err)
			}
		} else if _, err := run.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		return run
	}
	var runs []*governance.Run
	for i := range 5 {
		runs = append(runs, runOne("acme", i%2 == 1))
		h, err := tenantlog.SignHead(ctx, st, signer, "acme", clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, h)
	}
	runOne("globex", false)

	leaves := leavesOf(t, ls, "acme")
	var ends []string
	for i, l := range leaves {
		if l.Index != int64(i) || l.TenantID != "acme" {
			t.Errorf("leaf %d: %+v", i, l)
		}
		switch l.Kind {
		case tenantlog.KindRunEnd:
			ends = append(ends, l.RunID)
			got, err := st.Run(ctx, "acme", l.RunID)
			if err != nil || got.HeadHash != l.Head || got.ChainLength != l.Seq+1 {
				t.Errorf("run_end leaf %d: %+v, run %+v %v", i, l, got, err)
			}
		case tenantlog.KindCheckpoint:
			if l.KeyName != "storetest-log" || len(l.NoteHash) != 64 {
				t.Errorf("checkpoint leaf %d: %+v", i, l)
			}
		default:
			t.Errorf("leaf %d of kind %q", i, l.Kind)
		}
	}
	for i, run := range runs {
		if i >= len(ends) || ends[i] != run.ID() {
			t.Errorf("run_end leaves %v, want one per run in the order they ended (run %d is %s)", ends, i, run.ID())
		}
		own, err := tenantlog.RunLeaves(ctx, st, "acme", run.ID())
		n := 0
		for _, l := range own {
			if l.RunID != run.ID() {
				t.Errorf("leaves of run %s hold one of run %s", run.ID(), l.RunID)
			}
			if l.Kind == tenantlog.KindRunEnd {
				n++
			}
		}
		if err != nil || n != 1 {
			t.Errorf("leaves of run %s: %+v %v, want one run_end", run.ID(), own, err)
		}
	}
	cur, err := tenantlog.Current(ctx, st, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if want := rebuilt(t, leaves); cur.Root != want || cur.Size != int64(len(leaves)) {
		t.Errorf("stored tree %d %s, the tree of the leaves %d %s", cur.Size, cur.Root, len(leaves), want)
	}
	for _, h := range heads {
		rep, err := tenantlog.Verify(ctx, st, []byte(h.Note), verifiers)
		if err != nil {
			t.Fatalf("head of size %d: %v", h.Size, err)
		}
		if rep.Leaves != h.Size || rep.Current.Size != cur.Size || rep.Current.Root != cur.Root {
			t.Errorf("head of size %d: report %+v", h.Size, rep)
		}
	}
	for _, l := range leaves {
		p, err := tenantlog.Prove(ctx, st, cur, l)
		if err != nil {
			t.Fatalf("proving leaf %d: %v", l.Index, err)
		}
		if err := tenantlog.CheckProof(p); err != nil {
			t.Fatalf("leaf %d: %v", l.Index, err)
		}
	}
	// Tenants have logs of their own.
	if g := leavesOf(t, ls, "globex"); len(g) == 0 || g[0].TenantID != "globex" {
		t.Errorf("globex's log: %+v", g)
	}
	if g, err := ls.TenantLogLeaves(ctx, "globex", runs[0].ID(), 0, 100); err != nil || len(g) != 0 {
		t.Errorf("acme's run in globex's log: %+v %v", g, err)
	}
	// A checkpoint stored again, a close refused: nothing appended.
	cps, err := st.Checkpoints(ctx, "acme", runs[0].ID())
	if err != nil || len(cps) == 0 {
		t.Fatalf("checkpoints: %v %v", cps, err)
	}
	if err := st.PutCheckpoint(ctx, cps[0]); err != nil {
		t.Fatal(err)
	}
	if _, err := runs[0].Finish(ctx); err == nil {
		t.Fatal("finishing a finished run")
	}
	if n, err := ls.TenantLogSize(ctx, "acme"); err != nil || n != cur.Size {
		t.Errorf("log size %d %v after a no-op, want %d", n, err, cur.Size)
	}
	// A head of another tenant, a head with another root.
	other, err := tenantlog.NewHead(signer, "acme", heads[2].Size, strings.Repeat("0", 64), T0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tenantlog.Verify(ctx, st, []byte(other.Note), verifiers); !errors.Is(err, tenantlog.ErrMismatch) {
		t.Errorf("a head with another root: %v, want ErrMismatch", err)
	}
	bigger, _ := tenantlog.NewHead(signer, "acme", cur.Size+1, cur.Root, T0)
	if _, err := tenantlog.Verify(ctx, st, []byte(bigger.Note), verifiers); !errors.Is(err, tenantlog.ErrMismatch) {
		t.Errorf("a head larger than the log: %v, want ErrMismatch", err)
	}
}

// testTenantLogRace: runs of one tenant closed and checkpointed at once
// (from one Store handle here; store/postgres also from several) each get
// exactly one leaf, and the log verifies.
func testTenantLogRace(t *testing.T, open Opener) {
	st := open(t)
	TenantLogRace(t, []governance.Store{st})
}

// TenantLogRace closes and checkpoints runs of one tenant concurrently
// through stores (handles on one database; each goroutine uses one in
// turn) and checks that every close and every new checkpoint has exactly
// one leaf and that a head signed afterwards verifies.
func TenantLogRace(t *testing.T, stores []governance.Store) {
	signer, verifiers := logKeys(t)
	const workers, perWorker = 8, 4
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st := stores[w%len(stores)]
			r, err := governance.NewRunner(st, governance.WithCheckpoints(signer, 1))
			if err != nil {
				errs <- err
				return
			}
			for i := range perWorker {
				run, err := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, "acme"), RunID: fmt.Sprintf("RUN-race-%d-%d", w, i)})
				if err != nil {
					errs <- err
					return
				}
				if _, err := run.Step(ctx, step(prevention.StepToolCall, "search")); err != nil {
					errs <- err
					return
				}
				if i%2 == 0 {
					_, err = run.Finish(ctx)
				} else {
					_, err = run.Abort(ctx, prevention.ReasonUserAbort, "stop")
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := stores[0]
	ls := logStoreOf(t, st)
	leaves := leavesOf(t, ls, "acme")
	ends := map[string]int{}
	cps := 0
	for _, l := range leaves {
		if l.Kind == tenantlog.KindRunEnd {
			ends[l.RunID]++
		} else {
			cps++
		}
	}
	wantCps := 0
	for w := range workers {
		for i := range perWorker {
			id := fmt.Sprintf("RUN-race-%d-%d", w, i)
			if ends[id] != 1 {
				t.Errorf("run %s has %d run_end leaves, want 1", id, ends[id])
			}
			c, err := st.Checkpoints(ctx, "acme", id)
			if err != nil {
				t.Fatal(err)
			}
			wantCps += len(c)
		}
	}
	if cps != wantCps || len(ends) != workers*perWorker {
		t.Errorf("%d checkpoint leaves for %d checkpoints, %d runs ended for %d", cps, wantCps, len(ends), workers*perWorker)
	}
	h, err := tenantlog.SignHead(ctx, st, signer, "acme", T0)
	if err != nil {
		t.Fatal(err)
	}
	if want := rebuilt(t, leaves); h.Root != want {
		t.Errorf("stored tree %s, the tree of the leaves %s", h.Root, want)
	}
	if _, err := tenantlog.Verify(ctx, st, []byte(h.Note), verifiers); err != nil {
		t.Fatal(err)
	}
}
