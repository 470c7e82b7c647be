package sqlstore

import (
	"context"
	"errors"

	"github.com/stopline/stopline/governance"
)

// RecordExport appends an entry to the tenant's export log. The same
// bundle id and format twice is governance.ErrExportExists.
func (db *DB) RecordExport(ctx context.Context, e governance.ExportRecord) error {
	fail := func(err error) error {
		return db.errorf("recording export %s (%s) of tenant %s: %w", e.BundleID, e.Format, e.TenantID, err)
	}
	if e.TenantID == "" || e.BundleID == "" || e.BundleHash == "" {
		return fail(errors.New("an export record needs a tenant, a bundle id and a bundle hash"))
	}
	en := db.Enc()
	createdAt := en.Time("created_at", e.CreatedAt)
	if en.Err != nil {
		return fail(en.Err)
	}
	_, err := db.W.Exec(ctx, `INSERT INTO exports
		(tenant_id, bundle_id, format, bundle_type, bundle_hash, run_id, incident_id, key_id, exported_by, reason, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)`,
		e.TenantID, e.BundleID, e.Format, e.BundleType, e.BundleHash, e.RunID, e.IncidentID, e.KeyID, e.ExportedBy, e.Reason, createdAt)
	switch {
	case err != nil && db.Classify(err) == PrimaryKeyTaken:
		return fail(governance.ErrExportExists)
	case err != nil:
		return fail(err)
	}
	return nil
}

// Exports lists a tenant's export log, newest (by CreatedAt, then by
// insertion) first, with the filter's run, incident and limit.
func (db *DB) Exports(ctx context.Context, f governance.ExportFilter) ([]governance.ExportRecord, error) {
	var w filter
	w.add("tenant_id = ?", f.TenantID)
	if f.RunID != "" {
		w.add("run_id = ?", f.RunID)
	}
	if f.IncidentID != "" {
		w.add("incident_id = ?", f.IncidentID)
	}
	const q = `SELECT tenant_id, bundle_id, format, bundle_type, bundle_hash, run_id, incident_id, key_id, exported_by, reason, created_at
		FROM exports`
	out, err := list(ctx, db, q, &w, "", f.Limit, func(r Row) (governance.ExportRecord, error) {
		var (
			e  governance.ExportRecord
			at *int64
		)
		err := r.Scan(&e.TenantID, &e.BundleID, &e.Format, &e.BundleType, &e.BundleHash, &e.RunID,
			&e.IncidentID, &e.KeyID, &e.ExportedBy, &e.Reason, &at)
		e.CreatedAt = TimeOf(at)
		return e, err
	})
	if err != nil {
		return nil, db.errorf("listing exports of tenant %s: %w", f.TenantID, err)
	}
	return out, nil
}
