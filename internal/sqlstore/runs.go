package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/translog"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// RunColumns are the columns a Dialect's RunSelect returns: the run r,
// then the last record l of its chain (NULL when it has none).
const RunColumns = `r.tenant_id, r.run_id, r.trace_id, r.snapshot_id, r.policy_version, r.status,
	r.termination_reason, r.stopped_at_step, r.violation_policy_id, r.incident_id, r.message, r.labels,
	r.created_at, r.started_at, r.ended_at,
	r.step_count, r.total_tokens, r.total_cost_cents, r.head_hash, r.chain_length,
	l.seq, l.kind, l.step_index, l.total_tokens, l.total_cost_cents, l.hash`

const insertRunSQL = `INSERT INTO runs
	(tenant_id, run_id, trace_id, snapshot_id, policy_version, status, termination_reason,
	 stopped_at_step, violation_policy_id, incident_id, message, labels, created_at, started_at)
	VALUES ($1, $2, $3, $4, $5, $6, '', NULL, '', '', '', $7, $8, $9)`

// CreateRun stores a new run and its run_start record (seq 0, prev_hash
// the genesis hash) in one W.Batch. The run's snapshot must be stored
// (else governance.ErrNotFound); a run id already stored for the tenant
// is governance.ErrRunExists. An empty Status is stored as queued; a run
// cannot be created ended.
func (db *DB) CreateRun(ctx context.Context, run governance.RunRecord, start governance.StepWrite) error {
	return db.CreateRunOn(ctx, db.W, run, start)
}

// CreateRunOn is CreateRun with its two statements run by q.Batch: in a
// transaction of their own when q is a pool, or in q's transaction when it
// is one (which then holds both or, on an error, whatever q's own rollback
// leaves). The run's row is the first statement, its run_start record the
// second.
func (db *DB) CreateRunOn(ctx context.Context, q Querier, run governance.RunRecord, start governance.StepWrite) error {
	fail := func(err error) error {
		return db.errorf("creating run %s of tenant %s: %w", run.RunID, run.TenantID, err)
	}
	run, err := run.ValidateNew(start)
	if err != nil {
		return err
	}
	if start.Record.PrevHash != trace.GenesisHash {
		return fail(fmt.Errorf("run_start record must follow the genesis hash: %w", governance.ErrChainConflict))
	}
	startArgs, err := db.RecordArgs(&start)
	if err != nil {
		return err
	}
	e := db.Enc()
	var labels any
	if run.Labels != nil {
		labels = e.JSON("labels", run.Labels)
	}
	createdAt := e.Time("created_at", run.CreatedAt)
	startedAt := e.TimePtr("started_at", run.StartedAt)
	if e.Err != nil {
		return fail(e.Err)
	}
	failed, err := q.Batch(ctx,
		Stmt{insertRunSQL, []any{run.TenantID, run.RunID, run.TraceID, run.SnapshotID, run.PolicyVersion,
			string(run.Status), labels, createdAt, startedAt}},
		Stmt{InsertRecordSQL, startArgs})
	switch {
	case err == nil:
		return nil
	case failed == 1:
		return db.RecordError(err, &start.Record)
	}
	switch db.Classify(err) {
	case PrimaryKeyTaken:
		return fail(governance.ErrRunExists)
	case MissingReference:
		return fail(fmt.Errorf("snapshot %s is not stored: %w", run.SnapshotID, governance.ErrNotFound))
	}
	return fail(err)
}

// CloseRun ends a run in one transaction: the blocking step (if any,
// which must be marked as the inflection point), the incident (if any),
// the end's deliveries (outbox rows, if any), the run_end record, and the
// run's final fields, with StepCount and totals taken from its last step
// record and HeadHash and ChainLength from the run_end record; with MarkRunning, a run that was queued gets
// StartedAt = the blocking step's time (EndedAt without one). Either all
// of it is stored or none. A run already ended is governance.ErrRunEnded;
// an unknown run is governance.ErrNotFound; records that do not extend the
// chain are governance.ErrChainConflict.
func (db *DB) CloseRun(ctx context.Context, c governance.Close) error {
	write, err := db.CloseRunWrite(c)
	if err != nil {
		return err
	}
	return db.Tx(ctx, func(q Querier) error { return write(ctx, q) })
}

// CloseRunWrite checks c and builds its statements (an invalid c is an
// error here, before any transaction), and returns the function that
// writes them in the transaction q, as CloseRun does in one of its own:
// it reads the run's status (and, with CheckChainOnClose, its head) and
// then runs the statements in one q.Batch. It writes nothing when it
// returns an error before that Batch; after, q must be rolled back (or
// rolled back to a savepoint taken before it).
func (db *DB) CloseRunWrite(c governance.Close) (func(ctx context.Context, q Querier) error, error) {
	fail := func(err error) error {
		return db.errorf("closing run %s of tenant %s: %w", c.RunID, c.TenantID, err)
	}
	incidentID, err := c.Validate()
	if err != nil {
		return nil, err
	}
	var stmts []Stmt
	var writes []string // what each statement stores, to name it in errors
	if c.Step != nil {
		args, err := db.RecordArgs(c.Step)
		if err != nil {
			return nil, err
		}
		stmts, writes = append(stmts, Stmt{InsertRecordSQL, args}), append(writes, "step")
	}
	if c.Incident != nil {
		args, err := db.incidentArgs(c.Incident)
		if err != nil {
			return nil, fail(err)
		}
		stmts, writes = append(stmts, Stmt{insertIncidentSQL, args}), append(writes, "incident")
	}
	// The end's deliveries (an outbox row per event and sink) come
	// before its records, so that the last statement is the run's (a
	// failed COMMIT is reported as the last statement's failure).
	for i := range c.Deliveries {
		args, err := db.deliveryArgs(&c.Deliveries[i])
		if err != nil {
			return nil, fail(err)
		}
		stmts, writes = append(stmts, Stmt{insertDeliverySQL, args}), append(writes, "delivery")
	}
	endArgs, err := db.RecordArgs(&c.End)
	if err != nil {
		return nil, err
	}
	e := db.Enc()
	endedAt := e.Time("ended_at", c.EndedAt)
	var startedAt any
	if c.MarkRunning {
		if c.Step != nil {
			startedAt = e.Time("started_at", c.Step.Record.At)
		} else {
			startedAt = e.Time("started_at", c.EndedAt) // queued until it ended
		}
	}
	if e.Err != nil {
		return nil, fail(e.Err)
	}
	stmts = append(stmts, Stmt{InsertRecordSQL, endArgs}, Stmt{db.CloseRunSQL, []any{
		c.TenantID, c.RunID, string(c.Status), string(c.Reason), intPtr(c.StoppedAtStep), c.ViolationPolicyID,
		incidentID, c.Message, endedAt, startedAt, c.End.Record.Hash, int64(c.End.Record.Seq) + 1}})
	writes = append(writes, "end", "run")
	leaf := translog.Leaf{TenantID: c.TenantID, RunID: c.RunID, Kind: translog.KindRunEnd, Seq: c.End.Record.Seq, Head: c.End.Record.Hash}
	if _, err := leaf.Encode(); err != nil {
		return nil, fail(err)
	}

	return func(ctx context.Context, q Querier) error {
		var status string
		var logSize *int64
		var st logState
		err := q.QueryRow(ctx, db.RunStatusForClose, c.TenantID, c.RunID).Scan(&status, &logSize, &st.frontier)
		if errors.Is(err, sql.ErrNoRows) {
			return fail(governance.ErrNotFound)
		} else if err != nil {
			return fail(err)
		}
		if governance.RunStatus(status).Ended() {
			return fail(fmt.Errorf("status %s: %w", status, governance.ErrRunEnded))
		}
		if db.CheckChainOnClose {
			if err := checkClose(ctx, q, &c); err != nil {
				return fail(err)
			}
		}
		var logStmts []Stmt
		if !db.NoTenantLog {
			if logSize != nil {
				st.size = *logSize
			} else if st, err = db.lockLog(ctx, q, c.TenantID); err != nil {
				return fail(err)
			}
			if logStmts, err = appendStmts(leaf, st); err != nil {
				return fail(fmt.Errorf("appending to the tenant log: %w", err))
			}
		}
		// The write may run again (a batch written again): stmts and
		// writes stay as built.
		all := append(stmts[:len(stmts):len(stmts)], logStmts...)
		failed, err := q.Batch(ctx, all...)
		if err == nil {
			return nil
		}
		if failed >= len(writes) {
			return fail(fmt.Errorf("appending to the tenant log: %w", err))
		}
		switch writes[failed] {
		case "step":
			return db.RecordError(err, &c.Step.Record)
		case "incident":
			if db.Classify(err) == PrimaryKeyTaken {
				return fail(fmt.Errorf("incident %s already exists", c.Incident.ID))
			}
			return fail(fmt.Errorf("storing incident %s: %w", c.Incident.ID, err))
		case "end":
			return db.RecordError(err, &c.End.Record)
		case "delivery":
			return fail(fmt.Errorf("storing the end's deliveries: %w", err))
		}
		return fail(fmt.Errorf("storing the run's final fields: %w", err))
	}, nil
}

// checkClose reads a run's head inside CloseRun's transaction and checks
// that the close's records extend it.
func checkClose(ctx context.Context, q Querier, c *governance.Close) error {
	var h Head
	if err := q.QueryRow(ctx, `SELECT seq, hash FROM records WHERE tenant_id = $1 AND run_id = $2
		ORDER BY seq DESC LIMIT 1`, c.TenantID, c.RunID).Scan(&h.Seq, &h.Hash); err != nil {
		return fmt.Errorf("reading the chain head: %w", err)
	}
	if c.Step != nil {
		if err := h.Extends(&c.Step.Record); err != nil {
			return err
		}
		h = Head{Seq: c.Step.Record.Seq, Hash: c.Step.Record.Hash}
	}
	return h.Extends(&c.End.Record)
}

// scanRun reads a row of RunColumns. While a run is open, its StepCount,
// totals, HeadHash and ChainLength come from its last record (AppendStep
// writes only the record), and once it has ended from the final fields
// CloseRun stored.
func scanRun(row Row) (governance.RunRecord, error) {
	var (
		run                           governance.RunRecord
		status, reason                string
		stoppedAt                     *int64
		labels                        *string
		createdAt, startedAt, endedAt *int64
		lastSeq, lastStep, lastTokens *int64
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
	run.CreatedAt, run.StartedAt, run.EndedAt = TimeOf(createdAt), timePtrOf(startedAt), timePtrOf(endedAt)
	if !run.Status.Ended() && lastSeq != nil {
		run.ChainLength = int(*lastSeq) + 1
		run.HeadHash = deref(lastHash)
		run.StepCount, run.TotalTokens, run.TotalCostCents = 0, 0, 0
		if deref(lastKind) == string(trace.KindStep) {
			run.StepCount = int(deref(lastStep)) + 1
			run.TotalTokens, run.TotalCostCents = deref(lastTokens), deref(lastCost)
		}
	}
	return run, nil
}

// Run returns one run of the tenant, or governance.ErrNotFound.
func (db *DB) Run(ctx context.Context, tenantID, runID string) (governance.RunRecord, error) {
	run, err := scanRun(db.R.QueryRow(ctx, db.RunSelect+` WHERE r.tenant_id = $1 AND r.run_id = $2`, tenantID, runID))
	if errors.Is(err, sql.ErrNoRows) {
		return governance.RunRecord{}, db.errorf("run %s of tenant %s: %w", runID, tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return governance.RunRecord{}, db.errorf("reading run %s of tenant %s: %w", runID, tenantID, err)
	}
	return run, nil
}

// Runs lists a tenant's runs, newest (by CreatedAt, then by insertion)
// first, with the filter's status, creation interval [From, To) and limit.
func (db *DB) Runs(ctx context.Context, f governance.RunFilter) ([]governance.RunRecord, error) {
	fail := func(err error) ([]governance.RunRecord, error) {
		return nil, db.errorf("listing runs of tenant %s: %w", f.TenantID, err)
	}
	e := db.Enc()
	var w filter
	w.add("r.tenant_id = ?", f.TenantID)
	if f.Status != "" {
		w.add("r.status = ?", string(f.Status))
	}
	w.createdIn(&e, "r.", f.From, f.To)
	if e.Err != nil {
		return fail(e.Err)
	}
	out, err := list(ctx, db, db.RunSelect, &w, "r.", f.Limit, scanRun)
	if err != nil {
		return fail(err)
	}
	return out, nil
}
