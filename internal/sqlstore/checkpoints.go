package sqlstore

import (
	"context"
	"fmt"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/translog"
)

// PutCheckpoint stores a signed checkpoint of a run's chain and appends
// it to the tenant's log, in one transaction. The same checkpoint again
// is a no-op (nothing appended); another note for the same run, size and
// key is governance.ErrChainConflict; an unknown run is
// governance.ErrNotFound. The transaction locks the tenant's log row
// first (the order CloseRun takes its locks in), then is one INSERT ...
// ON CONFLICT DO NOTHING and, if the row is new, the append; if a row was
// there, one read of its note: checkpoints never change once stored.
func (db *DB) PutCheckpoint(ctx context.Context, c governance.Checkpoint) error {
	fail := func(err error) error {
		return db.errorf("storing checkpoint of run %s (tenant %s) at size %d: %w", c.RunID, c.TenantID, c.Size, err)
	}
	e := db.Enc()
	at := e.Time("checkpoint time", c.At)
	if e.Err != nil {
		return fail(e.Err)
	}
	leaf := translog.Leaf{TenantID: c.TenantID, RunID: c.RunID, Kind: translog.KindCheckpoint, Seq: c.Size - 1,
		Head: c.Head, KeyName: c.KeyName, NoteHash: translog.NoteHash(c.Note)}
	if _, err := leaf.Encode(); err != nil {
		return fail(err)
	}
	return db.Tx(ctx, func(q Querier) error {
		st, err := db.lockLog(ctx, q, c.TenantID)
		if err != nil {
			return fail(err)
		}
		n, err := q.Exec(ctx, `INSERT INTO checkpoints (tenant_id, run_id, size, key_name, head_hash, at_ns, note)
			VALUES ($1, $2, $3, $4, $5, $6, $7)
			ON CONFLICT (tenant_id, run_id, size, key_name) DO NOTHING`,
			c.TenantID, c.RunID, c.Size, c.KeyName, c.Head, at, c.Note)
		switch {
		case err != nil && db.Classify(err) == MissingReference:
			return fail(governance.ErrNotFound)
		case err != nil:
			return fail(err)
		case n == 1 && db.NoTenantLog:
			return nil
		case n == 1:
			stmts, err := appendStmts(leaf, st)
			if err != nil {
				return fail(fmt.Errorf("appending to the tenant log: %w", err))
			}
			if _, err := q.Batch(ctx, stmts...); err != nil {
				return fail(fmt.Errorf("appending to the tenant log: %w", err))
			}
			return nil
		}
		var note string
		err = q.QueryRow(ctx, `SELECT note FROM checkpoints WHERE tenant_id = $1 AND run_id = $2 AND size = $3 AND key_name = $4`,
			c.TenantID, c.RunID, c.Size, c.KeyName).Scan(&note)
		switch {
		case err != nil:
			return fail(err)
		case note != c.Note:
			return fail(fmt.Errorf("another note is stored for key %s: %w", c.KeyName, governance.ErrChainConflict))
		}
		return nil
	})
}

// Checkpoints returns a run's checkpoints, smallest size first. An
// unknown run is governance.ErrNotFound.
func (db *DB) Checkpoints(ctx context.Context, tenantID, runID string) ([]governance.Checkpoint, error) {
	if err := db.RunExists(ctx, tenantID, runID); err != nil {
		return nil, err
	}
	rows, err := db.R.Query(ctx, `SELECT size, key_name, head_hash, at_ns, note FROM checkpoints
		WHERE tenant_id = $1 AND run_id = $2 ORDER BY size, key_name`, tenantID, runID)
	out, err := collect(rows, err, func(r Row) (governance.Checkpoint, error) {
		c := governance.Checkpoint{TenantID: tenantID, RunID: runID}
		var at *int64
		err := r.Scan(&c.Size, &c.KeyName, &c.Head, &at, &c.Note)
		c.At = TimeOf(at)
		return c, err
	})
	if err != nil {
		return nil, db.errorf("reading checkpoints of run %s (tenant %s): %w", runID, tenantID, err)
	}
	return out, nil
}
