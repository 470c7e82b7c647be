package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/snapshot"
)

// PutSnapshot stores snap if its id is new for its tenant; storing it
// again is a no-op, and the same id with another content hash is
// governance.ErrSnapshotConflict. It is one INSERT ... ON CONFLICT DO
// NOTHING, so replicas storing the same snapshot at once do not conflict.
func (s *Store) PutSnapshot(ctx context.Context, snap *snapshot.PolicySnapshot) error {
	if snap == nil {
		return errors.New("postgres: PutSnapshot: nil snapshot")
	}
	return putSnapshot(ctx, s.pool, snap)
}

// putSnapshot inserts snap unless its id is stored, and then checks the
// stored content hash.
func putSnapshot(ctx context.Context, q querier, snap *snapshot.PolicySnapshot) error {
	fail := func(err error) error {
		return fmt.Errorf("postgres: storing snapshot %s of tenant %s: %w", snap.ID(), snap.TenantID(), err)
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
	var e enc
	createdAt := e.time("created_at", snap.CreatedAt())
	if e.err != nil {
		return fail(e.err)
	}
	tag, err := q.Exec(ctx, `INSERT INTO snapshots
		(tenant_id, snapshot_id, content_hash, policies, thresholds, policy_count, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (tenant_id, snapshot_id) DO NOTHING`,
		snap.TenantID(), snap.ID(), snap.ContentHash(), string(policies), string(thresholds), snap.PolicyCount(), createdAt)
	if err != nil {
		return fail(err)
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	stored, err := storedSnapshotHash(ctx, q, snap.TenantID(), snap.ID())
	if err != nil {
		return fail(err)
	}
	return checkSnapshotHash(snap, stored)
}

func storedSnapshotHash(ctx context.Context, q querier, tenantID, snapshotID string) (string, error) {
	var h string
	err := q.QueryRow(ctx, `SELECT content_hash FROM snapshots WHERE tenant_id = $1 AND snapshot_id = $2`,
		tenantID, snapshotID).Scan(&h)
	return h, err
}

func checkSnapshotHash(snap *snapshot.PolicySnapshot, stored string) error {
	if stored != snap.ContentHash() {
		return fmt.Errorf("postgres: snapshot %s of tenant %s: stored content hash %s, given %s: %w",
			snap.ID(), snap.TenantID(), stored, snap.ContentHash(), governance.ErrSnapshotConflict)
	}
	return nil
}

// Snapshot returns a stored snapshot, as stored: callers Verify it.
func (s *Store) Snapshot(ctx context.Context, tenantID, snapshotID string) (*snapshot.PolicySnapshot, error) {
	var (
		w                    snapshotRow
		policies, thresholds string
		createdAt            *int64
	)
	err := s.pool.QueryRow(ctx, `SELECT snapshot_id, tenant_id, content_hash, policies, thresholds, policy_count, created_at
		FROM snapshots WHERE tenant_id = $1 AND snapshot_id = $2`, tenantID, snapshotID).
		Scan(&w.SnapshotID, &w.TenantID, &w.ContentHash, &policies, &thresholds, &w.PolicyCount, &createdAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("postgres: snapshot %s of tenant %s: %w", snapshotID, tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("postgres: reading snapshot %s of tenant %s: %w", snapshotID, tenantID, err)
	}
	snap, err := snapshot.Restore(w.SnapshotID, w.TenantID, w.ContentHash, w.PolicyCount, []byte(policies), []byte(thresholds), timeOf(createdAt))
	if err != nil {
		return nil, fmt.Errorf("postgres: reading snapshot %s of tenant %s: %w", snapshotID, tenantID, err)
	}
	return snap, nil
}

// snapshotRow is a snapshot as stored.
type snapshotRow struct {
	SnapshotID  string
	TenantID    string
	ContentHash string
	PolicyCount int
}

// PublishPolicy stores snap (as PutSnapshot) and appends the tenant's next
// policy version for it, in one transaction that holds a per-tenant
// advisory lock, so that concurrent publishes, from any replica, get
// consecutive versions (other tenants are not held up). The version's
// tenant, snapshot id and content hash are snap's (v may leave them
// empty, but not contradict them); Version is assigned. It returns the
// version as stored.
func (s *Store) PublishPolicy(ctx context.Context, snap *snapshot.PolicySnapshot, v governance.PolicyVersion) (governance.PolicyVersion, error) {
	if snap == nil {
		return governance.PolicyVersion{}, errors.New("postgres: PublishPolicy: nil snapshot")
	}
	fail := func(err error) (governance.PolicyVersion, error) {
		return governance.PolicyVersion{}, fmt.Errorf("postgres: publishing snapshot %s for tenant %s: %w", snap.ID(), snap.TenantID(), err)
	}
	v, err := v.For(snap)
	if err != nil {
		return governance.PolicyVersion{}, err
	}
	var e enc
	publishedAt := e.time("published_at", v.PublishedAt)
	if e.err != nil {
		return fail(e.err)
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext($2))`, lockClassPublish, v.TenantID); err != nil {
			return err
		}
		if err := putSnapshot(ctx, tx, snap); err != nil {
			return err
		}
		return tx.QueryRow(ctx, `INSERT INTO policy_versions
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

func scanPolicyVersion(row pgx.Row) (governance.PolicyVersion, error) {
	var (
		v  governance.PolicyVersion
		at *int64
	)
	err := row.Scan(&v.TenantID, &v.Version, &v.SnapshotID, &v.ContentHash, &v.PublishedBy, &at, &v.Note)
	v.PublishedAt = timeOf(at)
	return v, err
}

// ActivePolicy returns the tenant's latest policy version, or
// governance.ErrNotFound when none was published.
func (s *Store) ActivePolicy(ctx context.Context, tenantID string) (governance.PolicyVersion, error) {
	v, err := scanPolicyVersion(s.pool.QueryRow(ctx, `SELECT `+policyVersionColumns+`
		FROM policy_versions WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1`, tenantID))
	if errors.Is(err, pgx.ErrNoRows) {
		return governance.PolicyVersion{}, fmt.Errorf("postgres: active policy of tenant %s: none published: %w", tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return governance.PolicyVersion{}, fmt.Errorf("postgres: reading active policy of tenant %s: %w", tenantID, err)
	}
	return v, nil
}

// PolicyVersions returns the tenant's policy versions, oldest first.
func (s *Store) PolicyVersions(ctx context.Context, tenantID string) ([]governance.PolicyVersion, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+policyVersionColumns+`
		FROM policy_versions WHERE tenant_id = $1 ORDER BY version`, tenantID)
	if err == nil {
		var out []governance.PolicyVersion
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (governance.PolicyVersion, error) { return scanPolicyVersion(r) })
		if err == nil {
			return out, nil
		}
	}
	return nil, fmt.Errorf("postgres: reading policy versions of tenant %s: %w", tenantID, err)
}
