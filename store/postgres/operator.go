package postgres

import (
	"context"
	"time"

	"github.com/stopline/stopline/governance"
)

// Approval holds and kill switches (governance.HoldStore,
// governance.KillStore), over the shared SQL layer. Every change, by any
// replica, is announced by a trigger with NOTIFY on the channel
// stopline_operator; SubscribeChanges listens to it (listen.go).

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

// SubscribeChanges implements governance.Changes: the channel receives
// after every change to holds and kill switches made by any process on
// the database (LISTEN stopline_operator on one connection taken out of
// the pool at the first subscription and kept until Close, opened again
// after a failure) and by this handle.
func (s *Store) SubscribeChanges() (<-chan struct{}, func()) {
	ch, unsubscribe := s.hub.Subscribe()
	s.listen.start(s)
	return ch, unsubscribe
}
