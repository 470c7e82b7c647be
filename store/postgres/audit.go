package postgres

import (
	"context"

	"github.com/stopline/stopline/governance"
)

var _ governance.AuditStore = (*Store)(nil)

// Orphans implements governance.AuditStore: records, step contents,
// checkpoints and incidents whose run has no row, in every tenant.
func (s *Store) Orphans(ctx context.Context) ([]governance.Orphan, error) { return s.db.Orphans(ctx) }

// RecordIndexes implements governance.AuditStore: the columns stored
// beside each record's body (seq, kind, step_index, at_ns, status,
// inflection, policy_id, total_tokens, total_cost_cents) and the body
// itself, in seq order. An unknown run is governance.ErrNotFound.
func (s *Store) RecordIndexes(ctx context.Context, tenantID, runID string) ([]governance.RecordIndex, error) {
	return s.db.RecordIndexes(ctx, tenantID, runID)
}
