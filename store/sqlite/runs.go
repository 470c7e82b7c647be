package sqlite

import (
	"context"

	"github.com/stopline/stopline/governance"
)

// CreateRun stores a new run and its run_start record (seq 0, prev_hash
// the genesis hash) in one BEGIN IMMEDIATE transaction, and keeps the
// run's head. Runs created, steps appended and runs closed at the same
// moment share that transaction and its commit (group commit, see
// group.go). The run's snapshot must be stored (else
// governance.ErrNotFound); a run id already stored for the tenant is
// governance.ErrRunExists. An empty Status is stored as queued; a run
// cannot be created ended.
func (s *Store) CreateRun(ctx context.Context, run governance.RunRecord, start governance.StepWrite) error {
	return s.submit(&writeReq{kind: opCreate, ctx: ctx, key: runKey{run.TenantID, run.RunID}, create: &createReq{run, start}})
}

// CloseRun ends a run in one BEGIN IMMEDIATE transaction, which reads the
// run's status and head and checks that the records extend it: the
// blocking step (if any, which must be marked as the inflection point),
// the incident (if any), the run_end record, and the run's final fields,
// with StepCount and totals taken from its last step record and HeadHash
// and ChainLength from the run_end record; with MarkRunning, a run that
// was queued gets StartedAt = the blocking step's time (EndedAt without
// one). Either all of it is stored or none. It goes through the same
// queue as AppendStep (group commit, see group.go), after every write of
// the run queued before it, and may share its transaction with other
// runs' writes, inside a savepoint of its own. A run already ended is
// governance.ErrRunEnded; an unknown run is governance.ErrNotFound;
// records that do not extend the chain are governance.ErrChainConflict.
func (s *Store) CloseRun(ctx context.Context, c governance.Close) error {
	write, err := s.db.CloseRunWrite(c)
	if err != nil {
		return err
	}
	return s.submit(&writeReq{kind: opClose, ctx: ctx, key: runKey{c.TenantID, c.RunID}, close: write})
}
