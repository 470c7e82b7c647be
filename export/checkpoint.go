package export

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
)

// ErrNoCheckpoint is returned by VerifyCheckpoint for a bundle that carries
// no checkpoint.
var ErrNoCheckpoint = errors.New("export: bundle carries no checkpoint")

// VerifyCheckpoint checks, offline, the signed checkpoint a verified bundle
// carries against the bundle's own chain: the note must be signed by one
// of verifiers (keys held outside the database that produced the bundle),
// name the bundle's tenant and run, and state a size and head hash that
// the chain in the bundle has. A bundle built from a store whose records
// were rewritten and whose chain was recomputed passes Verify (its chain
// is sound) but fails here.
func VerifyCheckpoint(v *Verified, verifiers note.Verifiers) (governance.Checkpoint, error) {
	p := v.Bundle.provenance()
	if p.Checkpoint == "" {
		return governance.Checkpoint{}, ErrNoCheckpoint
	}
	cp, err := governance.OpenCheckpoint([]byte(p.Checkpoint), verifiers)
	if err != nil {
		return cp, err
	}
	h := v.Bundle.header()
	mm := &governance.CheckpointMismatchError{RunID: h.RunID, Size: cp.Size, Stored: len(p.Chain), Want: cp.Head}
	switch {
	case cp.TenantID != h.TenantID || cp.RunID != h.RunID:
		mm.Problem = fmt.Sprintf("the checkpoint is for run %s of tenant %s", cp.RunID, cp.TenantID)
	case cp.Size > len(p.Chain):
		mm.Problem = "records the checkpoint covers are missing from the bundle"
	case p.Chain[cp.Size-1].Hash != cp.Head:
		mm.Got, mm.Problem = p.Chain[cp.Size-1].Hash, "records the checkpoint covers were changed"
	default:
		return cp, nil
	}
	return cp, mm
}
