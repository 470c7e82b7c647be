package sqlite

import (
	"context"
	"time"

	"github.com/stopline/stopline/governance"
)

var _ governance.OutboxStore = (*Store)(nil)

// ClaimDeliveries leases up to c.Limit due deliveries of c.Sinks to
// c.Owner until c.Now + c.Lease, the earliest due first, adding one to
// each one's attempts, in one statement.
func (s *Store) ClaimDeliveries(ctx context.Context, c governance.DeliveryClaim) ([]governance.Delivery, error) {
	return s.db.ClaimDeliveries(ctx, c)
}

// AckDelivery marks a delivery delivered. One already delivered stays as
// it was; an unknown one is governance.ErrNotFound.
func (s *Store) AckDelivery(ctx context.Context, tenantID, id string, at time.Time) error {
	return s.db.AckDelivery(ctx, tenantID, id, at)
}

// FailDelivery records a failed attempt: due again at f.RetryAt, or dead.
// A claim that no longer holds the delivery gets governance.ErrLeaseLost.
func (s *Store) FailDelivery(ctx context.Context, f governance.DeliveryFailure) error {
	return s.db.FailDelivery(ctx, f)
}

// RetryDelivery makes a dead delivery due again at the given time.
func (s *Store) RetryDelivery(ctx context.Context, tenantID, id string, at time.Time) error {
	return s.db.RetryDelivery(ctx, tenantID, id, at)
}

// Deliveries lists a tenant's deliveries, newest first, filtered.
func (s *Store) Deliveries(ctx context.Context, f governance.DeliveryFilter) ([]governance.Delivery, error) {
	return s.db.Deliveries(ctx, f)
}
