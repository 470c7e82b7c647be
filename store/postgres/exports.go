package postgres

import (
	"context"

	"github.com/stopline/stopline/governance"
)

// RecordExport appends an entry to the tenant's export log. The same
// bundle id and format twice is governance.ErrExportExists; the log is
// append-only (triggers refuse UPDATE, DELETE and TRUNCATE).
func (s *Store) RecordExport(ctx context.Context, e governance.ExportRecord) error {
	return s.db.RecordExport(ctx, e)
}

// Exports lists a tenant's export log, newest (by CreatedAt, then by
// insertion) first, with the filter's run, incident and limit.
func (s *Store) Exports(ctx context.Context, f governance.ExportFilter) ([]governance.ExportRecord, error) {
	return s.db.Exports(ctx, f)
}
