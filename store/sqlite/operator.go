package sqlite

import (
	"context"
	"time"

	"github.com/stopline/stopline/governance"
)

// Approval holds and kill switches (governance.HoldStore,
// governance.KillStore), over the shared SQL layer. Changes made through
// this handle wake its subscribers at once (governance.Changes); changes
// made by other processes are seen at their next poll.

var (
	_ governance.HoldStore = (*Store)(nil)
	_ governance.KillStore = (*Store)(nil)
	_ governance.Changes   = (*Store)(nil)
)

// PutHold stores a new pending hold; an id already stored is
// governance.ErrHoldExists, a run that is not stored governance.ErrNotFound.
func (s *Store) PutHold(ctx context.Context, h governance.Hold) error {
	err := s.db.PutHold(ctx, h)
	if err == nil {
		s.hub.Signal()
	}
	return err
}

// Hold returns one hold, with its held step, or governance.ErrNotFound.
func (s *Store) Hold(ctx context.Context, tenantID, holdID string) (governance.Hold, error) {
	return s.db.Hold(ctx, tenantID, holdID)
}

// Holds lists a tenant's holds, oldest request first.
func (s *Store) Holds(ctx context.Context, f governance.HoldFilter) ([]governance.Hold, error) {
	return s.db.Holds(ctx, f)
}

// AnswerHold answers a pending hold in one conditional UPDATE; a hold
// already answered is governance.ErrHoldAnswered.
func (s *Store) AnswerHold(ctx context.Context, tenantID, holdID string, a governance.HoldAnswer) (governance.Hold, error) {
	h, err := s.db.AnswerHold(ctx, tenantID, holdID, a)
	if err == nil {
		s.hub.Signal()
	}
	return h, err
}

// PutKill stores a pulled kill switch; another active one over the same
// scope is governance.ErrKillActive.
func (s *Store) PutKill(ctx context.Context, k governance.KillSwitch) error {
	err := s.db.PutKill(ctx, k)
	if err == nil {
		s.hub.Signal()
	}
	return err
}

// ReleaseKill releases the active switch over the scope, or returns
// governance.ErrNotFound.
func (s *Store) ReleaseKill(ctx context.Context, tenantID string, scope governance.KillScope, target, by string, at time.Time) (governance.KillSwitch, error) {
	k, err := s.db.ReleaseKill(ctx, tenantID, scope, target, by, at)
	if err == nil {
		s.hub.Signal()
	}
	return k, err
}

// ActiveKills lists the active switches of a tenant, or of every tenant
// for "".
func (s *Store) ActiveKills(ctx context.Context, tenantID string) ([]governance.KillSwitch, error) {
	return s.db.ActiveKills(ctx, tenantID)
}

// SubscribeChanges implements governance.Changes for the changes made
// through this handle. Other processes' changes are not signalled: the
// runner's polls see them.
func (s *Store) SubscribeChanges() (<-chan struct{}, func()) { return s.hub.Subscribe() }
