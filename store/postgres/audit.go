package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/trace"
)

var _ governance.AuditStore = (*Store)(nil)

// Orphans implements governance.AuditStore: records, step contents,
// checkpoints and incidents whose run has no row, in every tenant.
func (s *Store) Orphans(ctx context.Context) ([]governance.Orphan, error) {
	fail := func(err error) ([]governance.Orphan, error) {
		return nil, fmt.Errorf("postgres: listing rows without their run: %w", err)
	}
	var out []governance.Orphan
	collect := func(q string, scan func(rows pgx.Rows) error) error {
		rows, err := s.pool.Query(ctx, q)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			if err := scan(rows); err != nil {
				return err
			}
		}
		return rows.Err()
	}
	err := collect(`SELECT tenant_id, run_id, seq, content IS NOT NULL FROM records r
		WHERE NOT EXISTS (SELECT 1 FROM runs WHERE tenant_id = r.tenant_id AND run_id = r.run_id)
		ORDER BY tenant_id, run_id, seq`, func(rows pgx.Rows) error {
		o := governance.Orphan{Kind: governance.OrphanRecord}
		var content bool
		if err := rows.Scan(&o.TenantID, &o.RunID, &o.Seq, &content); err != nil {
			return err
		}
		out = append(out, o)
		if content {
			o.Kind = governance.OrphanContent
			out = append(out, o)
		}
		return nil
	})
	if err != nil {
		return fail(err)
	}
	err = collect(`SELECT tenant_id, run_id, size, key_name FROM checkpoints c
		WHERE NOT EXISTS (SELECT 1 FROM runs WHERE tenant_id = c.tenant_id AND run_id = c.run_id)
		ORDER BY tenant_id, run_id, size, key_name`, func(rows pgx.Rows) error {
		o := governance.Orphan{Kind: governance.OrphanCheckpoint}
		if err := rows.Scan(&o.TenantID, &o.RunID, &o.Seq, &o.ID); err != nil {
			return err
		}
		out = append(out, o)
		return nil
	})
	if err != nil {
		return fail(err)
	}
	err = collect(`SELECT tenant_id, run_id, incident_id FROM incidents i
		WHERE NOT EXISTS (SELECT 1 FROM runs WHERE tenant_id = i.tenant_id AND run_id = i.run_id)
		ORDER BY tenant_id, run_id, incident_id`, func(rows pgx.Rows) error {
		o := governance.Orphan{Kind: governance.OrphanIncident, Seq: -1}
		if err := rows.Scan(&o.TenantID, &o.RunID, &o.ID); err != nil {
			return err
		}
		out = append(out, o)
		return nil
	})
	if err != nil {
		return fail(err)
	}
	return out, nil
}

// RecordIndexes implements governance.AuditStore: the columns stored
// beside each record's body (seq, kind, step_index, at_ns, status,
// inflection, policy_id, total_tokens, total_cost_cents) and the body
// itself, in seq order.
// An unknown run is governance.ErrNotFound.
func (s *Store) RecordIndexes(ctx context.Context, tenantID, runID string) ([]governance.RecordIndex, error) {
	fail := func(err error) ([]governance.RecordIndex, error) {
		return nil, fmt.Errorf("postgres: reading the record columns of run %s (tenant %s): %w", runID, tenantID, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, kind, step_index, at_ns, status, inflection, policy_id,
		total_tokens, total_cost_cents, body FROM records WHERE tenant_id = $1 AND run_id = $2 ORDER BY seq`, tenantID, runID)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []governance.RecordIndex
	for rows.Next() {
		var (
			x              governance.RecordIndex
			kind           string
			at             *int64
			status, policy *string
		)
		if err := rows.Scan(&x.Seq, &kind, &x.StepIndex, &at, &status, &x.Inflection, &policy, &x.TotalTokens, &x.TotalCostCents, &x.Body); err != nil {
			return fail(err)
		}
		x.Kind, x.At = trace.Kind(kind), timeOf(at)
		if status != nil {
			x.Status = trace.Status(*status)
		}
		if policy != nil {
			x.PolicyID = *policy
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	if len(out) == 0 {
		if err := s.runExists(ctx, tenantID, runID); err != nil {
			return nil, err
		}
	}
	return out, nil
}
