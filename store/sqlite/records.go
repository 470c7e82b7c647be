package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore"
)

type runKey struct{ tenant, run string }

// head returns the chain head of an open run, from memory or, the first
// time, from the database (on the write connection, so that it sees every
// committed write). Unknown runs are ErrNotFound, ended ones ErrRunEnded.
func (s *Store) head(ctx context.Context, k runKey) (sqlstore.Head, error) {
	if h, ok := s.heads[k]; ok {
		return h, nil
	}
	var (
		status string
		h      sqlstore.Head
	)
	err := s.w.QueryRowContext(ctx, `SELECT r.status, c.seq, c.hash FROM runs r
		JOIN records c ON c.tenant_id = r.tenant_id AND c.run_id = r.run_id
		WHERE r.tenant_id = ? AND r.run_id = ? ORDER BY c.seq DESC LIMIT 1`, k.tenant, k.run).Scan(&status, &h.Seq, &h.Hash)
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
	args, startedAt, err := dialect.StepArgs(&w)
	if err != nil {
		return err
	}
	r := &w.Record
	k := runKey{r.TenantID, r.RunID}
	s.headsMu.Lock()
	defer s.headsMu.Unlock()
	h, err := s.head(ctx, k)
	if err == nil {
		err = h.Extends(r)
	}
	if err != nil {
		return fmt.Errorf("sqlite: step record %d of run %s (tenant %s): %w", r.Seq, r.RunID, r.TenantID, err)
	}
	if err := s.insertStep(ctx, args, w.MarkRunning, startedAt); err != nil {
		delete(s.heads, k) // read it again next time
		return dialect.RecordError(err, r)
	}
	s.heads[k] = sqlstore.Head{Seq: r.Seq, Hash: r.Hash}
	return nil
}

// insertStep is the one place a step's record is written (args are
// sqlstore.RecordArgs): one INSERT committed alone, or, with markRunning,
// in a transaction that also moves the run from queued to running.
func (s *Store) insertStep(ctx context.Context, args []any, markRunning bool, startedAt any) error {
	if !markRunning {
		_, err := s.insertRecord.ExecContext(ctx, args...)
		return err
	}
	return inTx(ctx, s.w, func(tx *sql.Tx) error {
		if _, err := tx.StmtContext(ctx, s.insertRecord).ExecContext(ctx, args...); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?)
			WHERE tenant_id = ? AND run_id = ? AND status = 'queued'`, startedAt, args[0], args[1])
		if err != nil {
			return fmt.Errorf("marking the run running: %w", err)
		}
		return nil
	})
}
