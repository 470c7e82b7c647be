package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/mattn/go-sqlite3"

	"github.com/stopline/stopline/governance"
)

// RecordExport appends an entry to the tenant's export log. The same
// bundle id and format twice is governance.ErrExportExists; the log is
// append-only (triggers refuse UPDATE and DELETE).
func (s *Store) RecordExport(ctx context.Context, e governance.ExportRecord) error {
	fail := func(err error) error {
		return fmt.Errorf("sqlite: recording export %s (%s) of tenant %s: %w", e.BundleID, e.Format, e.TenantID, err)
	}
	if e.TenantID == "" || e.BundleID == "" || e.BundleHash == "" {
		return fail(errors.New("an export record needs a tenant, a bundle id and a bundle hash"))
	}
	var en enc
	createdAt := en.time("created_at", e.CreatedAt)
	if en.err != nil {
		return fail(en.err)
	}
	_, err := s.w.ExecContext(ctx, `INSERT INTO exports
		(tenant_id, bundle_id, format, bundle_type, bundle_hash, run_id, incident_id, key_id, exported_by, reason, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		e.TenantID, e.BundleID, e.Format, e.BundleType, e.BundleHash, e.RunID, e.IncidentID, e.KeyID, e.ExportedBy, e.Reason, createdAt)
	if se, ok := sqliteError(err); ok && se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey {
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
		return nil, fmt.Errorf("sqlite: listing exports of tenant %s: %w", f.TenantID, err)
	}
	where := []string{"tenant_id = ?"}
	args := []any{f.TenantID}
	if f.RunID != "" {
		where, args = append(where, "run_id = ?"), append(args, f.RunID)
	}
	if f.IncidentID != "" {
		where, args = append(where, "incident_id = ?"), append(args, f.IncidentID)
	}
	q := `SELECT tenant_id, bundle_id, format, bundle_type, bundle_hash, run_id, incident_id, key_id, exported_by, reason, created_at
		FROM exports WHERE ` + strings.Join(where, " AND ") + ` ORDER BY created_at DESC, rowid DESC`
	if f.Limit > 0 {
		q, args = q+" LIMIT ?", append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []governance.ExportRecord
	for rows.Next() {
		var (
			e  governance.ExportRecord
			at sql.NullInt64
		)
		if err := rows.Scan(&e.TenantID, &e.BundleID, &e.Format, &e.BundleType, &e.BundleHash, &e.RunID,
			&e.IncidentID, &e.KeyID, &e.ExportedBy, &e.Reason, &at); err != nil {
			return fail(err)
		}
		e.CreatedAt = timeOf(at)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}
