package tenantlog

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/translog"
)

// LeafError is a leaf a signed tree head covers whose run or checkpoint
// the store no longer holds as the leaf states it: the run was deleted,
// its final head or chain changed, or the checkpoint is gone or another.
// It matches ErrMismatch, and unwraps to the store's or the verifier's
// error when there is one (governance.ErrNotFound for a deleted run).
type LeafError struct {
	Leaf    governance.LogLeaf
	Problem string
	Err     error
}

func (e *LeafError) Error() string {
	s := fmt.Sprintf("tenant log leaf %d (%s of run %s of tenant %q, seq %d, head %s): %s",
		e.Leaf.Index, e.Leaf.Kind, e.Leaf.RunID, e.Leaf.TenantID, e.Leaf.Seq, e.Leaf.Head, e.Problem)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is matches ErrMismatch.
func (e *LeafError) Is(target error) bool { return target == ErrMismatch }

// Unwrap returns the underlying error, if any.
func (e *LeafError) Unwrap() error { return e.Err }

// VerifyError is every failure Verify found, in leaf order: each a
// *LeafError or a failure of the log as a whole. Errors.Is and errors.As
// see each of them.
type VerifyError struct{ Failures []error }

func (e *VerifyError) Error() string {
	msgs := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		msgs[i] = f.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the failures.
func (e *VerifyError) Unwrap() []error { return e.Failures }

// Report is what Verify proved: every one of the Leaves leaves the signed
// Head covers is in the store as stated (Runs distinct runs, each of
// which verifies), and the store's log now (Current) extends Head.
type Report struct {
	Head    Head
	Current Head
	Leaves  int64
	Runs    int
}

// maxLeafErrors bounds the leaf errors Verify collects before it stops.
const maxLeafErrors = 100

// page is how many leaves Verify reads at once.
const page = 4096

// Verify proves, from the store, what a signed tree head commits to: it
// opens msg with verifiers, then
//   - reads every leaf of the tenant's log and recomputes the tree from
//     them: the first head.Size leaves must hash to the head's root (a log
//     rewritten without a leaf, or with one changed, does not);
//   - for each leaf the head covers, checks the store: the run exists and
//     verifies (governance.VerifyRun); a run_end leaf's run has ended with
//     the leaf's final head and chain length; a checkpoint leaf's
//     checkpoint is stored with the leaf's head, key and note, and the
//     run's record at the leaf's seq has the leaf's head hash;
//   - checks that the store's stored hashes give the tree of its leaves,
//     and that its current tree is consistent with the head (a
//     consistency proof from the stored hashes, checked against both
//     roots).
//
// Failures match ErrMismatch (a *VerifyError listing each leaf that
// fails as a *LeafError naming its run, at most 100 of them), ErrInvalid for a head
// that does not open, ErrUnsupported for a store without a log. It reads
// every run the head covers: its cost is VerifyTenant's.
func Verify(ctx context.Context, store governance.Store, msg []byte, verifiers note.Verifiers) (Report, error) {
	head, err := OpenHead(msg, verifiers)
	if err != nil {
		return Report{}, err
	}
	ls, err := logStore(store)
	if err != nil {
		return Report{}, err
	}
	rep := Report{Head: head}
	wantRoot, err := translog.ParseHexHash(head.Root)
	if err != nil {
		return rep, err
	}
	n, err := ls.TenantLogSize(ctx, head.TenantID)
	if err != nil {
		return rep, err
	}
	if n < head.Size {
		return rep, fmt.Errorf("%w: tenant %s's log holds %d leaves, the signed head covers %d: leaves were removed",
			ErrMismatch, head.TenantID, n, head.Size)
	}
	var (
		errs     []error
		f        translog.Frontier
		verified = map[string]bool{}
		i        int64
	)
	checkRoot := func() {
		root, err := f.Root(head.Size)
		if err != nil {
			errs = append(errs, err)
		} else if root != wantRoot {
			errs = append(errs, fmt.Errorf("%w: the first %d leaves of tenant %s's log hash to %s, the signed head states %s: the log was rewritten (forked)",
				ErrMismatch, head.Size, head.TenantID, translog.HexHash(root), head.Root))
		}
	}
	if head.Size == 0 {
		checkRoot()
	}
	for i < n && len(errs) < maxLeafErrors {
		leaves, err := ls.TenantLogLeaves(ctx, head.TenantID, "", i, min(i+page, n))
		if err != nil {
			return rep, err
		}
		if len(leaves) == 0 {
			errs = append(errs, fmt.Errorf("%w: tenant %s's log has no leaf %d (its size is %d)", ErrMismatch, head.TenantID, i, n))
			break
		}
		recs := map[string][]string{} // record hashes of runs with checkpoint leaves, per page
		for _, l := range leaves {
			if l.Index != i {
				errs = append(errs, &LeafError{Leaf: governance.LogLeaf{Index: i, TenantID: head.TenantID}, Problem: "missing from the store's log"})
				return rep, &VerifyError{Failures: errs}
			}
			h, err := internalLeaf(l).Hash()
			if err != nil {
				errs = append(errs, &LeafError{Leaf: l, Problem: "not a valid leaf", Err: err})
				return rep, &VerifyError{Failures: errs}
			}
			if _, f, err = f.Append(i, h); err != nil {
				return rep, err
			}
			if i < head.Size {
				if err := checkLeaf(ctx, store, l, verified, recs); err != nil {
					errs = append(errs, err)
				}
			}
			i++
			if i == head.Size {
				checkRoot()
			}
		}
	}
	rep.Leaves, rep.Runs = min(i, head.Size), len(verified)
	if len(errs) > 0 {
		return rep, &VerifyError{Failures: errs}
	}
	root, err := f.Root(n)
	if err != nil {
		return rep, err
	}
	rep.Current = Head{TenantID: head.TenantID, Size: n, Root: translog.HexHash(root)}
	stored, err := tlog.TreeHash(n, reader(ctx, ls, head.TenantID))
	if err != nil {
		return rep, fmt.Errorf("%w: tenant %s's stored hashes: %w", ErrMismatch, head.TenantID, err)
	}
	if stored != root {
		return rep, fmt.Errorf("%w: tenant %s's stored hashes give the root %s, its %d leaves %s", ErrMismatch, head.TenantID,
			translog.HexHash(stored), n, rep.Current.Root)
	}
	if _, err := ProveConsistency(ctx, store, head, rep.Current); err != nil {
		return rep, fmt.Errorf("%w: %w", ErrMismatch, err)
	}
	return rep, nil
}

// checkLeaf checks one covered leaf against the store.
func checkLeaf(ctx context.Context, store governance.Store, l governance.LogLeaf, verified map[string]bool, recs map[string][]string) error {
	fail := func(problem string, err error) error { return &LeafError{Leaf: l, Problem: problem, Err: err} }
	run, err := store.Run(ctx, l.TenantID, l.RunID)
	if errors.Is(err, governance.ErrNotFound) {
		return fail("the run is missing from the store (deleted)", err)
	} else if err != nil {
		return err
	}
	if !verified[l.RunID] {
		if _, err := governance.VerifyRun(ctx, store, l.TenantID, l.RunID); err != nil {
			return fail("the run does not verify", err)
		}
		verified[l.RunID] = true
	}
	switch l.Kind {
	case KindRunEnd:
		switch {
		case !run.Status.Ended():
			return fail(fmt.Sprintf("the run is %s in the store, the log says it ended", run.Status), nil)
		case run.ChainLength != l.Seq+1 || run.HeadHash != l.Head:
			return fail(fmt.Sprintf("the run ended with %d records and head %s in the store", run.ChainLength, run.HeadHash), nil)
		}
		return nil
	case KindCheckpoint:
		hashes, ok := recs[l.RunID]
		if !ok {
			rs, err := store.Records(ctx, l.TenantID, l.RunID)
			if err != nil {
				return fail("reading the run's records", err)
			}
			hashes = make([]string, len(rs))
			for i, r := range rs {
				hashes[i] = r.Hash
			}
			recs[l.RunID] = hashes
		}
		if l.Seq >= len(hashes) || hashes[l.Seq] != l.Head {
			return fail(fmt.Sprintf("the run's record %d is not the one checkpointed (the run has %d records)", l.Seq, len(hashes)), nil)
		}
		cps, err := store.Checkpoints(ctx, l.TenantID, l.RunID)
		if err != nil {
			return fail("reading the run's checkpoints", err)
		}
		for _, c := range cps {
			if c.Size == l.Seq+1 && c.KeyName == l.KeyName {
				if c.Head != l.Head || translog.NoteHash(c.Note) != l.NoteHash {
					return fail("the stored checkpoint is not the one logged", nil)
				}
				return nil
			}
		}
		return fail(fmt.Sprintf("the checkpoint of size %d by key %s is missing from the store", l.Seq+1, l.KeyName), governance.ErrNotFound)
	}
	return fail("unknown leaf kind", nil)
}
