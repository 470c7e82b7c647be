package sqlstore

import (
	"context"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/trace"
)

// Orphans lists, in every tenant, the rows whose run has no row in runs:
// records (and the step content they hold), checkpoints, incidents.
func (db *DB) Orphans(ctx context.Context) ([]governance.Orphan, error) {
	var out []governance.Orphan
	queries := []struct {
		sql  string
		scan func(Row) error
	}{
		{`SELECT tenant_id, run_id, seq, content IS NOT NULL FROM records r
			WHERE NOT EXISTS (SELECT 1 FROM runs WHERE tenant_id = r.tenant_id AND run_id = r.run_id)
			ORDER BY tenant_id, run_id, seq`, func(row Row) error {
			o := governance.Orphan{Kind: governance.OrphanRecord}
			var content bool
			if err := row.Scan(&o.TenantID, &o.RunID, &o.Seq, &content); err != nil {
				return err
			}
			out = append(out, o)
			if content {
				o.Kind = governance.OrphanContent
				out = append(out, o)
			}
			return nil
		}},
		{`SELECT tenant_id, run_id, size, key_name FROM checkpoints c
			WHERE NOT EXISTS (SELECT 1 FROM runs WHERE tenant_id = c.tenant_id AND run_id = c.run_id)
			ORDER BY tenant_id, run_id, size, key_name`, func(row Row) error {
			o := governance.Orphan{Kind: governance.OrphanCheckpoint}
			err := row.Scan(&o.TenantID, &o.RunID, &o.Seq, &o.ID)
			out = append(out, o)
			return err
		}},
		{`SELECT tenant_id, run_id, incident_id FROM incidents i
			WHERE NOT EXISTS (SELECT 1 FROM runs WHERE tenant_id = i.tenant_id AND run_id = i.run_id)
			ORDER BY tenant_id, run_id, incident_id`, func(row Row) error {
			o := governance.Orphan{Kind: governance.OrphanIncident, Seq: -1}
			err := row.Scan(&o.TenantID, &o.RunID, &o.ID)
			out = append(out, o)
			return err
		}},
	}
	for _, q := range queries {
		rows, err := db.R.Query(ctx, q.sql)
		if err := each(rows, err, q.scan); err != nil {
			return nil, db.errorf("listing rows without their run: %w", err)
		}
	}
	return out, nil
}

// RecordIndexes returns the columns stored beside each of a run's records
// (seq, kind, step_index, at_ns, status, inflection, policy_id,
// total_tokens, total_cost_cents) and the body itself, in seq order. An
// unknown run is governance.ErrNotFound.
func (db *DB) RecordIndexes(ctx context.Context, tenantID, runID string) ([]governance.RecordIndex, error) {
	rows, err := db.R.Query(ctx, `SELECT seq, kind, step_index, at_ns, status, inflection, policy_id,
		total_tokens, total_cost_cents, body FROM records WHERE tenant_id = $1 AND run_id = $2 ORDER BY seq`, tenantID, runID)
	out, err := collect(rows, err, func(row Row) (governance.RecordIndex, error) {
		var (
			x              governance.RecordIndex
			kind           string
			at             *int64
			status, policy *string
		)
		err := row.Scan(&x.Seq, &kind, &x.StepIndex, &at, &status, &x.Inflection, &policy, &x.TotalTokens, &x.TotalCostCents, &x.Body)
		x.Kind, x.At, x.Status, x.PolicyID = trace.Kind(kind), TimeOf(at), trace.Status(deref(status)), deref(policy)
		return x, err
	})
	if err != nil {
		return nil, db.errorf("reading the record columns of run %s (tenant %s): %w", runID, tenantID, err)
	}
	if len(out) == 0 {
		if err := db.RunExists(ctx, tenantID, runID); err != nil {
			return nil, err
		}
	}
	return out, nil
}
