package memstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/stopline/stopline/governance"
)

var _ governance.OutboxStore = (*Store)(nil)

// outboxRow is a delivery and its insertion order.
type outboxRow struct {
	d   governance.Delivery
	seq int
}

// addDeliveries stores a close's deliveries. The caller holds s.mu and
// has checked the close.
func (s *Store) addDeliveries(ds []governance.Delivery) {
	if s.outbox == nil {
		s.outbox = map[key]*outboxRow{}
	}
	for _, d := range ds {
		s.n++
		d.Payload = bytes.Clone(d.Payload)
		d.Attempts, d.Owner, d.LastError, d.DeliveredAt, d.DeadAt = 0, "", "", nil, nil
		d.NextAttemptAt = d.CreatedAt
		s.outbox[key{d.TenantID, d.ID}] = &outboxRow{d: d, seq: s.n}
	}
}

// checkDeliveries refuses deliveries whose ids are taken. The caller
// holds s.mu.
func (s *Store) checkDeliveries(ds []governance.Delivery) error {
	for _, d := range ds {
		if _, dup := s.outbox[key{d.TenantID, d.ID}]; dup {
			return fmt.Errorf("delivery %q of tenant %q already exists: %w", d.ID, d.TenantID, governance.ErrChainConflict)
		}
	}
	return nil
}

func copyDelivery(d governance.Delivery) governance.Delivery {
	d.Payload = bytes.Clone(d.Payload)
	if d.DeliveredAt != nil {
		t := *d.DeliveredAt
		d.DeliveredAt = &t
	}
	if d.DeadAt != nil {
		t := *d.DeadAt
		d.DeadAt = &t
	}
	return d
}

// ClaimDeliveries implements governance.OutboxStore.
func (s *Store) ClaimDeliveries(ctx context.Context, c governance.DeliveryClaim) ([]governance.Delivery, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var due []*outboxRow
	for _, r := range s.outbox {
		d := &r.d
		if d.DeliveredAt == nil && d.DeadAt == nil && !d.NextAttemptAt.After(c.Now) && slices.Contains(c.Sinks, d.Sink) {
			due = append(due, r)
		}
	}
	sort.Slice(due, func(i, j int) bool {
		if !due[i].d.NextAttemptAt.Equal(due[j].d.NextAttemptAt) {
			return due[i].d.NextAttemptAt.Before(due[j].d.NextAttemptAt)
		}
		return due[i].seq < due[j].seq
	})
	if len(due) > c.Limit {
		due = due[:c.Limit]
	}
	out := make([]governance.Delivery, 0, len(due))
	for _, r := range due {
		r.d.Attempts++
		r.d.Owner = c.Owner
		r.d.NextAttemptAt = c.Now.Add(c.Lease)
		out = append(out, copyDelivery(r.d))
	}
	return out, nil
}

// AckDelivery implements governance.OutboxStore.
func (s *Store) AckDelivery(ctx context.Context, tenantID, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.outbox[key{tenantID, id}]
	if !ok {
		return notFound("delivery", tenantID, id)
	}
	if r.d.DeliveredAt == nil {
		at := at.UTC()
		r.d.DeliveredAt, r.d.DeadAt, r.d.Owner = &at, nil, ""
	}
	return nil
}

// FailDelivery implements governance.OutboxStore.
func (s *Store) FailDelivery(ctx context.Context, f governance.DeliveryFailure) error {
	if err := f.Validate(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.outbox[key{f.TenantID, f.ID}]
	if !ok {
		return notFound("delivery", f.TenantID, f.ID)
	}
	d := &r.d
	if d.DeliveredAt != nil || d.DeadAt != nil || d.Owner != f.Owner || d.Attempts != f.Attempt {
		return fmt.Errorf("delivery %q of tenant %q, attempt %d by %q: %w", f.ID, f.TenantID, f.Attempt, f.Owner, governance.ErrLeaseLost)
	}
	d.Owner, d.LastError = "", f.Error
	if f.Dead {
		at := f.At.UTC()
		d.DeadAt = &at
	} else {
		d.NextAttemptAt = f.RetryAt.UTC()
	}
	return nil
}

// RetryDelivery implements governance.OutboxStore.
func (s *Store) RetryDelivery(ctx context.Context, tenantID, id string, at time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.outbox[key{tenantID, id}]
	if !ok {
		return notFound("delivery", tenantID, id)
	}
	if r.d.DeadAt != nil && r.d.DeliveredAt == nil {
		r.d.DeadAt, r.d.NextAttemptAt = nil, at.UTC()
	}
	return nil
}

// Deliveries implements governance.OutboxStore.
func (s *Store) Deliveries(ctx context.Context, f governance.DeliveryFilter) ([]governance.Delivery, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var rows []*outboxRow
	for k, r := range s.outbox {
		d := &r.d
		if k.tenant != f.TenantID || (f.RunID != "" && d.RunID != f.RunID) || (f.Sink != "" && d.Sink != f.Sink) ||
			(f.State != "" && d.State() != f.State) {
			continue
		}
		rows = append(rows, r)
	}
	sort.Slice(rows, func(i, j int) bool {
		if !rows[i].d.CreatedAt.Equal(rows[j].d.CreatedAt) {
			return rows[i].d.CreatedAt.After(rows[j].d.CreatedAt)
		}
		return rows[i].seq > rows[j].seq
	})
	if f.Limit > 0 && len(rows) > f.Limit {
		rows = rows[:f.Limit]
	}
	out := make([]governance.Delivery, 0, len(rows))
	for _, r := range rows {
		out = append(out, copyDelivery(r.d))
	}
	return out, nil
}
