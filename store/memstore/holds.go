package memstore

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/stopline/stopline/governance"
)

var (
	_ governance.HoldStore = (*Store)(nil)
	_ governance.KillStore = (*Store)(nil)
	_ governance.Changes   = (*Store)(nil)
)

// PutHold implements governance.HoldStore.
func (s *Store) PutHold(ctx context.Context, h governance.Hold) error {
	if h.TenantID == "" || h.ID == "" || h.RunID == "" || h.Status != governance.HoldPending {
		return fmt.Errorf("memstore: hold %q: a pending hold needs a tenant, an id and a run", h.ID)
	}
	s.ops.Lock()
	k := key{h.TenantID, h.ID}
	if _, ok := s.holds[k]; ok {
		s.ops.Unlock()
		return fmt.Errorf("memstore: hold %s: %w", h.ID, governance.ErrHoldExists)
	}
	h.Step = bytes.Clone(h.Step)
	s.holds[k] = h
	s.holdOrder = append(s.holdOrder, k)
	s.ops.Unlock()
	s.hub.Signal()
	return nil
}

// Hold implements governance.HoldStore.
func (s *Store) Hold(ctx context.Context, tenantID, holdID string) (governance.Hold, error) {
	s.ops.Lock()
	defer s.ops.Unlock()
	h, ok := s.holds[key{tenantID, holdID}]
	if !ok {
		return governance.Hold{}, notFound("hold", tenantID, holdID)
	}
	return copyHold(h, true), nil
}

func copyHold(h governance.Hold, step bool) governance.Hold {
	if h.AnsweredAt != nil {
		at := *h.AnsweredAt
		h.AnsweredAt = &at
	}
	if step {
		h.Step = bytes.Clone(h.Step)
	} else {
		h.Step = nil
	}
	return h
}

// Holds implements governance.HoldStore.
func (s *Store) Holds(ctx context.Context, f governance.HoldFilter) ([]governance.Hold, error) {
	s.ops.Lock()
	defer s.ops.Unlock()
	var out []governance.Hold
	for _, k := range s.holdOrder {
		h := s.holds[k]
		if h.TenantID != f.TenantID || (f.RunID != "" && h.RunID != f.RunID) || (f.Status != "" && h.Status != f.Status) {
			continue
		}
		out = append(out, copyHold(h, false))
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].RequestedAt.Before(out[j].RequestedAt) })
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// AnswerHold implements governance.HoldStore.
func (s *Store) AnswerHold(ctx context.Context, tenantID, holdID string, a governance.HoldAnswer) (governance.Hold, error) {
	if !a.Status.Valid() || a.Status == governance.HoldPending {
		return governance.Hold{}, fmt.Errorf("memstore: hold %s: %q is not an answer", holdID, a.Status)
	}
	s.ops.Lock()
	k := key{tenantID, holdID}
	h, ok := s.holds[k]
	if !ok {
		s.ops.Unlock()
		return governance.Hold{}, notFound("hold", tenantID, holdID)
	}
	if h.Status != governance.HoldPending {
		s.ops.Unlock()
		return governance.Hold{}, fmt.Errorf("memstore: hold %s is %s: %w", holdID, h.Status, governance.ErrHoldAnswered)
	}
	at := a.At.UTC()
	h.Status, h.AnsweredBy, h.AnswerReason, h.AnsweredAt = a.Status, a.By, a.Reason, &at
	s.holds[k] = h
	s.ops.Unlock()
	s.hub.Signal()
	return copyHold(h, false), nil
}

// PutKill implements governance.KillStore.
func (s *Store) PutKill(ctx context.Context, k governance.KillSwitch) error {
	if k.TenantID == "" || k.ID == "" || !k.Scope.Valid() || k.Target == "" {
		return fmt.Errorf("memstore: kill switch %q: a tenant, an id, a scope and a target are required", k.ID)
	}
	s.ops.Lock()
	for _, o := range s.kills {
		if o.ReleasedAt == nil && o.TenantID == k.TenantID && o.Scope == k.Scope && o.Target == k.Target {
			s.ops.Unlock()
			return fmt.Errorf("memstore: kill switch on %s %q of tenant %q: %w", k.Scope, k.Target, k.TenantID, governance.ErrKillActive)
		}
	}
	k.ReleasedAt, k.ReleasedBy = nil, ""
	s.kills = append(s.kills, k)
	s.ops.Unlock()
	s.hub.Signal()
	return nil
}

// ReleaseKill implements governance.KillStore.
func (s *Store) ReleaseKill(ctx context.Context, tenantID string, scope governance.KillScope, target, by string, at time.Time) (governance.KillSwitch, error) {
	s.ops.Lock()
	for i := range s.kills {
		k := &s.kills[i]
		if k.ReleasedAt == nil && k.TenantID == tenantID && k.Scope == scope && k.Target == target {
			t := at.UTC()
			k.ReleasedAt, k.ReleasedBy = &t, by
			out := *k
			s.ops.Unlock()
			s.hub.Signal()
			return out, nil
		}
	}
	s.ops.Unlock()
	return governance.KillSwitch{}, fmt.Errorf("memstore: no active kill switch on %s %q of tenant %q: %w", scope, target, tenantID, governance.ErrNotFound)
}

// ActiveKills implements governance.KillStore.
func (s *Store) ActiveKills(ctx context.Context, tenantID string) ([]governance.KillSwitch, error) {
	s.ops.Lock()
	defer s.ops.Unlock()
	var out []governance.KillSwitch
	for _, k := range s.kills {
		if k.ReleasedAt == nil && (tenantID == "" || k.TenantID == tenantID) {
			out = append(out, k)
		}
	}
	return out, nil
}

// SubscribeChanges implements governance.Changes: it signals every hold
// and kill switch change made through this Store.
func (s *Store) SubscribeChanges() (<-chan struct{}, func()) { return s.hub.Subscribe() }
