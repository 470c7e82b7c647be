package sqlite

import (
	"context"

	"github.com/stopline/stopline/governance"
)

// PutCheckpoint stores a signed checkpoint of a run's chain. The same
// checkpoint again is a no-op; another note for the same run, size and key
// is governance.ErrChainConflict; an unknown run is governance.ErrNotFound.
func (s *Store) PutCheckpoint(ctx context.Context, c governance.Checkpoint) error {
	return s.db.PutCheckpoint(ctx, c)
}

// Checkpoints returns a run's checkpoints, smallest size first. An
// unknown run is governance.ErrNotFound.
func (s *Store) Checkpoints(ctx context.Context, tenantID, runID string) ([]governance.Checkpoint, error) {
	return s.db.Checkpoints(ctx, tenantID, runID)
}
