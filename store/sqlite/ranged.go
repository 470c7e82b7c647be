package sqlite

import (
	"context"

	"github.com/stopline/stopline/governance"
)

var _ governance.RangeStore = (*Store)(nil)

// ReadRecords implements governance.RangeStore: the records of a run with
// seq in [r.From, r.To), read in one query over the records' primary key,
// with the columns beside them and their content when asked.
func (s *Store) ReadRecords(ctx context.Context, tenantID, runID string, r governance.RecordRange) ([]governance.StoredRecord, error) {
	return s.db.ReadRecords(ctx, tenantID, runID, r)
}

// ContentCount implements governance.RangeStore: how many step contents
// the run has stored.
func (s *Store) ContentCount(ctx context.Context, tenantID, runID string) (int, error) {
	return s.db.ContentCount(ctx, tenantID, runID)
}
