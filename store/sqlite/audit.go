package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/trace"
)

var _ governance.AuditStore = (*Store)(nil)

// orphanQueries list the rows, of every tenant, whose run has no row in
// runs: records (and the step content they hold), checkpoints, incidents.
const (
	orphanRecordsSQL = `SELECT tenant_id, run_id, seq, content IS NOT NULL FROM records r
		WHERE NOT EXISTS (SELECT 1 FROM runs WHERE tenant_id = r.tenant_id AND run_id = r.run_id)
		ORDER BY tenant_id, run_id, seq`
	orphanCheckpointsSQL = `SELECT tenant_id, run_id, size, key_name FROM checkpoints c
		WHERE NOT EXISTS (SELECT 1 FROM runs WHERE tenant_id = c.tenant_id AND run_id = c.run_id)
		ORDER BY tenant_id, run_id, size, key_name`
	orphanIncidentsSQL = `SELECT tenant_id, run_id, incident_id FROM incidents i
		WHERE NOT EXISTS (SELECT 1 FROM runs WHERE tenant_id = i.tenant_id AND run_id = i.run_id)
		ORDER BY tenant_id, run_id, incident_id`
)

// Orphans implements governance.AuditStore: records, step contents,
// checkpoints and incidents whose run has no row, in every tenant.
func (s *Store) Orphans(ctx context.Context) ([]governance.Orphan, error) {
	fail := func(err error) ([]governance.Orphan, error) {
		return nil, fmt.Errorf("sqlite: listing rows without their run: %w", err)
	}
	var out []governance.Orphan
	rows, err := s.r.QueryContext(ctx, orphanRecordsSQL)
	if err != nil {
		return fail(err)
	}
	for rows.Next() {
		o := governance.Orphan{Kind: governance.OrphanRecord}
		var content bool
		if err := rows.Scan(&o.TenantID, &o.RunID, &o.Seq, &content); err != nil {
			rows.Close()
			return fail(err)
		}
		out = append(out, o)
		if content {
			o.Kind = governance.OrphanContent
			out = append(out, o)
		}
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	if rows, err = s.r.QueryContext(ctx, orphanCheckpointsSQL); err != nil {
		return fail(err)
	}
	for rows.Next() {
		o := governance.Orphan{Kind: governance.OrphanCheckpoint}
		if err := rows.Scan(&o.TenantID, &o.RunID, &o.Seq, &o.ID); err != nil {
			rows.Close()
			return fail(err)
		}
		out = append(out, o)
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	if rows, err = s.r.QueryContext(ctx, orphanIncidentsSQL); err != nil {
		return fail(err)
	}
	for rows.Next() {
		o := governance.Orphan{Kind: governance.OrphanIncident, Seq: -1}
		if err := rows.Scan(&o.TenantID, &o.RunID, &o.ID); err != nil {
			rows.Close()
			return fail(err)
		}
		out = append(out, o)
	}
	if err := closeRows(rows); err != nil {
		return fail(err)
	}
	return out, nil
}

func closeRows(rows *sql.Rows) error {
	err := rows.Err()
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	return err
}

// RecordIndexes implements governance.AuditStore: the columns stored
// beside each record's body (seq, kind, step_index, at_ns, status,
// inflection, policy_id, total_tokens, total_cost_cents) and the body
// itself, in seq order.
// An unknown run is governance.ErrNotFound.
func (s *Store) RecordIndexes(ctx context.Context, tenantID, runID string) ([]governance.RecordIndex, error) {
	fail := func(err error) ([]governance.RecordIndex, error) {
		return nil, fmt.Errorf("sqlite: reading the record columns of run %s (tenant %s): %w", runID, tenantID, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, kind, step_index, at_ns, status, inflection, policy_id,
		total_tokens, total_cost_cents, body FROM records WHERE tenant_id = ? AND run_id = ? ORDER BY seq`, tenantID, runID)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []governance.RecordIndex
	for rows.Next() {
		var (
			x              governance.RecordIndex
			kind           string
			at             sql.NullInt64
			status, policy sql.NullString
			inflection     int
		)
		if err := rows.Scan(&x.Seq, &kind, &x.StepIndex, &at, &status, &inflection, &policy, &x.TotalTokens, &x.TotalCostCents, &x.Body); err != nil {
			return fail(err)
		}
		x.Kind, x.At, x.Status, x.Inflection, x.PolicyID = trace.Kind(kind), timeOf(at), trace.Status(status.String), inflection != 0, policy.String
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
