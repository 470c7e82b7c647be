package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/snapshot"
)

// PutSnapshot stores snap if its id is new for its tenant; storing it
// again is a no-op, and the same id with another content hash is
// governance.ErrSnapshotConflict. A snapshot already stored is found by a
// read, without writing; a new one is one INSERT ... ON CONFLICT DO
// NOTHING, so writers storing the same snapshot at once do not conflict.
func (db *DB) PutSnapshot(ctx context.Context, snap *snapshot.PolicySnapshot) error {
	if snap == nil {
		return db.errorf("PutSnapshot: nil snapshot")
	}
	stored, err := storedSnapshotHash(ctx, db.R, snap.TenantID(), snap.ID())
	switch {
	case err == nil:
		return db.checkSnapshotHash(snap, stored)
	case !errors.Is(err, sql.ErrNoRows):
		return db.errorf("reading snapshot %s of tenant %s: %w", snap.ID(), snap.TenantID(), err)
	}
	return db.putSnapshot(ctx, db.W, snap)
}

// putSnapshot inserts snap unless its id is stored, and then checks the
// stored content hash.
func (db *DB) putSnapshot(ctx context.Context, q Querier, snap *snapshot.PolicySnapshot) error {
	fail := func(err error) error {
		return db.errorf("storing snapshot %s of tenant %s: %w", snap.ID(), snap.TenantID(), err)
	}
	if snap.TenantID() == "" || snap.ID() == "" {
		return fail(errors.New("snapshot without tenant or id"))
	}
	policies, err := snapshot.CanonicalOf(snap.Policies())
	if err != nil {
		return fail(err)
	}
	thresholds, err := snapshot.CanonicalOf(snap.Thresholds())
	if err != nil {
		return fail(err)
	}
	e := db.Enc()
	createdAt := e.Time("created_at", snap.CreatedAt())
	if e.Err != nil {
		return fail(e.Err)
	}
	n, err := q.Exec(ctx, `INSERT INTO snapshots
		(tenant_id, snapshot_id, content_hash, policies, thresholds, policy_count, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (tenant_id, snapshot_id) DO NOTHING`,
		snap.TenantID(), snap.ID(), snap.ContentHash(), string(policies), string(thresholds), int64(snap.PolicyCount()), createdAt)
	if err != nil {
		return fail(err)
	}
	if n == 1 {
		return nil
	}
	stored, err := storedSnapshotHash(ctx, q, snap.TenantID(), snap.ID())
	if err != nil {
		return fail(err)
	}
	return db.checkSnapshotHash(snap, stored)
}

func storedSnapshotHash(ctx context.Context, q Querier, tenantID, snapshotID string) (string, error) {
	var h string
	err := q.QueryRow(ctx, `SELECT content_hash FROM snapshots WHERE tenant_id = $1 AND snapshot_id = $2`,
		tenantID, snapshotID).Scan(&h)
	return h, err
}

func (db *DB) checkSnapshotHash(snap *snapshot.PolicySnapshot, stored string) error {
	if stored != snap.ContentHash() {
		return db.errorf("snapshot %s of tenant %s: stored content hash %s, given %s: %w",
			snap.ID(), snap.TenantID(), stored, snap.ContentHash(), governance.ErrSnapshotConflict)
	}
	return nil
}

// Snapshot returns a stored snapshot, as stored: callers Verify it.
func (db *DB) Snapshot(ctx context.Context, tenantID, snapshotID string) (*snapshot.PolicySnapshot, error) {
	var (
		id, tenant, hash     string
		policies, thresholds string
		count                int
		createdAt            *int64
	)
	err := db.R.QueryRow(ctx, `SELECT snapshot_id, tenant_id, content_hash, policies, thresholds, policy_count, created_at
		FROM snapshots WHERE tenant_id = $1 AND snapshot_id = $2`, tenantID, snapshotID).
		Scan(&id, &tenant, &hash, &policies, &thresholds, &count, &createdAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, db.errorf("snapshot %s of tenant %s: %w", snapshotID, tenantID, governance.ErrNotFound)
	}
	if err == nil {
		var snap *snapshot.PolicySnapshot
		snap, err = snapshot.Restore(id, tenant, hash, count, []byte(policies), []byte(thresholds), TimeOf(createdAt))
		if err == nil {
			return snap, nil
		}
	}
	return nil, db.errorf("reading snapshot %s of tenant %s: %w", snapshotID, tenantID, err)
}

// PublishPolicy stores snap (as PutSnapshot) and appends the tenant's next
// policy version for it, in one transaction that first runs the
// dialect's LockPublish, so that concurrent publishes get consecutive
// versions. The version's tenant, snapshot id and content hash are
// snap's (v may leave them empty, but not contradict them); Version is
// assigned. It returns the version as stored.
func (db *DB) PublishPolicy(ctx context.Context, snap *snapshot.PolicySnapshot, v governance.PolicyVersion) (governance.PolicyVersion, error) {
	if snap == nil {
		return governance.PolicyVersion{}, db.errorf("PublishPolicy: nil snapshot")
	}
	fail := func(err error) (governance.PolicyVersion, error) {
		return governance.PolicyVersion{}, db.errorf("publishing snapshot %s for tenant %s: %w", snap.ID(), snap.TenantID(), err)
	}
	v, err := v.For(snap)
	if err != nil {
		return governance.PolicyVersion{}, err
	}
	e := db.Enc()
	publishedAt := e.Time("published_at", v.PublishedAt)
	if e.Err != nil {
		return fail(e.Err)
	}
	err = db.Tx(ctx, func(q Querier) error {
		if db.LockPublish != "" {
			if _, err := q.Exec(ctx, db.LockPublish, v.TenantID); err != nil {
				return err
			}
		}
		if err := db.putSnapshot(ctx, q, snap); err != nil {
			return err
		}
		return q.QueryRow(ctx, `INSERT INTO policy_versions
			(tenant_id, version, snapshot_id, content_hash, published_by, published_at, note)
			SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4, $5, $6
			FROM policy_versions WHERE tenant_id = $1
			RETURNING version`,
			v.TenantID, v.SnapshotID, v.ContentHash, v.PublishedBy, publishedAt, v.Note).Scan(&v.Version)
	})
	if err != nil {
		if errors.Is(err, governance.ErrSnapshotConflict) {
			return governance.PolicyVersion{}, err
		}
		return fail(err)
	}
	if !v.PublishedAt.IsZero() {
		v.PublishedAt = time.Unix(0, v.PublishedAt.UnixNano()).UTC() // as read back
	}
	return v, nil
}

const policyVersionColumns = `tenant_id, version, snapshot_id, content_hash, published_by, published_at, note`

func scanPolicyVersion(row Row) (governance.PolicyVersion, error) {
	var (
		v  governance.PolicyVersion
		at *int64
	)
	err := row.Scan(&v.TenantID, &v.Version, &v.SnapshotID, &v.ContentHash, &v.PublishedBy, &at, &v.Note)
	v.PublishedAt = TimeOf(at)
	return v, err
}

// ActivePolicy returns the tenant's latest policy version, or
// governance.ErrNotFound when none was published.
func (db *DB) ActivePolicy(ctx context.Context, tenantID string) (governance.PolicyVersion, error) {
	v, err := scanPolicyVersion(db.R.QueryRow(ctx, `SELECT `+policyVersionColumns+`
		FROM policy_versions WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1`, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return governance.PolicyVersion{}, db.errorf("active policy of tenant %s: none published: %w", tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return governance.PolicyVersion{}, db.errorf("reading active policy of tenant %s: %w", tenantID, err)
	}
	return v, nil
}

// PolicyVersions returns the tenant's policy versions, oldest first.
func (db *DB) PolicyVersions(ctx context.Context, tenantID string) ([]governance.PolicyVersion, error) {
	rows, err := db.R.Query(ctx, `SELECT `+policyVersionColumns+`
		FROM policy_versions WHERE tenant_id = $1 ORDER BY version`, tenantID)
	out, err := collect(rows, err, scanPolicyVersion)
	if err != nil {
		return nil, db.errorf("reading policy versions of tenant %s: %w", tenantID, err)
	}
	return out, nil
}
