package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/mattn/go-sqlite3"

	"github.com/stopline/stopline/governance"
)

// PutCheckpoint stores a signed checkpoint of a run's chain. The same
// checkpoint again is a no-op; another note for the same run, size and key
// is governance.ErrChainConflict; an unknown run is governance.ErrNotFound.
func (s *Store) PutCheckpoint(ctx context.Context, c governance.Checkpoint) error {
	fail := func(err error) error {
		return fmt.Errorf("sqlite: storing checkpoint of run %s (tenant %s) at size %d: %w", c.RunID, c.TenantID, c.Size, err)
	}
	var e enc
	at := e.time("checkpoint time", c.At)
	if e.err != nil {
		return fail(e.err)
	}
	return s.write(ctx, func(tx *sql.Tx) error {
		var note string
		err := tx.QueryRowContext(ctx, `SELECT note FROM checkpoints WHERE tenant_id = ? AND run_id = ? AND size = ? AND key_name = ?`,
			c.TenantID, c.RunID, c.Size, c.KeyName).Scan(&note)
		switch {
		case err == nil && note == c.Note:
			return nil
		case err == nil:
			return fail(fmt.Errorf("another note is stored for key %s: %w", c.KeyName, governance.ErrChainConflict))
		case !errors.Is(err, sql.ErrNoRows):
			return fail(err)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO checkpoints (tenant_id, run_id, size, key_name, head_hash, at_ns, note)
			VALUES (?, ?, ?, ?, ?, ?, ?)`, c.TenantID, c.RunID, c.Size, c.KeyName, c.Head, at, c.Note)
		if se, ok := sqliteError(err); ok && se.ExtendedCode == sqlite3.ErrConstraintForeignKey {
			return fail(governance.ErrNotFound)
		}
		if err != nil {
			return fail(err)
		}
		return nil
	})
}

// Checkpoints returns a run's checkpoints, smallest size first.
func (s *Store) Checkpoints(ctx context.Context, tenantID, runID string) ([]governance.Checkpoint, error) {
	fail := func(err error) ([]governance.Checkpoint, error) {
		return nil, fmt.Errorf("sqlite: reading checkpoints of run %s (tenant %s): %w", runID, tenantID, err)
	}
	var one int
	if err := s.r.QueryRowContext(ctx, `SELECT 1 FROM runs WHERE tenant_id = ? AND run_id = ?`, tenantID, runID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
		return fail(governance.ErrNotFound)
	} else if err != nil {
		return fail(err)
	}
	rows, err := s.r.QueryContext(ctx, `SELECT size, key_name, head_hash, at_ns, note FROM checkpoints
		WHERE tenant_id = ? AND run_id = ? ORDER BY size, key_name`, tenantID, runID)
	if err != nil {
		return fail(err)
	}
	defer rows.Close()
	var out []governance.Checkpoint
	for rows.Next() {
		c := governance.Checkpoint{TenantID: tenantID, RunID: runID}
		var at sql.NullInt64
		if err := rows.Scan(&c.Size, &c.KeyName, &c.Head, &at, &c.Note); err != nil {
			return fail(err)
		}
		c.At = timeOf(at)
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return fail(err)
	}
	return out, nil
}
