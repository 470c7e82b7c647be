package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/stopline/stopline/governance"
)

// PutCheckpoint stores a signed checkpoint of a run's chain. The same
// checkpoint again is a no-op; another note for the same run, size and key
// is governance.ErrChainConflict; an unknown run is governance.ErrNotFound.
func (s *Store) PutCheckpoint(ctx context.Context, c governance.Checkpoint) error {
	fail := func(err error) error {
		return fmt.Errorf("postgres: storing checkpoint of run %s (tenant %s) at size %d: %w", c.RunID, c.TenantID, c.Size, err)
	}
	var e enc
	at := e.time("checkpoint time", c.At)
	if e.err != nil {
		return fail(e.err)
	}
	tag, err := s.pool.Exec(ctx, `INSERT INTO checkpoints (tenant_id, run_id, size, key_name, head_hash, at_ns, note)
		VALUES ($1, $2, $3, $4, $5, $6, $7)
		ON CONFLICT (tenant_id, run_id, size, key_name) DO NOTHING`,
		c.TenantID, c.RunID, c.Size, c.KeyName, c.Head, at, c.Note)
	switch {
	case hasCode(err, codeForeignKeyViolation, ""):
		return fail(governance.ErrNotFound)
	case err != nil:
		return fail(err)
	case tag.RowsAffected() == 1:
		return nil
	}
	var note string
	err = s.pool.QueryRow(ctx, `SELECT note FROM checkpoints WHERE tenant_id = $1 AND run_id = $2 AND size = $3 AND key_name = $4`,
		c.TenantID, c.RunID, c.Size, c.KeyName).Scan(&note)
	switch {
	case err != nil:
		return fail(err)
	case note != c.Note:
		return fail(fmt.Errorf("another note is stored for key %s: %w", c.KeyName, governance.ErrChainConflict))
	}
	return nil
}

// Checkpoints returns a run's checkpoints, smallest size first. An
// unknown run is governance.ErrNotFound.
func (s *Store) Checkpoints(ctx context.Context, tenantID, runID string) ([]governance.Checkpoint, error) {
	fail := func(err error) ([]governance.Checkpoint, error) {
		return nil, fmt.Errorf("postgres: reading checkpoints of run %s (tenant %s): %w", runID, tenantID, err)
	}
	if err := s.runExists(ctx, tenantID, runID); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT size, key_name, head_hash, at_ns, note FROM checkpoints
		WHERE tenant_id = $1 AND run_id = $2 ORDER BY size, key_name`, tenantID, runID)
	if err != nil {
		return fail(err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (governance.Checkpoint, error) {
		c := governance.Checkpoint{TenantID: tenantID, RunID: runID}
		var at *int64
		err := r.Scan(&c.Size, &c.KeyName, &c.Head, &at, &c.Note)
		c.At = timeOf(at)
		return c, err
	})
	if err != nil {
		return fail(err)
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	return out, nil
}
