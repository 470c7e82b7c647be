package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// CreateRun stores a new run and its run_start record (seq 0, prev_hash
// the genesis hash) in one round trip: both statements go in one batch,
// which PostgreSQL runs as one implicit transaction. The run's snapshot
// must be stored (else governance.ErrNotFound); a run id already stored
// for the tenant is governance.ErrRunExists. An empty Status is stored as
// queued; a run cannot be created ended.
func (s *Store) CreateRun(ctx context.Context, run governance.RunRecord, start governance.StepWrite) error {
	fail := func(err error) error {
		return fmt.Errorf("postgres: creating run %s of tenant %s: %w", run.RunID, run.TenantID, err)
	}
	run, err := run.ValidateNew(start)
	if err != nil {
		return err
	}
	if start.Record.PrevHash != trace.GenesisHash {
		return fail(fmt.Errorf("run_start record must follow the genesis hash: %w", governance.ErrChainConflict))
	}
	startArgs, err := recordArgs(&start)
	if err != nil {
		return err
	}
	var e enc
	var labels *string
	if run.Labels != nil {
		labels = e.json("labels", run.Labels)
	}
	createdAt := e.time("created_at", run.CreatedAt)
	startedAt := e.timePtr("started_at", run.StartedAt)
	if e.err != nil {
		return fail(e.err)
	}
	b := &pgx.Batch{}
	b.Queue(`INSERT INTO runs
		(tenant_id, run_id, trace_id, snapshot_id, policy_version, status, termination_reason,
		 stopped_at_step, violation_policy_id, incident_id, message, labels, created_at, started_at)
		VALUES ($1, $2, $3, $4, $5, $6, '', NULL, '', '', '', $7, $8, $9)`,
		run.TenantID, run.RunID, run.TraceID, run.SnapshotID, run.PolicyVersion, string(run.Status),
		labels, createdAt, startedAt)
	b.Queue(insertRecordSQL, startArgs...)
	err = s.pool.SendBatch(ctx, b).Close()
	switch {
	case err == nil:
		return nil
	case hasCode(err, codeUniqueViolation, "runs_pkey"):
		return fail(governance.ErrRunExists)
	case hasCode(err, codeForeignKeyViolation, ""):
		return fail(fmt.Errorf("snapshot %s is not stored: %w", run.SnapshotID, governance.ErrNotFound))
	}
	if _, ok := pgError(err); ok {
		return recordError(err, &start.Record)
	}
	return fail(err)
}

// CloseRun ends a run in one transaction: it locks the run's row (so
// that two replicas closing one run queue for each other, and nothing
// else waits), then writes the blocking step (if any, which must be
// marked as the inflection point), the incident (if any), the run_end
// record, and the run's final fields, with StepCount and totals taken
// from its last step record and HeadHash and ChainLength from the run_end
// record; with MarkRunning, a run that was queued gets StartedAt = the
// blocking step's time (EndedAt without one). Either all of it is stored
// or none. A run already ended is governance.ErrRunEnded; an unknown run
// is governance.ErrNotFound; records that do not extend the chain are
// governance.ErrChainConflict.
func (s *Store) CloseRun(ctx context.Context, c governance.Close) error {
	fail := func(err error) error {
		return fmt.Errorf("postgres: closing run %s of tenant %s: %w", c.RunID, c.TenantID, err)
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
	var startedAt *int64
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

	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status FROM runs WHERE tenant_id = $1 AND run_id = $2 FOR UPDATE`,
			c.TenantID, c.RunID).Scan(&status)
		if errors.Is(err, pgx.ErrNoRows) {
			return fail(governance.ErrNotFound)
		} else if err != nil {
			return fail(err)
		}
		if governance.RunStatus(status).Ended() {
			return fail(fmt.Errorf("status %s: %w", status, governance.ErrRunEnded))
		}
		// The records_chain trigger checks each record against the one
		// before it, this transaction's own included.
		b := &pgx.Batch{}
		if c.Step != nil {
			b.Queue(insertRecordSQL, stepArgs...)
		}
		if c.Incident != nil {
			b.Queue(insertIncidentSQL, incArgs...)
		}
		b.Queue(insertRecordSQL, endArgs...)
		b.Queue(`UPDATE runs SET
				status = $3, termination_reason = $4, stopped_at_step = $5, violation_policy_id = $6,
				incident_id = $7, message = $8, ended_at = $9,
				started_at = CASE WHEN $10::bigint IS NULL THEN started_at ELSE COALESCE(started_at, $10) END,
				head_hash = $11, chain_length = $12,
				step_count = COALESCE(l.step_index + 1, 0),
				total_tokens = COALESCE(l.total_tokens, 0),
				total_cost_cents = COALESCE(l.total_cost_cents, 0)
			FROM (SELECT NULL) AS one
			LEFT JOIN LATERAL (SELECT step_index, total_tokens, total_cost_cents FROM records
				WHERE tenant_id = $1 AND run_id = $2 AND kind = 'step' ORDER BY seq DESC LIMIT 1) l ON true
			WHERE runs.tenant_id = $1 AND runs.run_id = $2`,
			c.TenantID, c.RunID, string(c.Status), string(c.Reason), intPtr(c.StoppedAtStep), c.ViolationPolicyID,
			incidentID, c.Message, endedAt, startedAt, c.End.Record.Hash, c.End.Record.Seq+1)
		br := tx.SendBatch(ctx, b)
		defer br.Close()
		if c.Step != nil {
			if _, err := br.Exec(); err != nil {
				return recordError(err, &c.Step.Record)
			}
		}
		if c.Incident != nil {
			if _, err := br.Exec(); err != nil {
				if hasCode(err, codeUniqueViolation, "incidents_pkey") {
					return fail(fmt.Errorf("incident %s already exists", c.Incident.ID))
				}
				return fail(fmt.Errorf("storing incident %s: %w", c.Incident.ID, err))
			}
		}
		if _, err := br.Exec(); err != nil {
			return recordError(err, &c.End.Record)
		}
		if _, err := br.Exec(); err != nil {
			return fail(fmt.Errorf("storing the run's final fields: %w", err))
		}
		return br.Close()
	})
}

// runSelect reads runs with the last record of each: while a run is open,
// its StepCount, totals, HeadHash and ChainLength come from that record
// (AppendStep writes only the record), and once it has ended from the
// final fields CloseRun stored. One statement, so one snapshot: the run
// row and its last record agree.
const runSelect = `SELECT r.tenant_id, r.run_id, r.trace_id, r.snapshot_id, r.policy_version, r.status,
	r.termination_reason, r.stopped_at_step, r.violation_policy_id, r.incident_id, r.message, r.labels,
	r.created_at, r.started_at, r.ended_at,
	r.step_count, r.total_tokens, r.total_cost_cents, r.head_hash, r.chain_length,
	l.seq, l.kind, l.step_index, l.total_tokens, l.total_cost_cents, l.hash
FROM runs r LEFT JOIN LATERAL (SELECT seq, kind, step_index, total_tokens, total_cost_cents, hash FROM records m
	WHERE m.tenant_id = r.tenant_id AND m.run_id = r.run_id ORDER BY m.seq DESC LIMIT 1) l ON true`

func scanRun(row pgx.Row) (governance.RunRecord, error) {
	var (
		run                           governance.RunRecord
		status, reason                string
		stoppedAt                     *int64
		labels                        *string
		createdAt, startedAt, endedAt *int64
		lastSeq, lastStep             *int32
		lastTokens                    *int64
		lastKind, lastHash            *string
		lastCost                      *float64
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
	if labels != nil {
		if err := json.Unmarshal([]byte(*labels), &run.Labels); err != nil {
			return run, fmt.Errorf("labels: %w", err)
		}
	}
	run.StoppedAtStep = intPtrOf(stoppedAt)
	run.CreatedAt, run.StartedAt, run.EndedAt = timeOf(createdAt), timePtrOf(startedAt), timePtrOf(endedAt)
	if !run.Status.Ended() && lastSeq != nil {
		run.ChainLength = int(*lastSeq) + 1
		run.HeadHash = *lastHash
		run.StepCount, run.TotalTokens, run.TotalCostCents = 0, 0, 0
		if *lastKind == string(trace.KindStep) {
			run.StepCount = int(*lastStep) + 1
			run.TotalTokens, run.TotalCostCents = *lastTokens, *lastCost
		}
	}
	return run, nil
}

// Run returns one run of the tenant, or governance.ErrNotFound.
func (s *Store) Run(ctx context.Context, tenantID, runID string) (governance.RunRecord, error) {
	run, err := scanRun(s.pool.QueryRow(ctx, runSelect+` WHERE r.tenant_id = $1 AND r.run_id = $2`, tenantID, runID))
	if errors.Is(err, pgx.ErrNoRows) {
		return governance.RunRecord{}, fmt.Errorf("postgres: run %s of tenant %s: %w", runID, tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return governance.RunRecord{}, fmt.Errorf("postgres: reading run %s of tenant %s: %w", runID, tenantID, err)
	}
	return run, nil
}

// filter builds a WHERE clause with numbered parameters.
type filter struct {
	where []string
	args  []any
}

func (f *filter) add(cond string, arg any) {
	f.args = append(f.args, arg)
	f.where = append(f.where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(f.args))))
}

func (f *filter) sql() string { return " WHERE " + strings.Join(f.where, " AND ") }

// limit appends a LIMIT clause when n > 0.
func (f *filter) limit(n int) string {
	if n <= 0 {
		return ""
	}
	f.args = append(f.args, int64(n))
	return " LIMIT $" + strconv.Itoa(len(f.args))
}

// Runs lists a tenant's runs, newest (by CreatedAt, then by insertion)
// first, with the filter's status, creation interval [From, To) and limit.
func (s *Store) Runs(ctx context.Context, f governance.RunFilter) ([]governance.RunRecord, error) {
	fail := func(err error) ([]governance.RunRecord, error) {
		return nil, fmt.Errorf("postgres: listing runs of tenant %s: %w", f.TenantID, err)
	}
	var e enc
	var w filter
	w.add("r.tenant_id = ?", f.TenantID)
	if f.Status != "" {
		w.add("r.status = ?", string(f.Status))
	}
	if !f.From.IsZero() {
		w.add("r.created_at >= ?", e.time("From", f.From))
	}
	if !f.To.IsZero() {
		w.add("r.created_at < ?", e.time("To", f.To))
	}
	if e.err != nil {
		return fail(e.err)
	}
	q := runSelect + w.sql() + " ORDER BY r.created_at DESC NULLS LAST, r.ord DESC" + w.limit(f.Limit)
	rows, err := s.pool.Query(ctx, q, w.args...)
	if err != nil {
		return fail(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (governance.RunRecord, error) { return scanRun(r) })
	if err != nil {
		return fail(err)
	}
	return out, nil
}
