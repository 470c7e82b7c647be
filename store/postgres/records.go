package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore"
	"github.com/stopline/stopline/trace"
)

// appendRunningSQL is the record's INSERT and the run's move from queued
// to running, in one statement (so one implicit transaction): the UPDATE
// happens only if the INSERT did.
const appendRunningSQL = `WITH ins AS (` + sqlstore.InsertRecordSQL + ` RETURNING 1)
	UPDATE runs SET status = 'running', started_at = COALESCE(started_at, $16)
	WHERE tenant_id = $1 AND run_id = $2 AND status = 'queued' AND EXISTS (SELECT 1 FROM ins)`

// AppendStep appends one step record to its run's chain with a single
// INSERT (committed on its own: one round trip), or, when MarkRunning is
// set, a single statement that also moves the run from queued to running
// (StartedAt = the record's time). Whether the record extends the chain
// is checked by the database in that statement (the records_chain
// trigger checks that it follows the hash stored at seq - 1 and that the
// chain is not closed; the primary key lets only one of two racing
// writers in), so it holds across any number of replicas without a lock:
// a record whose seq is not the next one or whose prev_hash is not the
// stored head is governance.ErrChainConflict; a run that has ended is
// governance.ErrRunEnded; an unknown run (of this tenant) is
// governance.ErrNotFound.
//
// The record must be a step whose body is its canonical encoding
// (trace.Encode) and whose hash covers that body and its prev_hash.
func (s *Store) AppendStep(ctx context.Context, w governance.StepWrite) error {
	args, startedAt, err := dialect.StepArgs(&w)
	if err != nil {
		return err
	}
	q := sqlstore.InsertRecordSQL
	if w.MarkRunning {
		q, args = appendRunningSQL, append(args, startedAt)
	}
	if !s.appends.off {
		if err := ctx.Err(); err != nil {
			return err
		}
		return s.submit(&appendReq{ctx: ctx, sql: q, args: args, rec: &w.Record})
	}
	return s.appendOne(ctx, q, args, &w.Record)
}

// appendOne sends one append's statement alone and maps its error.
func (s *Store) appendOne(ctx context.Context, q string, args []any, r *trace.Record) error {
	_, err := s.pool.Exec(ctx, q, args...)
	if err != nil && dialect.Classify(err) == sqlstore.ChainBroken {
		// No record at seq - 1 with that hash: a stale head, or no such run.
		if rerr := s.db.RunExists(ctx, r.TenantID, r.RunID); errors.Is(rerr, governance.ErrNotFound) {
			return fmt.Errorf("postgres: step record %d of run %s (tenant %s): %w", r.Seq, r.RunID, r.TenantID, rerr)
		}
	}
	return dialect.RecordError(err, r)
}
