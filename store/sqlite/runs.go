package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mattn/go-sqlite3"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// CreateRun stores a new run and its run_start record (seq 0, prev_hash
// the genesis hash) in one BEGIN IMMEDIATE transaction. The run's snapshot
// must be stored (else governance.ErrNotFound); a run id already stored
// for the tenant is governance.ErrRunExists. An empty Status is stored as
// queued; a run cannot be created ended.
func (s *Store) CreateRun(ctx context.Context, run governance.RunRecord, start governance.StepWrite) error {
	fail := func(err error) error {
		return fmt.Errorf("sqlite: creating run %s of tenant %s: %w", run.RunID, run.TenantID, err)
	}
	run, err := run.ValidateNew(start)
	if err != nil {
		return err
	}
	startArgs, err := recordArgs(&start)
	if err != nil {
		return err
	}
	var e enc
	var labels any
	if run.Labels != nil {
		labels = e.json("labels", run.Labels)
	}
	createdAt := e.time("created_at", run.CreatedAt)
	startedAt := e.timePtr("started_at", run.StartedAt)
	if e.err != nil {
		return fail(e.err)
	}
	err = s.write(ctx, func(tx *sql.Tx) error {
		if _, err := storedSnapshotHash(ctx, tx, run.TenantID, run.SnapshotID); errors.Is(err, sql.ErrNoRows) {
			return fail(fmt.Errorf("snapshot %s is not stored: %w", run.SnapshotID, governance.ErrNotFound))
		} else if err != nil {
			return fail(err)
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO runs
			(tenant_id, run_id, trace_id, snapshot_id, policy_version, status, termination_reason,
			 stopped_at_step, violation_policy_id, incident_id, message, labels, created_at, started_at)
			VALUES (?, ?, ?, ?, ?, ?, '', NULL, '', '', '', ?, ?, ?)`,
			run.TenantID, run.RunID, run.TraceID, run.SnapshotID, run.PolicyVersion, string(run.Status),
			labels, createdAt, startedAt)
		if se, ok := sqliteError(err); ok && se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey {
			return fail(governance.ErrRunExists)
		} else if err != nil {
			return fail(err)
		}
		if start.Record.Seq != 0 || start.Record.PrevHash != trace.GenesisHash {
			return fail(fmt.Errorf("run_start record must be seq 0 after the genesis hash: %w", governance.ErrChainConflict))
		}
		_, err = tx.StmtContext(ctx, s.insertRecord).ExecContext(ctx, startArgs...)
		return recordError(err, &start.Record)
	})
	if err == nil {
		s.headsMu.Lock()
		s.heads[runKey{run.TenantID, run.RunID}] = chainHead{seq: 0, hash: start.Record.Hash}
		s.headsMu.Unlock()
	}
	return err
}

// CloseRun ends a run in one BEGIN IMMEDIATE transaction: the blocking
// step (if any, which must be marked as the inflection point), the
// incident (if any), the run_end record, and the run's final fields, with
// StepCount and totals taken from its last step record and HeadHash and
// ChainLength from the run_end record; with MarkRunning, a run that was
// queued gets StartedAt = the blocking step's time (EndedAt without one).
// Either all of it is stored or none. A run already ended is governance.ErrRunEnded; an unknown run is
// governance.ErrNotFound; records that do not extend the chain are
// governance.ErrChainConflict.
func (s *Store) CloseRun(ctx context.Context, c governance.Close) error {
	fail := func(err error) error {
		return fmt.Errorf("sqlite: closing run %s of tenant %s: %w", c.RunID, c.TenantID, err)
	}
	incidentID, err := c.Validate()
	if err != nil {
		return err
	}
	var stepArgs, incArgs []any
	if c.Step != nil {
		if stepArgs, err = recordArgs(c.Step); err != nil {
			return err
		}
	}
	endArgs, err := recordArgs(&c.End)
	if err != nil {
		return err
	}
	if c.Incident != nil {
		if incArgs, err = incidentArgs(c.Incident); err != nil {
			return fail(err)
		}
	}
	var e enc
	endedAt := e.time("ended_at", c.EndedAt)
	var startedAt any
	if c.MarkRunning {
		if c.Step != nil {
			startedAt = e.time("started_at", c.Step.Record.At)
		} else {
			startedAt = e.time("started_at", c.EndedAt) // queued until it ended
		}
	}
	if e.err != nil {
		return fail(e.err)
	}

	s.headsMu.Lock()
	defer s.headsMu.Unlock()
	delete(s.heads, runKey{c.TenantID, c.RunID}) // ended, or read again after a failure
	return s.write(ctx, func(tx *sql.Tx) error {
		var status string
		err := tx.QueryRowContext(ctx, `SELECT status FROM runs WHERE tenant_id = ? AND run_id = ?`, c.TenantID, c.RunID).Scan(&status)
		if errors.Is(err, sql.ErrNoRows) {
			return fail(governance.ErrNotFound)
		} else if err != nil {
			return fail(err)
		}
		if governance.RunStatus(status).Ended() {
			return fail(fmt.Errorf("status %s: %w", status, governance.ErrRunEnded))
		}
		// The head as stored, read inside this immediate transaction.
		var h chainHead
		if err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM records WHERE tenant_id = ? AND run_id = ?
			ORDER BY seq DESC LIMIT 1`, c.TenantID, c.RunID).Scan(&h.seq, &h.hash); err != nil {
			return fail(fmt.Errorf("reading the chain head: %w", err))
		}
		if c.Step != nil {
			if err := extends(h, &c.Step.Record); err != nil {
				return fail(err)
			}
			h = chainHead{seq: c.Step.Record.Seq, hash: c.Step.Record.Hash}
		}
		if err := extends(h, &c.End.Record); err != nil {
			return fail(err)
		}
		ins := tx.StmtContext(ctx, s.insertRecord)
		if c.Step != nil {
			if _, err := ins.ExecContext(ctx, stepArgs...); err != nil {
				return recordError(err, &c.Step.Record)
			}
		}
		if c.Incident != nil {
			if _, err := tx.ExecContext(ctx, insertIncidentSQL, incArgs...); err != nil {
				if se, ok := sqliteError(err); ok && se.ExtendedCode == sqlite3.ErrConstraintPrimaryKey {
					return fail(fmt.Errorf("incident %s already exists", c.Incident.ID))
				}
				return fail(fmt.Errorf("storing incident %s: %w", c.Incident.ID, err))
			}
		}
		if _, err := ins.ExecContext(ctx, endArgs...); err != nil {
			return recordError(err, &c.End.Record)
		}
		_, err = tx.ExecContext(ctx, `UPDATE runs SET
				status = ?3, termination_reason = ?4, stopped_at_step = ?5, violation_policy_id = ?6,
				incident_id = ?7, message = ?8, ended_at = ?9,
				started_at = CASE WHEN ?10 IS NULL THEN started_at ELSE COALESCE(started_at, ?10) END,
				head_hash = ?11, chain_length = ?12,
				step_count = COALESCE((SELECT step_index + 1 FROM records
					WHERE tenant_id = ?1 AND run_id = ?2 AND kind = 'step' ORDER BY seq DESC LIMIT 1), 0),
				total_tokens = COALESCE((SELECT total_tokens FROM records
					WHERE tenant_id = ?1 AND run_id = ?2 AND kind = 'step' ORDER BY seq DESC LIMIT 1), 0),
				total_cost_cents = COALESCE((SELECT total_cost_cents FROM records
					WHERE tenant_id = ?1 AND run_id = ?2 AND kind = 'step' ORDER BY seq DESC LIMIT 1), 0)
			WHERE tenant_id = ?1 AND run_id = ?2`,
			c.TenantID, c.RunID, string(c.Status), string(c.Reason), intPtr(c.StoppedAtStep), c.ViolationPolicyID,
			incidentID, c.Message, endedAt, startedAt, c.End.Record.Hash, int64(c.End.Record.Seq)+1)
		if err != nil {
			return fail(fmt.Errorf("storing the run's final fields: %w", err))
		}
		return nil
	})
}

// runSelect reads runs with the last record of each: while a run is open,
// its StepCount, totals, HeadHash and ChainLength come from that record
// (AppendStep writes only the record), and once it has ended from the
// final fields CloseRun stored.
const runSelect = `SELECT r.tenant_id, r.run_id, r.trace_id, r.snapshot_id, r.policy_version, r.status,
	r.termination_reason, r.stopped_at_step, r.violation_policy_id, r.incident_id, r.message, r.labels,
	r.created_at, r.started_at, r.ended_at,
	r.step_count, r.total_tokens, r.total_cost_cents, r.head_hash, r.chain_length,
	l.seq, l.kind, l.step_index, l.total_tokens, l.total_cost_cents, l.hash
FROM runs r LEFT JOIN records l
	ON l.tenant_id = r.tenant_id AND l.run_id = r.run_id
	AND l.seq = (SELECT MAX(m.seq) FROM records m WHERE m.tenant_id = r.tenant_id AND m.run_id = r.run_id)`

func scanRun(row rowScanner) (governance.RunRecord, error) {
	var (
		run                           governance.RunRecord
		status, reason                string
		stoppedAt                     sql.NullInt64
		labels                        sql.NullString
		createdAt, startedAt, endedAt sql.NullInt64
		lastSeq, lastStep, lastTokens sql.NullInt64
		lastKind, lastHash            sql.NullString
		lastCost                      sql.NullFloat64
	)
	err := row.Scan(&run.TenantID, &run.RunID, &run.TraceID, &run.SnapshotID, &run.PolicyVersion, &status,
		&reason, &stoppedAt, &run.ViolationPolicyID, &run.IncidentID, &run.Message, &labels,
		&createdAt, &startedAt, &endedAt,
		&run.StepCount, &run.TotalTokens, &run.TotalCostCents, &run.HeadHash, &run.ChainLength,
		&lastSeq, &lastKind, &lastStep, &lastTokens, &lastCost, &lastHash)
	if err != nil {
		return run, err
	}
	if run.Status, err = governance.ParseRunStatus(status); err != nil {
		return run, err
	}
	if run.TerminationReason, err = prevention.ParseReason(reason); err != nil {
		return run, err
	}
	if labels.Valid {
		if err := json.Unmarshal([]byte(labels.String), &run.Labels); err != nil {
			return run, fmt.Errorf("labels: %w", err)
		}
	}
	run.StoppedAtStep = intPtrOf(stoppedAt)
	run.CreatedAt, run.StartedAt, run.EndedAt = timeOf(createdAt), timePtrOf(startedAt), timePtrOf(endedAt)
	if !run.Status.Ended() && lastSeq.Valid {
		run.ChainLength = int(lastSeq.Int64) + 1
		run.HeadHash = lastHash.String
		run.StepCount, run.TotalTokens, run.TotalCostCents = 0, 0, 0
		if lastKind.String == string(trace.KindStep) {
			run.StepCount = int(lastStep.Int64) + 1
			run.TotalTokens, run.TotalCostCents = lastTokens.Int64, lastCost.Float64
		}
	}
	return run, nil
}

// Run returns one run of the tenant, or governance.ErrNotFound.
func (s *Store) Run(ctx context.Context, tenantID, runID string) (governance.RunRecord, error) {
	run, err := scanRun(s.r.QueryRowContext(ctx, runSelect+` WHERE r.tenant_id = ? AND r.run_id = ?`, tenantID, runID))
	if errors.Is(err, sql.ErrNoRows) {
		return governance.RunRecord{}, fmt.Errorf("sqlite: run %s of tenant %s: %w", runID, tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return governance.RunRecord{}, fmt.Errorf("sqlite: reading run %s of tenant %s: %w", runID, tenantID, err)
	}
	return run, nil
}

// Runs lists a tenant's runs, newest (by CreatedAt, then by insertion)
// first, with the filter's status, creation interval [From, To) and limit.
func (s *Store) Runs(ctx context.Context, f governance.RunFilter) ([]governance.RunRecord, error) {
	fail := func(err error) ([]governance.RunRecord, error) {
		return nil, fmt.Errorf("sqlite: listing runs of tenant %s: %w", f.TenantID, err)
	}
	var e enc
	where := []string{"r.tenant_id = ?"}
	args := []any{f.TenantID}
	if f.Status != "" {
		where, args = append(where, "r.status = ?"), append(args, string(f.Status))
	}
	if !f.From.IsZero() {
		where, args = append(where, "r.created_at >= ?"), append(args, e.time("From", f.From))
	}
	if !f.To.IsZero() {
		where, args = append(where, "r.created_at < ?"), append(args, e.time("To", f.To))
	}
	if e.err != nil {
		return fail(e.err)
	}
	q := runSelect + " WHERE " + strings.Join(where, " AND ") + " ORDER BY r.created_at DESC, r.rowid DESC"
	if f.Limit > 0 {
		q, args = q+" LIMIT ?", append(args, f.Limit)
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []governance.RunRecord
	for rows.Next() {
		run, err := scanRun(rows)
		if err != nil {
			return fail(err)
		}
		out = append(out, run)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}
