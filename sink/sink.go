package sink

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
)

// Sink receives the events of runs: incidents and run ends. Package sink
// has a webhook (NewWebhook); package otelgov an OpenTelemetry log sink.
//
// Deliver is called by a Dispatcher, never on a step's path, with a
// context bounded by the dispatcher's delivery timeout; it must honour
// it. It may be called concurrently, for different events. It returns
// nil once the receiver has taken the event; an error to have it retried
// later (with backoff), or an error wrapping ErrPermanent to give up on
// it at once. An event may be delivered more than once (after a crash, or
// a lost acknowledgement): its ID is the same every time, for the
// receiver to drop what it already has.
type Sink interface {
	// Name identifies the sink in the outbox: deliveries are made for a
	// name, and a dispatcher delivers those of the sinks it has. It must
	// not change while deliveries for it are pending.
	Name() string
	Deliver(ctx context.Context, e Event) error
}

// ErrPermanent marks a delivery error that retrying cannot fix: the
// delivery is dead at once (wrap it: fmt.Errorf("...: %w", ErrPermanent)).
var ErrPermanent = errors.New("sink: permanent failure")

// EventType is the kind of an event.
type EventType string

// Event types.
const (
	// EventIncidentCreated: a run was stopped at a step and its incident
	// created. Its run's EventRunEnded follows.
	EventIncidentCreated EventType = "incident.created"
	// EventRunEnded: a run ended, whatever its status.
	EventRunEnded EventType = "run.ended"
)

// Event is one delivery of an event to a sink.
type Event struct {
	// ID is the idempotency key: the same on every attempt of this
	// event to this sink, and different for every other.
	ID   string
	Type EventType
	// Attempt counts the attempts, this one included (1 for the first).
	Attempt         int
	TenantID, RunID string
	IncidentID      string // for EventIncidentCreated
	// CreatedAt is when the delivery was written, on the system clock
	// (the event's own time is the Payload's Timestamp).
	CreatedAt time.Time
	// Body is the event as JSON, the same bytes on every attempt: a
	// Payload.
	Body []byte
	// Bundle is the run's evidence bundle (a sealed JSON envelope), for
	// EventIncidentCreated when the dispatcher was made WithBundles; nil
	// otherwise. It is built again for each attempt.
	Bundle []byte
}

// BundleFunc builds the evidence bundle of a run (export.Exporter, sealed
// as JSON), for the sinks of a dispatcher made WithBundles.
type BundleFunc func(ctx context.Context, tenantID, runID string) ([]byte, error)

// Payload is an event's Body, in the shape Standard Webhooks recommends
// (type, timestamp, data).
type Payload struct {
	Type EventType `json:"type"`
	// Timestamp is when the event happened (the run's end).
	Timestamp time.Time `json:"timestamp"`
	Data      Data      `json:"data"`
}

// Data is what an event is about: the run as stored once ended (its
// labels included), and the incident for EventIncidentCreated. Step text
// is never included.
type Data struct {
	Run      governance.RunRecord `json:"run"`
	Incident *incident.Incident   `json:"incident,omitempty"`
}

// Decode reads the event's Body.
func (e *Event) Decode() (Payload, error) {
	var p Payload
	if err := json.Unmarshal(e.Body, &p); err != nil {
		return p, fmt.Errorf("sink: event %s: %w", e.ID, err)
	}
	return p, nil
}

// deliveryID is the idempotency key of an event to a sink: derived from
// what it is, so it is the same however often it is computed.
func deliveryID(tenant, run string, t EventType, sinkName string) string {
	h := sha256.New()
	for _, s := range []string{"stopline/delivery/v1", tenant, run, string(t), sinkName} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return "msg_" + hex.EncodeToString(h.Sum(nil)[:16])
}

// deliveries are the outbox rows of a run's end, for the sinks named.
func deliveries(names []string, run governance.RunRecord, inc *incident.Incident) ([]governance.Delivery, error) {
	// The event's time is the run's end on the runner's clock; the
	// delivery is due now, on the system clock that claims are made with
	// (a runner's clock may be a test's or a replay's).
	now := time.Now().UTC()
	at := now
	if run.EndedAt != nil {
		at = *run.EndedAt
	}
	types := []EventType{EventRunEnded}
	if inc != nil {
		types = []EventType{EventIncidentCreated, EventRunEnded}
	}
	var out []governance.Delivery
	for _, t := range types {
		p := Payload{Type: t, Timestamp: at, Data: Data{Run: run}}
		if t == EventIncidentCreated {
			p.Data.Incident = inc
		}
		body, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("sink: encoding %s of run %s: %w", t, run.RunID, err)
		}
		for _, n := range names {
			d := governance.Delivery{TenantID: run.TenantID, ID: deliveryID(run.TenantID, run.RunID, t, n), Sink: n,
				Event: string(t), RunID: run.RunID, Payload: body, CreatedAt: now}
			if t == EventIncidentCreated {
				d.IncidentID = inc.ID
			}
			out = append(out, d)
		}
	}
	return out, nil
}
