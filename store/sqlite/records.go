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
// The caller holds headsMu.
func (s *Store) head(ctx context.Context, q runner, k runKey) (sqlstore.Head, error) {
	if h, ok := s.heads[k]; ok {
		return h, nil
	}
	h, err := readHead(ctx, q, k)
	if err != nil {
		return h, err
	}
	s.heads[k] = h
	return h, nil
}

// readHead reads the chain head of an open run with q.
func readHead(ctx context.Context, q runner, k runKey) (sqlstore.Head, error) {
	var (
		status string
		h      sqlstore.Head
	)
	err := q.QueryRowContext(ctx, `SELECT r.status, c.seq, c.hash FROM runs r
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
	return h, nil
}

// AppendStep appends one step record to its run's chain: a single INSERT,
// or, when MarkRunning is set, an INSERT and the run's move from queued
// to running (StartedAt = the record's time) in the same transaction. It
// returns once the transaction that holds the record has committed (in
// FULL mode: fsynced). Steps of other runs that are waiting at the same
// moment share that transaction and its commit (group commit, see
// group.go); a step that finds no other waiting is committed alone, at
// once. A record whose seq is not the next one or whose prev_hash is not
// the stored head is governance.ErrChainConflict; a run that has ended is
// governance.ErrRunEnded; an unknown run (of this tenant) is
// governance.ErrNotFound. A refused step fails alone: the other steps of
// its transaction are committed.
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
	return s.submit(&writeReq{kind: opAppend, ctx: ctx, key: runKey{r.TenantID, r.RunID},
		step: stepRef{seq: r.Seq, prevHash: r.PrevHash, hash: r.Hash, inflection: r.Inflection},
		args: args, markRunning: w.MarkRunning, startedAt: startedAt})
}

// insertStep is the one place a step's record is written (args are
// sqlstore.RecordArgs). With tx nil, the step is written alone: one
// INSERT committed by itself, or, with markRunning, in a transaction of
// its own that also moves the run from queued to running. In a batch's
// transaction tx, it is the INSERT only (the batch moves the run with
// markRunning after it).
func (s *Store) insertStep(ctx context.Context, tx *sql.Tx, args []any, markRunning bool, startedAt any) error {
	if tx != nil {
		_, err := tx.StmtContext(ctx, s.insertRecord).ExecContext(ctx, args...)
		return err
	}
	if !markRunning {
		_, err := s.insertRecord.ExecContext(ctx, args...)
		return err
	}
	return inTx(ctx, s.w, func(tx *sql.Tx) error {
		if err := s.insertStep(ctx, tx, args, false, nil); err != nil {
			return err
		}
		return s.markRunning(ctx, tx, args, startedAt)
	})
}

// markRunning moves a step's run (args are its record's) from queued to
// running, started at startedAt, in tx.
func (s *Store) markRunning(ctx context.Context, tx *sql.Tx, args []any, startedAt any) error {
	_, err := tx.ExecContext(ctx, `UPDATE runs SET status = 'running', started_at = COALESCE(started_at, ?)
		WHERE tenant_id = ? AND run_id = ? AND status = 'queued'`, startedAt, args[0], args[1])
	if err != nil {
		return fmt.Errorf("marking the run running: %w", err)
	}
	return nil
}
