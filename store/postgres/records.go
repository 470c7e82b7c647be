package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/trace"
)

// insertRecordSQL appends one record. The records_chain trigger checks,
// inside this statement, that the record follows the hash stored at
// seq - 1 and that the chain is not closed (for seq 0: that the run
// exists and has not ended); the primary key (tenant_id, run_id, seq)
// lets only one of two racing writers in.
const insertRecordSQL = `INSERT INTO records
	(tenant_id, run_id, seq, kind, step_index, at_ns, status, inflection, policy_id,
	 total_tokens, total_cost_cents, body, prev_hash, hash, content)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`

// appendRunningSQL is insertRecordSQL and the run's move from queued to
// running, in one statement (so one implicit transaction): the UPDATE
// happens only if the INSERT did.
const appendRunningSQL = `WITH ins AS (` + insertRecordSQL + ` RETURNING 1)
	UPDATE runs SET status = 'running', started_at = COALESCE(started_at, $16)
	WHERE tenant_id = $1 AND run_id = $2 AND status = 'queued' AND EXISTS (SELECT 1 FROM ins)`

// AppendStep appends one step record to its run's chain with a single
// INSERT (committed on its own: one round trip), or, when MarkRunning is
// set, a single statement that also moves the run from queued to running
// (StartedAt = the record's time). Whether the record extends the chain
// is checked by the database in that statement, so it holds across any
// number of replicas without a lock: a record whose seq is not the next
// one or whose prev_hash is not the stored head is
// governance.ErrChainConflict; a run that has ended is
// governance.ErrRunEnded; an unknown run (of this tenant) is
// governance.ErrNotFound.
//
// The record must be a step whose body is its canonical encoding
// (trace.Encode) and whose hash covers that body and its prev_hash.
func (s *Store) AppendStep(ctx context.Context, w governance.StepWrite) error {
	if err := w.Validate(trace.KindStep); err != nil {
		return err
	}
	args, err := recordArgs(&w)
	if err != nil {
		return err
	}
	q := insertRecordSQL
	if w.MarkRunning {
		var e enc
		startedAt := e.time("started_at", w.Record.At)
		if e.err != nil {
			return e.err
		}
		q, args = appendRunningSQL, append(args, startedAt)
	}
	_, err = s.pool.Exec(ctx, q, args...)
	if hasCode(err, codeChainBroken, "") {
		// No record at seq - 1 with that hash: a stale head, or no such run.
		if rerr := s.runExists(ctx, w.Record.TenantID, w.Record.RunID); errors.Is(rerr, governance.ErrNotFound) {
			return fmt.Errorf("postgres: step record %d of run %s (tenant %s): %w", w.Record.Seq, w.Record.RunID, w.Record.TenantID, rerr)
		}
	}
	return recordError(err, &w.Record)
}

// recordArgs are the insertRecordSQL arguments for w.
func recordArgs(w *governance.StepWrite) ([]any, error) {
	r := &w.Record
	var e enc
	at := e.time("record time", r.At)
	var content *string
	if w.Content != nil && r.Kind == trace.KindStep { // content belongs to steps
		c := string(trace.EncodeContent(nil, w.Content))
		content = &c
	}
	if e.err != nil {
		return nil, e.err
	}
	// The columns beside the body: governance.IndexOf, which verification
	// compares with the body (RecordIndexes).
	x := governance.IndexOf(r)
	return []any{
		r.TenantID, r.RunID, x.Seq, string(x.Kind), x.StepIndex, at,
		nullString(string(x.Status)), x.Inflection, nullString(x.PolicyID),
		x.TotalTokens, x.TotalCostCents, w.Body, r.PrevHash, r.Hash, content,
	}, nil
}

// recordError maps the error of inserting r to the governance errors.
func recordError(err error, r *trace.Record) error {
	if err == nil {
		return nil
	}
	wrap := func(what string, sentinel error) error {
		return fmt.Errorf("postgres: %s record %d of run %s (tenant %s): %s: %w", r.Kind, r.Seq, r.RunID, r.TenantID, what, sentinel)
	}
	pe, ok := pgError(err)
	if !ok {
		return wrap("storing", err)
	}
	switch pe.Code {
	case codeNoSuchRun, codeForeignKeyViolation:
		return wrap("no such run", governance.ErrNotFound)
	case codeRunEnded:
		return wrap("the run has ended", governance.ErrRunEnded)
	case codeChainBroken:
		return wrap(fmt.Sprintf("prev_hash %s is not the hash stored at seq %d (or seq %d is not the next)", r.PrevHash, r.Seq-1, r.Seq), governance.ErrChainConflict)
	case codeUniqueViolation:
		switch pe.ConstraintName {
		case "records_one_inflection":
			return wrap("the run already has an inflection point", governance.ErrChainConflict)
		case "records_one_end":
			return wrap("the run already has a run_end record", governance.ErrChainConflict)
		}
		return wrap(fmt.Sprintf("seq %d is taken", r.Seq), governance.ErrChainConflict)
	}
	return wrap("storing", err)
}

// Records returns a run's chain in seq order, each record decoded from its
// stored body with its stored prev_hash and hash (trace.DecodeRecord), for
// trace.Verify to check. An unknown run is governance.ErrNotFound.
func (s *Store) Records(ctx context.Context, tenantID, runID string) ([]trace.Record, error) {
	fail := func(err error) ([]trace.Record, error) {
		return nil, fmt.Errorf("postgres: reading records of run %s (tenant %s): %w", runID, tenantID, err)
	}
	rows, err := s.pool.Query(ctx, `SELECT seq, body, prev_hash, hash FROM records
		WHERE tenant_id = $1 AND run_id = $2 ORDER BY seq`, tenantID, runID)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []trace.Record
	for rows.Next() {
		var (
			seq            int
			body           []byte
			prevHash, hash string
		)
		if err := rows.Scan(&seq, &body, &prevHash, &hash); err != nil {
			return fail(err)
		}
		r, err := trace.DecodeRecord(body, prevHash, hash)
		if err != nil {
			return fail(fmt.Errorf("record at seq %d: %w", seq, err))
		}
		out = append(out, r)
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

// Contents returns the stored content of a run's steps, by step index. An
// unknown run is governance.ErrNotFound; a run without content gives an
// empty map.
func (s *Store) Contents(ctx context.Context, tenantID, runID string) (map[int]trace.Content, error) {
	fail := func(err error) (map[int]trace.Content, error) {
		return nil, fmt.Errorf("postgres: reading contents of run %s (tenant %s): %w", runID, tenantID, err)
	}
	if err := s.runExists(ctx, tenantID, runID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT step_index, content FROM records
		WHERE tenant_id = $1 AND run_id = $2 AND content IS NOT NULL ORDER BY seq`, tenantID, runID)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	out := make(map[int]trace.Content)
	for rows.Next() {
		var (
			idx  int
			text string
		)
		if err := rows.Scan(&idx, &text); err != nil {
			return fail(err)
		}
		var c trace.Content
		if err := json.Unmarshal([]byte(text), &c); err != nil {
			return fail(fmt.Errorf("content of step %d: %w", idx, err))
		}
		out[idx] = c
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}

// runExists returns nil if the tenant has the run, else ErrNotFound.
func (s *Store) runExists(ctx context.Context, tenantID, runID string) error {
	var one int
	err := s.pool.QueryRow(ctx, `SELECT 1 FROM runs WHERE tenant_id = $1 AND run_id = $2`, tenantID, runID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("postgres: run %s of tenant %s: %w", runID, tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("postgres: reading run %s of tenant %s: %w", runID, tenantID, err)
	}
	return nil
}
