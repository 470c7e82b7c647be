package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/stopline/stopline/governance"
)

// RecordExport appends an entry to the tenant's export log. The same
// bundle id and format twice is governance.ErrExportExists; the log is
// append-only (triggers refuse UPDATE, DELETE and TRUNCATE).
func (s *Store) RecordExport(ctx context.Context, e governance.ExportRecord) error {
	fail := func(err error) error {
		return fmt.Errorf("postgres: recording export %s (%s) of tenant %s: %w", e.BundleID, e.Format, e.TenantID, err)
	}
	if e.TenantID == "" || e.BundleID == "" || e.BundleHash == "" {
		return fail(errors.New("an export record needs a tenant, a bundle id and a bundle hash"))
	}
	var en enc
	createdAt := en.time("created_at", e.CreatedAt)
	if en.err != nil {
		return fail(en.err)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO exports
		(tenant_id, bundle_id, format, bundle_type, bundle_hash, run_id, incident_id, key_id, exported_by, reason, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		e.TenantID, e.BundleID, e.Format, e.BundleType, e.BundleHash, e.RunID, e.IncidentID, e.KeyID, e.ExportedBy, e.Reason, createdAt)
	if hasCode(err, codeUniqueViolation, "exports_pkey") {
		return fail(governance.ErrExportExists)
	}
	if err != nil {
		return fail(err)
	}
	return nil
}

// Exports lists a tenant's export log, newest (by CreatedAt, then by
// insertion) first, with the filter's run, incident and limit.
func (s *Store) Exports(ctx context.Context, f governance.ExportFilter) ([]governance.ExportRecord, error) {
	fail := func(err error) ([]governance.ExportRecord, error) {
		return nil, fmt.Errorf("postgres: listing exports of tenant %s: %w", f.TenantID, err)
	}
	var w filter
	w.add("tenant_id = ?", f.TenantID)
	if f.RunID != "" {
		w.add("run_id = ?", f.RunID)
	}
	if f.IncidentID != "" {
		w.add("incident_id = ?", f.IncidentID)
	}
	q := `SELECT tenant_id, bundle_id, format, bundle_type, bundle_hash, run_id, incident_id, key_id, exported_by, reason, created_at
		FROM exports` + w.sql() + ` ORDER BY created_at DESC NULLS LAST, ord DESC` + w.limit(f.Limit)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return fail(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (governance.ExportRecord, error) {
		var (
			e  governance.ExportRecord
			at *int64
		)
		err := r.Scan(&e.TenantID, &e.BundleID, &e.Format, &e.BundleType, &e.BundleHash, &e.RunID,
			&e.IncidentID, &e.KeyID, &e.ExportedBy, &e.Reason, &at)
		e.CreatedAt = timeOf(at)
		return e, err
	})
	if err != nil {
		return fail(err)
	}
	return out, nil
}
