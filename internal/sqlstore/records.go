package sqlstore

import (
	"context"
	"fmt"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/trace"
)

// InsertRecordSQL appends one record; its arguments are RecordArgs. The
// primary key (tenant_id, run_id, seq) refuses a seq already taken; that
// the record extends the chain is checked before (SQLite: against the
// head the store keeps) or by a trigger in the same statement
// (PostgreSQL).
const InsertRecordSQL = `INSERT INTO records
	(tenant_id, run_id, seq, kind, step_index, at_ns, status, inflection, policy_id,
	 total_tokens, total_cost_cents, body, prev_hash, hash, content)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`

// RecordArgs are the InsertRecordSQL arguments for w: the record's
// columns beside its body are governance.IndexOf, which verification
// compares with the body (RecordIndexes).
func (d *Dialect) RecordArgs(w *governance.StepWrite) ([]any, error) {
	r := &w.Record
	e := d.Enc()
	at := e.Time("record time", r.At)
	if e.Err != nil {
		return nil, e.Err
	}
	var content any
	if w.Content != nil && r.Kind == trace.KindStep { // content belongs to steps
		content = string(trace.EncodeContent(nil, w.Content))
	}
	x := governance.IndexOf(r)
	return []any{
		r.TenantID, r.RunID, int64(x.Seq), string(x.Kind), int64(x.StepIndex), at,
		nullString(string(x.Status)), x.Inflection, nullString(x.PolicyID),
		x.TotalTokens, x.TotalCostCents, w.Body, r.PrevHash, r.Hash, content,
	}, nil
}

// StepArgs checks a step write for AppendStep (governance.StepWrite.Validate)
// and returns its InsertRecordSQL arguments and, when it marks a queued
// run running, the run's start time (the record's) as a column value.
func (d *Dialect) StepArgs(w *governance.StepWrite) (args []any, startedAt any, err error) {
	if err := w.Validate(trace.KindStep); err != nil {
		return nil, nil, err
	}
	if args, err = d.RecordArgs(w); err != nil {
		return nil, nil, err
	}
	if w.MarkRunning {
		e := d.Enc()
		if startedAt = e.Time("started_at", w.Record.At); e.Err != nil {
			return nil, nil, e.Err
		}
	}
	return args, startedAt, nil
}

// RecordError maps the error of inserting r to the governance errors:
// governance.ErrNotFound for no such run, governance.ErrRunEnded, and
// governance.ErrChainConflict for a seq taken, a second inflection point
// or run_end, or a record that does not follow the stored head.
func (d *Dialect) RecordError(err error, r *trace.Record) error {
	if err == nil {
		return nil
	}
	wrap := func(what string, cause error) error {
		return d.errorf("%s record %d of run %s (tenant %s): %s: %w", r.Kind, r.Seq, r.RunID, r.TenantID, what, cause)
	}
	switch d.Classify(err) {
	case MissingReference, NoSuchRun:
		return wrap("no such run", governance.ErrNotFound)
	case RunEnded:
		return wrap("the run has ended", governance.ErrRunEnded)
	case ChainBroken:
		return wrap(fmt.Sprintf("prev_hash %s is not the hash stored at seq %d (or seq %d is not the next)", r.PrevHash, r.Seq-1, r.Seq), governance.ErrChainConflict)
	case PrimaryKeyTaken:
		return wrap(fmt.Sprintf("seq %d is taken", r.Seq), governance.ErrChainConflict)
	case UniqueTaken:
		if r.Inflection {
			return wrap("the run already has an inflection point", governance.ErrChainConflict)
		}
		return wrap("the run already has a run_end record", governance.ErrChainConflict)
	}
	return wrap("storing", err)
}

// Head is the last record of a run's chain.
type Head struct {
	Seq  int
	Hash string
}

// Extends checks that r is the record after h, else returns an error
// matching governance.ErrChainConflict.
func (h Head) Extends(r *trace.Record) error {
	if r.Seq != h.Seq+1 || r.PrevHash != h.Hash {
		return fmt.Errorf("record %d with prev_hash %s does not follow record %d with hash %s: %w",
			r.Seq, r.PrevHash, h.Seq, h.Hash, governance.ErrChainConflict)
	}
	return nil
}

// Records returns a run's chain in seq order, each record decoded from its
// stored body with its stored prev_hash and hash (trace.DecodeRecord), for
// trace.Verify to check. An unknown run is governance.ErrNotFound.
func (db *DB) Records(ctx context.Context, tenantID, runID string) ([]trace.Record, error) {
	rows, err := db.R.Query(ctx, `SELECT seq, body, prev_hash, hash FROM records
		WHERE tenant_id = $1 AND run_id = $2 ORDER BY seq`, tenantID, runID)
	var dec trace.Decoder
	out, err := collect(rows, err, func(row Row) (trace.Record, error) {
		var (
			seq            int
			body           []byte
			prevHash, hash string
		)
		if err := row.Scan(&seq, &body, &prevHash, &hash); err != nil {
			return trace.Record{}, err
		}
		r, err := dec.Decode(body, prevHash, hash)
		if err != nil {
			return r, fmt.Errorf("record at seq %d: %w", seq, err)
		}
		return r, nil
	})
	if err != nil {
		return nil, db.errorf("reading records of run %s (tenant %s): %w", runID, tenantID, err)
	}
	if len(out) == 0 {
		if err := db.RunExists(ctx, tenantID, runID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Contents returns the stored content of a run's steps, by step index. An
// unknown run is governance.ErrNotFound; a run without content gives an
// empty map.
func (db *DB) Contents(ctx context.Context, tenantID, runID string) (map[int]trace.Content, error) {
	if err := db.RunExists(ctx, tenantID, runID); err != nil {
		return nil, err
	}
	out := make(map[int]trace.Content)
	rows, err := db.R.Query(ctx, `SELECT step_index, content FROM records
		WHERE tenant_id = $1 AND run_id = $2 AND content IS NOT NULL ORDER BY seq`, tenantID, runID)
	err = each(rows, err, func(row Row) error {
		var (
			idx  int
			text []byte
		)
		if err := row.Scan(&idx, &text); err != nil {
			return err
		}
		c, err := trace.DecodeContent(text)
		if err != nil {
			return fmt.Errorf("content of step %d: %w", idx, err)
		}
		out[idx] = c
		return nil
	})
	if err != nil {
		return nil, db.errorf("reading contents of run %s (tenant %s): %w", runID, tenantID, err)
	}
	return out, nil
}
