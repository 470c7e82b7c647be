package governance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/incident"
)

// Outbox is what a Runner asks, when a run ends, for the deliveries to
// store with the end: CloseRun writes them in the same transaction as the
// run's final fields and its incident, so that an end that is recorded
// has its deliveries recorded too, and one that is not has none. A
// dispatcher (package sink's Dispatcher is one) delivers them afterwards,
// at least once, from the store.
//
// The Runner calls Deliveries on the goroutine of the call that ends the
// run, before CloseRun, and Stored after CloseRun stored them. Both must
// return at once: they must not do I/O or block (Stored may wake a
// dispatcher, without waiting for it). They may be called concurrently
// for different runs.
type Outbox interface {
	// Deliveries returns the deliveries of a run's end: run is the run
	// as it will be stored once ended, inc the incident created with the
	// stop (nil when none). Each Delivery needs its TenantID, ID, Sink,
	// Event, RunID, Payload and CreatedAt; IDs must be unique per tenant.
	// An error leaves the end without deliveries: the end is recorded
	// all the same and the error is reported (matching ErrRecordFailed).
	Deliveries(run RunRecord, inc *incident.Incident) ([]Delivery, error)
	// Stored tells that the deliveries of a run's end are committed.
	Stored(ds []Delivery)
}

// OutboxStore is implemented by stores that keep an outbox: the
// deliveries CloseRun writes with a run's end (Close.Deliveries), and
// their delivery state, for dispatchers that may run in several processes
// at once. store/memstore, store/sqlite and store/postgres implement it;
// a Runner made WithOutbox needs it (NewRunner fails without it).
//
// A delivery is due when it is neither delivered nor dead and its
// NextAttemptAt has come. Claiming a delivery leases it: it is not due
// again before the lease ends, so two dispatchers never hold the same
// delivery at once (a dispatcher that dies holding one only delays it by
// its lease). Deliveries are at least once: one that was delivered but
// not acknowledged before its lease ended is delivered again, with the
// same ID.
type OutboxStore interface {
	Store
	// ClaimDeliveries leases to c.Owner, until c.Now + c.Lease, up to
	// c.Limit deliveries of c.Sinks that are due at c.Now, of every
	// tenant, the earliest due first. Each claim adds one to the
	// delivery's Attempts; the deliveries are returned as claimed.
	ClaimDeliveries(ctx context.Context, c DeliveryClaim) ([]Delivery, error)
	// AckDelivery marks a delivery delivered at the given time. A
	// delivery already delivered stays as it was (nil); an unknown one is
	// ErrNotFound.
	AckDelivery(ctx context.Context, tenantID, id string, at time.Time) error
	// FailDelivery records a failed attempt: the delivery is due again at
	// f.RetryAt, or dead when f.Dead. Only the claim that made attempt
	// f.Attempt, by f.Owner, may do so: for any other (the lease ended and
	// the delivery was claimed again, or it was delivered meanwhile) it
	// is ErrLeaseLost and nothing changes.
	FailDelivery(ctx context.Context, f DeliveryFailure) error
	// Deliveries lists a tenant's deliveries, newest first, filtered.
	Deliveries(ctx context.Context, f DeliveryFilter) ([]Delivery, error)
	// RetryDelivery makes a dead delivery due again at the given time,
	// with its attempts kept. A delivery that is not dead is left as it
	// was (nil); an unknown one is ErrNotFound.
	RetryDelivery(ctx context.Context, tenantID, id string, at time.Time) error
}

// ErrLeaseLost: a delivery's failure was reported by a claim that no
// longer holds it.
var ErrLeaseLost = errors.New("governance: the delivery is no longer held by this claim")

// ErrOutboxUnsupported: a Runner made WithOutbox over a store that does
// not implement OutboxStore.
var ErrOutboxUnsupported = errors.New("governance: the store does not implement governance.OutboxStore")

// Delivery is one event (a run's end, an incident) to deliver to one
// sink, as the outbox keeps it.
type Delivery struct {
	TenantID string `json:"tenant_id"`
	// ID is the delivery's idempotency key: the same on every attempt.
	ID string `json:"delivery_id"`
	// Sink names the sink it is for.
	Sink string `json:"sink"`
	// Event is the kind of event ("incident.created", "run.ended").
	Event      string `json:"event"`
	RunID      string `json:"run_id"`
	IncidentID string `json:"incident_id,omitempty"`
	// Payload is what is delivered, as stored (JSON).
	Payload   []byte    `json:"payload"`
	CreatedAt time.Time `json:"created_at"`
	// Attempts counts the claims made so far, this one included.
	Attempts int `json:"attempts"`
	// NextAttemptAt is when the delivery is due again (while claimed:
	// when its lease ends).
	NextAttemptAt time.Time `json:"next_attempt_at"`
	// Owner holds the delivery's latest claim ("" after a failure).
	Owner       string     `json:"owner,omitempty"`
	LastError   string     `json:"last_error,omitempty"`
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	DeadAt      *time.Time `json:"dead_at,omitempty"`
}

// DeliveryState is where a delivery is in its life.
type DeliveryState string

// Delivery states, for DeliveryFilter.
const (
	DeliveryPending   DeliveryState = "pending" // neither delivered nor dead
	DeliveryDelivered DeliveryState = "delivered"
	DeliveryDead      DeliveryState = "dead"
)

// State returns the delivery's state.
func (d *Delivery) State() DeliveryState {
	switch {
	case d.DeliveredAt != nil:
		return DeliveryDelivered
	case d.DeadAt != nil:
		return DeliveryDead
	}
	return DeliveryPending
}

// DeliveryClaim is what OutboxStore.ClaimDeliveries leases.
type DeliveryClaim struct {
	Owner string
	Sinks []string
	Now   time.Time
	Lease time.Duration
	Limit int
}

// DeliveryFailure is a failed attempt, for OutboxStore.FailDelivery.
type DeliveryFailure struct {
	TenantID, ID string
	// Owner and Attempt identify the claim that failed.
	Owner   string
	Attempt int
	Error   string
	// RetryAt is when the delivery is due again, unless Dead.
	RetryAt time.Time
	Dead    bool
	// At is when it failed (the dead time, when Dead).
	At time.Time
}

// DeliveryFilter selects deliveries of one tenant.
type DeliveryFilter struct {
	TenantID string
	RunID    string        // empty: any
	Sink     string        // empty: any
	State    DeliveryState // empty: any
	Limit    int           // 0: no limit
}

// Validate checks a claim a store is asked to make.
func (c *DeliveryClaim) Validate() error {
	switch {
	case c.Owner == "":
		return fmt.Errorf("%w: claiming deliveries: no owner", ErrMalformedWrite)
	case len(c.Sinks) == 0:
		return fmt.Errorf("%w: claiming deliveries: no sinks", ErrMalformedWrite)
	case c.Lease <= 0 || c.Limit <= 0 || c.Now.IsZero():
		return fmt.Errorf("%w: claiming deliveries: lease %v, limit %d and time %v must be set", ErrMalformedWrite, c.Lease, c.Limit, c.Now)
	}
	return nil
}

// Validate checks a failure a store is asked to record.
func (f *DeliveryFailure) Validate() error {
	switch {
	case f.TenantID == "" || f.ID == "" || f.Owner == "" || f.Attempt <= 0:
		return fmt.Errorf("%w: failing delivery %s of tenant %s: tenant, id, owner and attempt are required", ErrMalformedWrite, f.ID, f.TenantID)
	case f.At.IsZero() || (!f.Dead && f.RetryAt.IsZero()):
		return fmt.Errorf("%w: failing delivery %s of tenant %s: no failure time or retry time", ErrMalformedWrite, f.ID, f.TenantID)
	}
	return nil
}

// validateDeliveries checks the deliveries of a Close.
func (c *Close) validateDeliveries() error {
	seen := make(map[string]bool, len(c.Deliveries))
	for i := range c.Deliveries {
		d := &c.Deliveries[i]
		switch {
		case d.TenantID != c.TenantID || d.RunID != c.RunID:
			return fmt.Errorf("delivery %s belongs to run %s of tenant %s", d.ID, d.RunID, d.TenantID)
		case d.ID == "" || d.Sink == "" || d.Event == "":
			return fmt.Errorf("delivery %q needs an id, a sink and an event", d.ID)
		case len(d.Payload) == 0 || d.CreatedAt.IsZero():
			return fmt.Errorf("delivery %s has no payload or no creation time", d.ID)
		case seen[d.ID]:
			return fmt.Errorf("delivery %s appears twice", d.ID)
		}
		seen[d.ID] = true
	}
	return nil
}

// WithOutbox makes every run's end write, in the same transaction as the
// end (Store.CloseRun), the deliveries o returns, for a dispatcher to
// deliver afterwards (package sink). The store must implement
// OutboxStore: NewRunner fails with ErrOutboxUnsupported otherwise.
// Nothing is delivered on a step's path: a step waits for no sink.
// Default: no outbox.
func WithOutbox(o Outbox) Option {
	return func(cfg *config) error {
		if o == nil {
			return errors.New("WithOutbox: nil outbox")
		}
		cfg.outbox = o
		return nil
	}
}

// closedRecord is rec as the store holds it once c is stored.
func closedRecord(rec RunRecord, c *Close) RunRecord {
	rec.Labels = cloneLabels(rec.Labels)
	if c.Step != nil {
		rec.StepCount = c.Step.Record.StepIndex + 1
	}
	if c.MarkRunning && rec.StartedAt == nil {
		at := c.EndedAt
		if c.Step != nil {
			at = c.Step.Record.At
		}
		rec.StartedAt = &at
	}
	rec.TotalTokens, rec.TotalCostCents = c.End.Record.TotalTokens, c.End.Record.TotalCostCents
	rec.Status, rec.TerminationReason = c.Status, c.Reason
	rec.StoppedAtStep, rec.ViolationPolicyID, rec.IncidentID = c.StoppedAtStep, c.ViolationPolicyID, c.IncidentID
	rec.Message = c.Message
	endedAt := c.EndedAt
	rec.EndedAt = &endedAt
	rec.HeadHash, rec.ChainLength = c.End.Record.Hash, c.End.Record.Seq+1
	return rec
}

// addDeliveries fills c.Deliveries from the runner's outbox, if it has
// one. Its error is reported after the end is recorded.
func (run *Run) addDeliveries(c *Close) error {
	o := run.r.cfg.outbox
	if o == nil {
		return nil
	}
	return addDeliveries(o, run.rec, c)
}

// addDeliveries fills c.Deliveries from o for the end of rec.
func addDeliveries(o Outbox, rec RunRecord, c *Close) error {
	ds, err := func() (ds []Delivery, err error) {
		defer func() {
			if p := recover(); p != nil {
				err = fmt.Errorf("outbox panicked: %v", p)
			}
		}()
		return o.Deliveries(closedRecord(rec, c), c.Incident)
	}()
	if err != nil {
		return fmt.Errorf("%w: deliveries of the end of run %s: %w", ErrRecordFailed, rec.RunID, err)
	}
	c.Deliveries = ds
	if err := c.validateDeliveries(); err != nil {
		c.Deliveries = nil
		return fmt.Errorf("%w: deliveries of the end of run %s: %w", ErrRecordFailed, rec.RunID, err)
	}
	return nil
}

// storedDeliveries tells o that ds are committed.
func storedDeliveries(o Outbox, ds []Delivery) {
	defer func() { _ = recover() }()
	o.Stored(ds)
}

// deliveriesStored tells the outbox that c's deliveries are committed.
func (run *Run) deliveriesStored(c *Close) {
	if o := run.r.cfg.outbox; o != nil && len(c.Deliveries) > 0 {
		func() {
			defer func() { _ = recover() }()
			o.Stored(c.Deliveries)
		}()
	}
}
