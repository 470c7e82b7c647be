package sqlite

import (
	"context"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/snapshot"
)

// PutSnapshot stores snap if its id is new for its tenant; storing it
// again is a no-op, and the same id with another content hash is
// governance.ErrSnapshotConflict. A snapshot already stored is found
// without taking the write lock.
func (s *Store) PutSnapshot(ctx context.Context, snap *snapshot.PolicySnapshot) error {
	return s.db.PutSnapshot(ctx, snap)
}

// Snapshot returns a stored snapshot, as stored: callers Verify it.
func (s *Store) Snapshot(ctx context.Context, tenantID, snapshotID string) (*snapshot.PolicySnapshot, error) {
	return s.db.Snapshot(ctx, tenantID, snapshotID)
}

// PublishPolicy stores snap (as PutSnapshot) and appends the tenant's next
// policy version for it, in one BEGIN IMMEDIATE transaction, so that
// concurrent publishes get consecutive versions. The version's tenant,
// snapshot id and content hash are snap's (v may leave them empty, but
// not contradict them); Version is assigned. It returns the version as
// stored.
func (s *Store) PublishPolicy(ctx context.Context, snap *snapshot.PolicySnapshot, v governance.PolicyVersion) (governance.PolicyVersion, error) {
	return s.db.PublishPolicy(ctx, snap, v)
}

// ActivePolicy returns the tenant's latest policy version, or
// governance.ErrNotFound when none was published.
func (s *Store) ActivePolicy(ctx context.Context, tenantID string) (governance.PolicyVersion, error) {
	return s.db.ActivePolicy(ctx, tenantID)
}

// PolicyVersions returns the tenant's policy versions, oldest first.
func (s *Store) PolicyVersions(ctx context.Context, tenantID string) ([]governance.PolicyVersion, error) {
	return s.db.PolicyVersions(ctx, tenantID)
}
