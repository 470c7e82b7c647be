package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/snapshot"
)

// dbtx is what both *sql.DB and *sql.Tx offer.
type dbtx interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// PutSnapshot stores snap if its id is new for its tenant; storing it
// again is a no-op, and the same id with another content hash is
// governance.ErrSnapshotConflict. A snapshot already stored is found
// without taking the write lock.
func (s *Store) PutSnapshot(ctx context.Context, snap *snapshot.PolicySnapshot) error {
	if snap == nil {
		return errors.New("sqlite: PutSnapshot: nil snapshot")
	}
	stored, err := storedSnapshotHash(ctx, s.r, snap.TenantID(), snap.ID())
	switch {
	case err == nil:
		return checkSnapshotHash(snap, stored)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("sqlite: reading snapshot %s of tenant %s: %w", snap.ID(), snap.TenantID(), err)
	}
	return putSnapshot(ctx, s.w, snap)
}

// putSnapshot inserts snap unless its id is stored, and then checks the
// stored content hash.
func putSnapshot(ctx context.Context, db dbtx, snap *snapshot.PolicySnapshot) error {
	fail := func(err error) error {
		return fmt.Errorf("sqlite: storing snapshot %s of tenant %s: %w", snap.ID(), snap.TenantID(), err)
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
	res, err := db.ExecContext(ctx, `INSERT INTO snapshots
		(tenant_id, snapshot_id, content_hash, policies, thresholds, policy_count, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, snapshot_id) DO NOTHING`,
		snap.TenantID(), snap.ID(), snap.ContentHash(), string(policies), string(thresholds), snap.PolicyCount(), createdAt)
	if err != nil {
		return fail(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fail(err)
	} else if n == 1 {
		return nil
	}
	stored, err := storedSnapshotHash(ctx, db, snap.TenantID(), snap.ID())
	if err != nil {
		return fail(err)
	}
	return checkSnapshotHash(snap, stored)
}

func storedSnapshotHash(ctx context.Context, db dbtx, tenantID, snapshotID string) (string, error) {
	var h string
	err := db.QueryRowContext(ctx,
		`SELECT content_hash FROM snapshots WHERE tenant_id = ? AND snapshot_id = ?`, tenantID, snapshotID).Scan(&h)
	return h, err
}

func checkSnapshotHash(snap *snapshot.PolicySnapshot, stored string) error {
	if stored != snap.ContentHash() {
		return fmt.Errorf("sqlite: snapshot %s of tenant %s: stored content hash %s, given %s: %w",
			snap.ID(), snap.TenantID(), stored, snap.ContentHash(), governance.ErrSnapshotConflict)
	}
	return nil
}

// Snapshot returns a stored snapshot, as stored: callers Verify it.
func (s *Store) Snapshot(ctx context.Context, tenantID, snapshotID string) (*snapshot.PolicySnapshot, error) {
	var (
		w          snapshotRow
		policies   string
		thresholds string
		createdAt  sql.NullInt64
	)
	err := s.r.QueryRowContext(ctx, `SELECT snapshot_id, tenant_id, content_hash, policies, thresholds, policy_count, created_at
		FROM snapshots WHERE tenant_id = ? AND snapshot_id = ?`, tenantID, snapshotID).
		Scan(&w.SnapshotID, &w.TenantID, &w.ContentHash, &policies, &thresholds, &w.PolicyCount, &createdAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("sqlite: snapshot %s of tenant %s: %w", snapshotID, tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading snapshot %s of tenant %s: %w", snapshotID, tenantID, err)
	}
	snap, err := snapshot.Restore(w.SnapshotID, w.TenantID, w.ContentHash, w.PolicyCount, []byte(policies), []byte(thresholds), timeOf(createdAt))
	if err != nil {
		return nil, fmt.Errorf("sqlite: reading snapshot %s of tenant %s: %w", snapshotID, tenantID, err)
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
// policy version for it, in one BEGIN IMMEDIATE transaction, so that
// concurrent publishes get consecutive versions. The version's tenant,
// snapshot id and content hash are snap's (v may leave them empty, but
// not contradict them); Version is assigned. It returns the version as
// stored.
func (s *Store) PublishPolicy(ctx context.Context, snap *snapshot.PolicySnapshot, v governance.PolicyVersion) (governance.PolicyVersion, error) {
	if snap == nil {
		return governance.PolicyVersion{}, errors.New("sqlite: PublishPolicy: nil snapshot")
	}
	fail := func(err error) (governance.PolicyVersion, error) {
		return governance.PolicyVersion{}, fmt.Errorf("sqlite: publishing snapshot %s for tenant %s: %w", snap.ID(), snap.TenantID(), err)
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
	err = s.write(ctx, func(tx *sql.Tx) error {
		if err := putSnapshot(ctx, tx, snap); err != nil {
			return err
		}
		return tx.QueryRowContext(ctx, `INSERT INTO policy_versions
			(tenant_id, version, snapshot_id, content_hash, published_by, published_at, note)
			SELECT ?1, COALESCE(MAX(version), 0) + 1, ?2, ?3, ?4, ?5, ?6
			FROM policy_versions WHERE tenant_id = ?1
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

func scanPolicyVersion(row rowScanner) (governance.PolicyVersion, error) {
	var (
		v  governance.PolicyVersion
		at sql.NullInt64
	)
	err := row.Scan(&v.TenantID, &v.Version, &v.SnapshotID, &v.ContentHash, &v.PublishedBy, &at, &v.Note)
	v.PublishedAt = timeOf(at)
	return v, err
}

// ActivePolicy returns the tenant's latest policy version, or
// governance.ErrNotFound when none was published.
func (s *Store) ActivePolicy(ctx context.Context, tenantID string) (governance.PolicyVersion, error) {
	v, err := scanPolicyVersion(s.r.QueryRowContext(ctx, `SELECT `+policyVersionColumns+`
		FROM policy_versions WHERE tenant_id = ? ORDER BY version DESC LIMIT 1`, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return governance.PolicyVersion{}, fmt.Errorf("sqlite: active policy of tenant %s: none published: %w", tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return governance.PolicyVersion{}, fmt.Errorf("sqlite: reading active policy of tenant %s: %w", tenantID, err)
	}
	return v, nil
}

// PolicyVersions returns the tenant's policy versions, oldest first.
func (s *Store) PolicyVersions(ctx context.Context, tenantID string) ([]governance.PolicyVersion, error) {
	fail := func(err error) ([]governance.PolicyVersion, error) {
		return nil, fmt.Errorf("sqlite: reading policy versions of tenant %s: %w", tenantID, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT `+policyVersionColumns+`
		FROM policy_versions WHERE tenant_id = ? ORDER BY version`, tenantID)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []governance.PolicyVersion
	for rows.Next() {
		v, err := scanPolicyVersion(rows)
		if err != nil {
			return fail(err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}
