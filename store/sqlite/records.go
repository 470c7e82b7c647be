package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/mattn/go-sqlite3"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/trace"
)

// insertRecordSQL appends one record. That it extends the chain is
// checked before, against the run's head (see Store.heads); the primary
// key (tenant_id, run_id, seq) refuses a seq already taken.
const insertRecordSQL = `INSERT INTO records
	(tenant_id, run_id, seq, kind, step_index, at_ns, status, inflection, policy_id,
	 total_tokens, total_cost_cents, body, prev_hash, hash, content)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

type runKey struct{ tenant, run string }

// chainHead is the last record of an open run's chain.
type chainHead struct {
	seq  int
	hash string
}

// head returns the chain head of an open run, from memory or, the first
// time, from the database (on the write connection, so that it sees every
// committed write). Unknown runs are ErrNotFound, ended ones ErrRunEnded.
func (s *Store) head(ctx context.Context, k runKey) (chainHead, error) {
	if h, ok := s.heads[k]; ok {
		return h, nil
	}
	var (
		status string
		h      chainHead
	)
	err := s.w.QueryRowContext(ctx, `SELECT r.status, c.seq, c.hash FROM runs r
		JOIN records c ON c.tenant_id = r.tenant_id AND c.run_id = r.run_id
		WHERE r.tenant_id = ? AND r.run_id = ? ORDER BY c.seq DESC LIMIT 1`, k.tenant, k.run).Scan(&status, &h.seq, &h.hash)
	if errors.Is(err, sql.ErrNoRows) {
		return h, governance.ErrNotFound
	} else if err != nil {
		return h, err
	}
	if governance.RunStatus(status).Ended() {
		return h, fmt.Errorf("status %s: %w", status, governance.ErrRunEnded)
	}
	s.heads[k] = h
	return h, nil
}

// extends checks that r is the record after h.
func extends(h chainHead, r *trace.Record) error {
	if r.Seq != h.seq+1 || r.PrevHash != h.hash {
		return fmt.Errorf("record %d with prev_hash %s does not follow record %d with hash %s: %w",
			r.Seq, r.PrevHash, h.seq, h.hash, governance.ErrChainConflict)
	}
	return nil
}

// AppendStep appends one step record to its run's chain with a single
// INSERT, or, when MarkRunning is set, an INSERT and the run's move from
// queued to running (StartedAt = the record's time) in one BEGIN IMMEDIATE
// transaction. A record whose seq is not the next one or whose prev_hash
// is not the stored head is governance.ErrChainConflict; a run that has
// ended is governance.ErrRunEnded; an unknown run (of this tenant) is
// governance.ErrNotFound.
//
// The record must be a step whose body is its canonical encoding
// (trace.Encode) and whose hash covers that body and its prev_hash: the
// store keeps the body and indexes the record's fields beside it, and
// refuses a write whose fields and hashed bytes disagree.
func (s *Store) AppendStep(ctx context.Context, w governance.StepWrite) error {
	if err := w.Validate(trace.KindStep); err != nil {
		return err
	}
	args, err := recordArgs(&w)
	if err != nil {
		return err
	}
	r := &w.Record
	k := runKey{r.TenantID, r.RunID}
	s.headsMu.Lock()
	defer s.headsMu.Unlock()
	h, err := s.head(ctx, k)
	if err == nil {
		err = extends(h, r)
	}
	if err != nil {
		return fmt.Errorf("sqlite: step record %d of run %s (tenant %s): %w", r.Seq, r.RunID, r.TenantID, err)
	}
	if !w.MarkRunning {
		_, err = s.insertRecord.ExecContext(ctx, args...)
	} else {
		var e enc
		startedAt := e.time("started_at", r.At)
		if e.err != nil {
			return e.err
		}
		err = s.write(ctx, func(tx *sql.Tx) error {
			if _, err := tx.StmtContext(ctx, s.insertRecord).ExecContext(ctx, args...); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?)
				WHERE tenant_id = ? AND run_id = ? AND status = 'queued'`,
				startedAt, r.TenantID, r.RunID)
			if err != nil {
				return fmt.Errorf("sqlite: marking run %s of tenant %s running: %w", r.RunID, r.TenantID, err)
			}
			return nil
		})
	}
	if err != nil {
		delete(s.heads, k) // read it again next time
		return recordError(err, r)
	}
	s.heads[k] = chainHead{seq: r.Seq, hash: r.Hash}
	return nil
}

// recordArgs are the insertRecordSQL arguments for w.
func recordArgs(w *governance.StepWrite) ([]any, error) {
	r := &w.Record
	var e enc
	at := e.time("record time", r.At)
	var content any
	if w.Content != nil && r.Kind == trace.KindStep { // content belongs to steps
		content = string(trace.EncodeContent(nil, w.Content))
	}
	if e.err != nil {
		return nil, e.err
	}
	// The columns beside the body: governance.IndexOf, which verification
	// compares with the body (RecordIndexes).
	x := governance.IndexOf(r)
	inflection := 0
	if x.Inflection {
		inflection = 1
	}
	return []any{
		r.TenantID, r.RunID, int64(x.Seq), string(x.Kind), int64(x.StepIndex), at,
		nullString(string(x.Status)), inflection, nullString(x.PolicyID),
		x.TotalTokens, x.TotalCostCents, w.Body, r.PrevHash, r.Hash, content,
	}, nil
}

// recordError maps the error of inserting r to the governance errors.
func recordError(err error, r *trace.Record) error {
	if err == nil {
		return nil
	}
	wrap := func(what string, sentinel error) error {
		return fmt.Errorf("sqlite: %s record %d of run %s (tenant %s): %s: %w", r.Kind, r.Seq, r.RunID, r.TenantID, what, sentinel)
	}
	se, ok := sqliteError(err)
	if !ok {
		return wrap("storing", err)
	}
	switch se.ExtendedCode {
	case sqlite3.ErrConstraintForeignKey:
		return wrap("no such run", governance.ErrNotFound)
	case sqlite3.ErrConstraintPrimaryKey:
		return wrap(fmt.Sprintf("seq %d is taken", r.Seq), governance.ErrChainConflict)
	case sqlite3.ErrConstraintUnique:
		if r.Inflection {
			return wrap("the run already has an inflection point", governance.ErrChainConflict)
		}
		return wrap("the run already has a run_end record", governance.ErrChainConflict)
	}
	return wrap("storing", err)
}

// Records returns a run's chain in seq order, each record decoded from its
// stored body with its stored prev_hash and hash (trace.DecodeRecord), for
// trace.Verify to check. An unknown run is governance.ErrNotFound.
func (s *Store) Records(ctx context.Context, tenantID, runID string) ([]trace.Record, error) {
	fail := func(err error) ([]trace.Record, error) {
		return nil, fmt.Errorf("sqlite: reading records of run %s (tenant %s): %w", runID, tenantID, err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT seq, body, prev_hash, hash FROM records
		WHERE tenant_id = ? AND run_id = ? ORDER BY seq`, tenantID, runID)
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
		return nil, fmt.Errorf("sqlite: reading contents of run %s (tenant %s): %w", runID, tenantID, err)
	}
	if err := s.runExists(ctx, tenantID, runID); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, `SELECT step_index, content FROM records
		WHERE tenant_id = ? AND run_id = ? AND content IS NOT NULL ORDER BY seq`, tenantID, runID)
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
	err := s.r.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE tenant_id = ? AND run_id = ?`, tenantID, runID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("sqlite: run %s of tenant %s: %w", runID, tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("sqlite: reading run %s of tenant %s: %w", runID, tenantID, err)
	}
	return nil
}
