package governance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// Hold errors.
var (
	// ErrHoldAnswered: the hold was already answered (approved, denied,
	// expired or cancelled); an answer is given once.
	ErrHoldAnswered = errors.New("governance: hold already answered")
	// ErrHoldExists: a hold with this id is already stored.
	ErrHoldExists = errors.New("governance: hold already exists")
	// ErrNoHoldStore: the store keeps no approval holds (it does not
	// implement HoldStore), so no step can wait for a person.
	ErrNoHoldStore = errors.New("governance: the store keeps no approval holds")
)

// HoldStatus is where a hold is in its life: pending until answered,
// then approved, denied, expired or cancelled, never again changed.
type HoldStatus string

// Hold statuses. The answered ones are the trace.Answer… values.
const (
	HoldPending   HoldStatus = "pending"
	HoldApproved  HoldStatus = trace.AnswerApproved
	HoldDenied    HoldStatus = trace.AnswerDenied
	HoldExpired   HoldStatus = trace.AnswerExpired
	HoldCancelled HoldStatus = trace.AnswerCancelled
)

// Valid reports whether s is one of the five statuses.
func (s HoldStatus) Valid() bool {
	switch s {
	case HoldPending, HoldApproved, HoldDenied, HoldExpired, HoldCancelled:
		return true
	}
	return false
}

// Hold is a step held for a person's approval. The run waits at its step
// (Run.Step does not return) until the hold is answered or its Deadline
// passes. Holds are stored in the store's HoldStore and listed with
// PendingHolds; the answer ends up in the step's record (trace.Approval).
type Hold struct {
	ID        string              `json:"hold_id"`
	TenantID  string              `json:"tenant_id"`
	RunID     string              `json:"run_id"`
	StepIndex int                 `json:"step_index"`
	StepType  prevention.StepType `json:"step_type"`
	Tool      string              `json:"tool,omitempty"`
	CostCents float64             `json:"cost_cents,omitempty"`
	// PolicyID, Source and Message say which policy or hook held the
	// step and why.
	PolicyID    string            `json:"policy_id"`
	Source      prevention.Source `json:"source"`
	Message     string            `json:"message,omitempty"`
	RequestedAt time.Time         `json:"requested_at"`
	Deadline    time.Time         `json:"deadline"`
	Status      HoldStatus        `json:"status"`
	// AnsweredBy, AnswerReason and AnsweredAt are the answer, once given.
	AnsweredBy   string     `json:"answered_by,omitempty"`
	AnswerReason string     `json:"answer_reason,omitempty"`
	AnsweredAt   *time.Time `json:"answered_at,omitempty"`
	// Step is the held step as the runner will record it once answered
	// (its record without the answer, and its stored text), so that a
	// process that resumes the run can record it. Opaque to stores.
	Step []byte `json:"-"`
}

// HoldAnswer is the answer AnswerHold records.
type HoldAnswer struct {
	Status HoldStatus // approved, denied, expired or cancelled
	By     string
	Reason string
	At     time.Time
}

// HoldFilter selects holds of one tenant.
type HoldFilter struct {
	TenantID string
	RunID    string     // empty: any
	Status   HoldStatus // empty: any
	Limit    int        // 0: no limit
}

// HoldStore is the optional interface of a Store that keeps approval
// holds, durably and shared by every process that uses the store: a hold
// answered through one process releases the step waiting in another.
// store/memstore, store/sqlite and store/postgres implement it. Methods
// are scoped by tenant like Store's, safe for concurrent use, and durable
// when they return nil.
type HoldStore interface {
	// PutHold stores a new pending hold; an id already stored is
	// ErrHoldExists.
	PutHold(ctx context.Context, h Hold) error
	// Hold returns one hold (with its Step), or ErrNotFound.
	Hold(ctx context.Context, tenantID, holdID string) (Hold, error)
	// Holds lists a tenant's holds, oldest request first, without their
	// Step.
	Holds(ctx context.Context, f HoldFilter) ([]Hold, error)
	// AnswerHold answers a pending hold and returns it as stored. It is
	// atomic: of two answers to one hold, one is stored and the other is
	// ErrHoldAnswered.
	AnswerHold(ctx context.Context, tenantID, holdID string, a HoldAnswer) (Hold, error)
}

// Changes is the optional interface of a HoldStore or KillStore that
// tells when holds or kills may have changed, in any process that shares
// the store (PostgreSQL: LISTEN/NOTIFY; in one process: at once). The
// runner waits on it as well as polling, so that an answer or a kill
// reaches it without waiting for the next poll.
type Changes interface {
	// SubscribeChanges returns a channel that receives (without
	// blocking the sender; a pending signal is enough) after every change,
	// and a function that ends the subscription.
	SubscribeChanges() (<-chan struct{}, func())
}

// PendingHolds lists the tenant's holds waiting for an answer, oldest
// first.
func PendingHolds(ctx context.Context, store Store, tenantID string) ([]Hold, error) {
	hs, ok := store.(HoldStore)
	if !ok {
		return nil, ErrNoHoldStore
	}
	if tenantID == "" {
		return nil, errors.New("governance: pending holds: a tenant id is required")
	}
	return hs.Holds(ctx, HoldFilter{TenantID: tenantID, Status: HoldPending})
}

// Approve answers a pending hold: the step it holds passes and the run
// goes on. by (who approves) is required; reason is recorded with it.
// An answered hold is ErrHoldAnswered; a hold whose deadline has passed
// is ErrHoldAnswered too, and is stored expired.
func Approve(ctx context.Context, store Store, tenantID, holdID, by, reason string) (Hold, error) {
	return answer(ctx, store, tenantID, holdID, HoldApproved, by, reason)
}

// Deny answers a pending hold: the step it holds is blocked and the run
// stops (policy_block). by and reason are required.
func Deny(ctx context.Context, store Store, tenantID, holdID, by, reason string) (Hold, error) {
	return answer(ctx, store, tenantID, holdID, HoldDenied, by, reason)
}

func answer(ctx context.Context, store Store, tenantID, holdID string, status HoldStatus, by, reason string) (Hold, error) {
	hs, ok := store.(HoldStore)
	if !ok {
		return Hold{}, ErrNoHoldStore
	}
	by, reason = strings.TrimSpace(by), strings.TrimSpace(reason)
	switch {
	case tenantID == "" || holdID == "":
		return Hold{}, errors.New("governance: answer hold: a tenant id and a hold id are required")
	case by == "":
		return Hold{}, fmt.Errorf("governance: answer hold %s: who answers (by) is required", holdID)
	case status == HoldDenied && reason == "":
		return Hold{}, fmt.Errorf("governance: deny hold %s: a reason is required", holdID)
	}
	now := time.Now().UTC()
	h, err := hs.Hold(ctx, tenantID, holdID)
	if err != nil {
		return Hold{}, err
	}
	if h.Status == HoldPending && !now.Before(h.Deadline) {
		// Too late: the hold has expired, whether or not the waiting
		// process has said so yet.
		status, by, reason = HoldExpired, "", "no answer before the deadline"
		if _, err := hs.AnswerHold(ctx, tenantID, holdID, HoldAnswer{Status: status, Reason: reason, At: h.Deadline}); err != nil && !errors.Is(err, ErrHoldAnswered) {
			return Hold{}, err
		}
		return Hold{}, fmt.Errorf("governance: hold %s: its deadline %s has passed: %w", holdID, h.Deadline.Format(time.RFC3339), ErrHoldAnswered)
	}
	return hs.AnswerHold(ctx, tenantID, holdID, HoldAnswer{Status: status, By: prevention.RecordableText(by), Reason: prevention.RecordableText(reason), At: now})
}
