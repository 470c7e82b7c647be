package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/mattn/go-sqlite3"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
)

const insertIncidentSQL = `INSERT INTO incidents
	(tenant_id, incident_id, run_id, trace_id, snapshot_id, policy_id, source, step_index, record_hash,
	 reason, threshold, limit_value, observed, severity, title, message, created_at,
	 status, acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// raiseBackwards is the RAISE message of incidents_lifecycle_forward.
const raiseBackwards = "stopline: incident status cannot go back"

func incidentArgs(inc *incident.Incident) ([]any, error) {
	if !inc.Status.Valid() {
		return nil, fmt.Errorf("incident %s: unknown status %q", inc.ID, inc.Status)
	}
	var e enc
	args := []any{
		inc.TenantID, inc.ID, inc.RunID, inc.TraceID, inc.SnapshotID, inc.PolicyID, string(inc.Source),
		int64(inc.StepIndex), inc.RecordHash, string(inc.Reason), inc.Threshold, inc.Limit, inc.Observed,
		string(inc.Severity), inc.Title, inc.Message, e.time("created_at", inc.CreatedAt),
		string(inc.Status), e.timePtr("acknowledged_at", inc.AcknowledgedAt), inc.AcknowledgedBy,
		e.timePtr("resolved_at", inc.ResolvedAt), inc.ResolvedBy, inc.Resolution,
	}
	return args, e.err
}

const incidentColumns = `tenant_id, incident_id, run_id, trace_id, snapshot_id, policy_id, source, step_index,
	record_hash, reason, threshold, limit_value, observed, severity, title, message, created_at,
	status, acknowledged_at, acknowledged_by, resolved_at, resolved_by, resolution`

func scanIncident(row rowScanner) (incident.Incident, error) {
	var (
		inc                         incident.Incident
		source, reason, sev, status string
		created, acked, resolved    sql.NullInt64
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
	inc.CreatedAt, inc.AcknowledgedAt, inc.ResolvedAt = timeOf(created), timePtrOf(acked), timePtrOf(resolved)
	return inc, nil
}

// Incident returns one incident of the tenant, or governance.ErrNotFound.
func (s *Store) Incident(ctx context.Context, tenantID, incidentID string) (incident.Incident, error) {
	inc, err := scanIncident(s.r.QueryRowContext(ctx, `SELECT `+incidentColumns+`
		FROM incidents WHERE tenant_id = ? AND incident_id = ?`, tenantID, incidentID))
	if errors.Is(err, sql.ErrNoRows) {
		return incident.Incident{}, fmt.Errorf("sqlite: incident %s of tenant %s: %w", incidentID, tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return incident.Incident{}, fmt.Errorf("sqlite: reading incident %s of tenant %s: %w", incidentID, tenantID, err)
	}
	return inc, nil
}

// Incidents lists a tenant's incidents, newest (by CreatedAt, then by
// insertion) first, with the filter's run, status, creation interval
// [From, To) and limit.
func (s *Store) Incidents(ctx context.Context, f governance.IncidentFilter) ([]incident.Incident, error) {
	fail := func(err error) ([]incident.Incident, error) {
		return nil, fmt.Errorf("sqlite: listing incidents of tenant %s: %w", f.TenantID, err)
	}
	var e enc
	where := []string{"tenant_id = ?"}
	args := []any{f.TenantID}
	if f.RunID != "" {
		where, args = append(where, "run_id = ?"), append(args, f.RunID)
	}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if !f.From.IsZero() {
		where, args = append(where, "created_at >= ?"), append(args, e.time("From", f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, "created_at < ?"), append(args, e.time("To", f.To))
	}
	if e.err != nil {
		return fail(e.err)
	}
	q := `SELECT ` + incidentColumns + ` FROM incidents WHERE ` + strings.Join(where, " AND ") +
		` ORDER BY created_at DESC, rowid DESC`
	if f.Limit > 0 {
		q, args = q+" LIMIT ?", append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []incident.Incident
	for rows.Next() {
		inc, err := scanIncident(rows)
		if err != nil {
			return fail(err)
		}
		out = append(out, inc)
	}
	if err := rows.Err(); err != nil {
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
func (s *Store) UpdateIncident(ctx context.Context, inc incident.Incident) error {
	fail := func(err error) error {
		return fmt.Errorf("sqlite: updating incident %s of tenant %s: %w", inc.ID, inc.TenantID, err)
	}
	if !inc.Status.Valid() {
		return fail(fmt.Errorf("unknown status %q", inc.Status))
	}
	var e enc
	acked, resolved := e.timePtr("acknowledged_at", inc.AcknowledgedAt), e.timePtr("resolved_at", inc.ResolvedAt)
	if e.err != nil {
		return fail(e.err)
	}
	res, err := s.w.ExecContext(ctx, `UPDATE incidents SET status = ?, acknowledged_at = ?, acknowledged_by = ?,
			resolved_at = ?, resolved_by = ?, resolution = ?
		WHERE tenant_id = ? AND incident_id = ?`,
		string(inc.Status), acked, inc.AcknowledgedBy, resolved, inc.ResolvedBy, inc.Resolution, inc.TenantID, inc.ID)
	if se, ok := sqliteError(err); ok && se.ExtendedCode == sqlite3.ErrConstraintTrigger && strings.Contains(se.Error(), raiseBackwards) {
		return fail(fmt.Errorf("%w: to %s", incident.ErrInvalidTransition, inc.Status))
	}
	if err != nil {
		return fail(err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fail(err)
	} else if n == 0 {
		return fail(governance.ErrNotFound)
	}
	return nil
}
