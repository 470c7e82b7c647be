package bundle

import (
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/internal/checkpoint"
)

// ErrNoCheckpoint is returned by VerifyCheckpoint for a bundle that
// carries no checkpoint.
var ErrNoCheckpoint = errors.New("bundle: bundle carries no checkpoint")

// Checkpoint is what the signed checkpoint a bundle carries states: the
// run's chain had Size records, the last of which hashes to Head, at At,
// signed by the key named KeyName. Note is the signed note, verbatim.
type Checkpoint struct {
	TenantID string
	RunID    string
	Size     int
	Head     string
	At       time.Time
	KeyName  string
	Note     string
}

// VerifyCheckpoint checks, offline, the signed checkpoint a verified
// bundle carries against the bundle's own chain: the note must be signed
// by one of verifiers (keys held outside the database that produced the
// bundle), name the bundle's tenant and run, and state a size no larger
// than the chain and the hash of the chain's record at that size as its
// head. A bundle built from a store whose records were rewritten and
// whose chain was recomputed passes Verify (its chain is sound) but fails
// here. Failures match ErrCheckpoint and governance's sentinels
// (ErrCheckpoint for a note that does not verify, ErrCheckpointRun,
// ErrCheckpointMismatch); a bundle without a checkpoint is
// ErrNoCheckpoint.
func VerifyCheckpoint(v *Verified, verifiers note.Verifiers) (Checkpoint, error) {
	p, h := v.Bundle.provenance(), v.Bundle.header()
	if p.Checkpoint == "" {
		return Checkpoint{}, ErrNoCheckpoint
	}
	st, err := checkpoint.Open([]byte(p.Checkpoint), verifiers)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	return Checkpoint(st), ofChain(st, p, h)
}

// carriedCheckpoint reads the checkpoint a bundle carries without
// checking its signature and checks that it is a checkpoint of the
// bundle's chain. Verify does this for every bundle that carries one: a
// malformed or foreign checkpoint is a bundle that is not sound, key or
// no key.
func carriedCheckpoint(p *Provenance, h *Header) error {
	st, err := checkpoint.Parse([]byte(p.Checkpoint))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	return ofChain(st, p, h)
}

// ofChain checks that st is a checkpoint of the bundle's chain.
func ofChain(st checkpoint.Statement, p *Provenance, h *Header) error {
	return ofChainOf(st, h, len(p.Chain), func(i int) string { return p.Chain[i].Hash })
}

// ofChainOf checks that st is a checkpoint of a chain of n records whose
// record i hashes to hash(i).
func ofChainOf(st checkpoint.Statement, h *Header, n int, hash func(i int) string) error {
	if st.TenantID != h.TenantID || st.RunID != h.RunID {
		return fmt.Errorf("%w: %w: %w: the note is of run %s of tenant %q, the bundle of run %s of tenant %q (size %d)",
			ErrCheckpoint, checkpoint.ErrRun, checkpoint.ErrMismatch, st.RunID, st.TenantID, h.RunID, h.TenantID, st.Size)
	}
	switch {
	case st.Size > n:
		return fmt.Errorf("%w: %w: run %s: records the checkpoint covers are missing from the bundle (checkpoint covers %d records with head %s; the bundle holds %d)",
			ErrCheckpoint, checkpoint.ErrMismatch, h.RunID, st.Size, st.Head, n)
	case hash(st.Size-1) != st.Head:
		return fmt.Errorf("%w: %w: run %s: records the checkpoint covers were changed (checkpoint covers %d records with head %s; record %d of the bundle hashes to %s)",
			ErrCheckpoint, checkpoint.ErrMismatch, h.RunID, st.Size, st.Head, st.Size-1, hash(st.Size-1))
	}
	return nil
}
