package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
)

const insertIncidentSQL = `INSERT INTO incidents
	(tenant_id, incident_id, run_id, trace_id, snapshot_id, policy_id, source, step_index, record_hash,
	 reason, threshold, limit_value, observed, severity, title, message, created_at,
	 status, acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23)`

func (d *Dialect) incidentArgs(inc *incident.Incident) ([]any, error) {
	if !inc.Status.Valid() {
		return nil, fmt.Errorf("incident %s: unknown status %q", inc.ID, inc.Status)
	}
	e := d.Enc()
	args := []any{
		inc.TenantID, inc.ID, inc.RunID, inc.TraceID, inc.SnapshotID, inc.PolicyID, string(inc.Source),
		int64(inc.StepIndex), inc.RecordHash, string(inc.Reason), inc.Threshold, inc.Limit, inc.Observed,
		string(inc.Severity), inc.Title, inc.Message, e.Time("created_at", inc.CreatedAt),
		string(inc.Status), e.TimePtr("acknowledged_at", inc.AcknowledgedAt), inc.AcknowledgedBy,
		e.TimePtr("resolved_at", inc.ResolvedAt), inc.ResolvedBy, inc.Resolution,
	}
	return args, e.Err
}

const incidentColumns = `tenant_id, incident_id, run_id, trace_id, snapshot_id, policy_id, source, step_index,
	record_hash, reason, threshold, limit_value, observed, severity, title, message, created_at,
	status, acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution`

func scanIncident(row Row) (incident.Incident, error) {
	var (
		inc                         incident.Incident
		source, reason, sev, status string
		created, acked, resolved    *int64
	)
	err := row.Scan(&inc.TenantID, &inc.ID, &inc.RunID, &inc.TraceID, &inc.SnapshotID, &inc.PolicyID, &source,
		&inc.StepIndex, &inc.RecordHash, &reason, &inc.Threshold, &inc.Limit, &inc.Observed, &sev, &inc.Title,
		&inc.Message, &created, &status, &acked, &inc.AcknowledgedBy, &resolved, &inc.ResolvedBy, &inc.Resolution)
	if err != nil {
		return inc, err
	}
	inc.Source, inc.Severity, inc.Status = prevention.Source(source), incident.Severity(sev), incident.Status(status)
	if inc.Reason, err = prevention.ParseReason(reason); err != nil {
		return inc, err
	}
	inc.CreatedAt, inc.AcknowledgedAt, inc.ResolvedAt = TimeOf(created), timePtrOf(acked), timePtrOf(resolved)
	return inc, nil
}

// Incident returns one incident of the tenant, or governance.ErrNotFound.
func (db *DB) Incident(ctx context.Context, tenantID, incidentID string) (incident.Incident, error) {
	inc, err := scanIncident(db.R.QueryRow(ctx, `SELECT `+incidentColumns+`
		FROM incidents WHERE tenant_id = $1 AND incident_id = $2`, tenantID, incidentID))
	if errors.Is(err, sql.ErrNoRows) {
		return incident.Incident{}, db.errorf("incident %s of tenant %s: %w", incidentID, tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return incident.Incident{}, db.errorf("reading incident %s of tenant %s: %w", incidentID, tenantID, err)
	}
	return inc, nil
}

// Incidents lists a tenant's incidents, newest (by CreatedAt, then by
// insertion) first, with the filter's run, status, creation interval
// [From, To) and limit.
func (db *DB) Incidents(ctx context.Context, f governance.IncidentFilter) ([]incident.Incident, error) {
	fail := func(err error) ([]incident.Incident, error) {
		return nil, db.errorf("listing incidents of tenant %s: %w", f.TenantID, err)
	}
	e := db.Enc()
	var w filter
	w.add("tenant_id = ?", f.TenantID)
	if f.RunID != "" {
		w.add("run_id = ?", f.RunID)
	}
	if f.Status != "" {
		w.add("status = ?", string(f.Status))
	}
	w.createdIn(&e, "", f.From, f.To)
	if e.Err != nil {
		return fail(e.Err)
	}
	out, err := list(ctx, db, `SELECT `+incidentColumns+` FROM incidents`, &w, "", f.Limit, scanIncident)
	if err != nil {
		return fail(err)
	}
	return out, nil
}

// UpdateIncident stores a lifecycle change made with
// incident.Incident.Transition: it writes the status, acknowledged and
// resolved columns only (inc's other fields are ignored; links and facts
// never change). An unknown incident is governance.ErrNotFound; moving
// the status back (resolved → open, acknowledged → open) is
// incident.ErrInvalidTransition.
func (db *DB) UpdateIncident(ctx context.Context, inc incident.Incident) error {
	fail := func(err error) error {
		return db.errorf("updating incident %s of tenant %s: %w", inc.ID, inc.TenantID, err)
	}
	if !inc.Status.Valid() {
		return fail(fmt.Errorf("unknown status %q", inc.Status))
	}
	e := db.Enc()
	acked, resolved := e.TimePtr("acknowledged_at", inc.AcknowledgedAt), e.TimePtr("resolved_at", inc.ResolvedAt)
	if e.Err != nil {
		return fail(e.Err)
	}
	n, err := db.W.Exec(ctx, `UPDATE incidents SET status = $1, acknowledged_at = $2, acknowledged_by = $3,
			resolved_at = $4, resolved_by = $5, resolution = $6
		WHERE tenant_id = $7 AND incident_id = $8`,
		string(inc.Status), acked, inc.AcknowledgedBy, resolved, inc.ResolvedBy, inc.Resolution, inc.TenantID, inc.ID)
	switch {
	case err != nil && db.Classify(err) == IncidentBackwards:
		return fail(fmt.Errorf("%w: to %s", incident.ErrInvalidTransition, inc.Status))
	case err != nil:
		return fail(err)
	case n == 0:
		return fail(governance.ErrNotFound)
	}
	return nil
}
