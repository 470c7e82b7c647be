package export

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
)

// ErrNoCheckpoint is returned by VerifyBundleCheckpoint for a bundle that
// carries no checkpoint.
var ErrNoCheckpoint = errors.New("export: bundle carries no checkpoint")

// VerifyBundleCheckpoint checks, offline, the signed checkpoint a verified
// bundle carries against the bundle's own chain: the note must be signed
// by one of verifiers (keys held outside the database that produced the
// bundle), name the bundle's tenant and run, and state a size no larger
// than the chain and the hash of the chain's record at that size as its
// head. A bundle built from a store whose records were rewritten and
// whose chain was recomputed passes Verify (its chain is sound) but fails
// here. Failures match ErrBundleCheckpoint and the governance error
// (ErrCheckpoint for a note that does not verify, ErrCheckpointRun,
// ErrCheckpointMismatch); a bundle without a checkpoint is
// ErrNoCheckpoint.
func VerifyBundleCheckpoint(v *Verified, verifiers note.Verifiers) (governance.Checkpoint, error) {
	p, h := v.Bundle.provenance(), v.Bundle.header()
	if p.Checkpoint == "" {
		return governance.Checkpoint{}, ErrNoCheckpoint
	}
	cp, err := governance.OpenCheckpoint([]byte(p.Checkpoint), verifiers)
	if err != nil {
		return cp, fmt.Errorf("%w: %w", ErrBundleCheckpoint, err)
	}
	return cp, ofChain(cp, p, h)
}

// carriedCheckpoint reads the checkpoint a bundle carries without
// checking its signature (governance.ParseCheckpoint) and checks that it
// is a checkpoint of the bundle's chain. Verify does this for every
// bundle that carries one: a malformed or foreign checkpoint is a bundle
// that is not sound, key or no key.
func carriedCheckpoint(p *Provenance, h *Header) (governance.Checkpoint, error) {
	cp, err := governance.ParseCheckpoint([]byte(p.Checkpoint))
	if err != nil {
		return cp, fmt.Errorf("%w: %w", ErrBundleCheckpoint, err)
	}
	return cp, ofChain(cp, p, h)
}

// ofChain checks that cp is a checkpoint of the bundle's chain.
func ofChain(cp governance.Checkpoint, p *Provenance, h *Header) error {
	if cp.TenantID != h.TenantID || cp.RunID != h.RunID {
		return fmt.Errorf("%w: %w", ErrBundleCheckpoint, &governance.CheckpointRunError{
			TenantID: h.TenantID, RunID: h.RunID, NoteTenantID: cp.TenantID, NoteRunID: cp.RunID, Size: cp.Size})
	}
	mm := &governance.CheckpointMismatchError{RunID: h.RunID, Size: cp.Size, Stored: len(p.Chain), Want: cp.Head}
	switch {
	case cp.Size > len(p.Chain):
		mm.Problem = "records the checkpoint covers are missing from the bundle"
	case p.Chain[cp.Size-1].Hash != cp.Head:
		mm.Got, mm.Problem = p.Chain[cp.Size-1].Hash, "records the checkpoint covers were changed"
	default:
		return nil
	}
	return fmt.Errorf("%w: %w", ErrBundleCheckpoint, mm)
}

// latestCheckpoint returns the note of the checkpoint that covers most of
// a chain of n records, among a run's stored checkpoints (smallest size
// first): one signed after the records were read covers records the
// bundle does not hold, and is left out.
func latestCheckpoint(cps []governance.Checkpoint, n int) string {
	for i := len(cps) - 1; i >= 0; i-- {
		if cps[i].Size <= n {
			return cps[i].Note
		}
	}
	return ""
}
