package sqlite

import (
	"context"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore"
)

// CreateRun stores a new run and its run_start record (seq 0, prev_hash
// the genesis hash) in one BEGIN IMMEDIATE transaction, and keeps the
// run's head. The run's snapshot must be stored (else
// governance.ErrNotFound); a run id already stored for the tenant is
// governance.ErrRunExists. An empty Status is stored as queued; a run
// cannot be created ended.
func (s *Store) CreateRun(ctx context.Context, run governance.RunRecord, start governance.StepWrite) error {
	if err := s.db.CreateRun(ctx, run, start); err != nil {
		return err
	}
	s.headsMu.Lock()
	s.heads[runKey{run.TenantID, run.RunID}] = sqlstore.Head{Seq: 0, Hash: start.Record.Hash}
	s.headsMu.Unlock()
	return nil
}

// CloseRun ends a run in one BEGIN IMMEDIATE transaction, which reads the
// run's status and head and checks that the records extend it: the
// blocking step (if any, which must be marked as the inflection point),
// the incident (if any), the run_end record, and the run's final fields,
// with StepCount and totals taken from its last step record and HeadHash
// and ChainLength from the run_end record; with MarkRunning, a run that
// was queued gets StartedAt = the blocking step's time (EndedAt without
// one). Either all of it is stored or none. A run already ended is
// governance.ErrRunEnded; an unknown run is governance.ErrNotFound;
// records that do not extend the chain are governance.ErrChainConflict.
func (s *Store) CloseRun(ctx context.Context, c governance.Close) error {
	s.headsMu.Lock()
	defer s.headsMu.Unlock()
	delete(s.heads, runKey{c.TenantID, c.RunID}) // ended, or read again after a failure
	return s.db.CloseRun(ctx, c)
}
