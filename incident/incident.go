package incident

import (
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/prevention"
)

// ErrInvalidTransition is matched when a lifecycle change is not allowed
// (resolving twice, reopening, acknowledging a resolved incident).
var ErrInvalidTransition = errors.New("incident: invalid status transition")

// Status is an incident's place in its lifecycle:
// open → acknowledged → resolved (open → resolved is allowed too).
type Status string

// Statuses.
const (
	StatusOpen         Status = "open"
	StatusAcknowledged Status = "acknowledged"
	StatusResolved     Status = "resolved"
)

// Valid reports whether s is a defined status.
func (s Status) Valid() bool {
	return s == StatusOpen || s == StatusAcknowledged || s == StatusResolved
}

// Severity ranks an incident.
type Severity string

// Severities, lowest first.
const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// Rank orders severities: low 1, medium 2, high 3, critical 4, unknown 0.
func (s Severity) Rank() int {
	switch s {
	case SeverityLow:
		return 1
	case SeverityMedium:
		return 2
	case SeverityHigh:
		return 3
	case SeverityCritical:
		return 4
	}
	return 0
}

// SeverityFor is the documented severity of an incident, by the reason
// its run was stopped and the type of the blocked step. It uses the same
// base rules as the executive debrief's risk level (export.RiskFor), so
// that an incident and its debrief agree:
//
//	policy_block on a tool_call   critical  (the agent tried to take an action it is not allowed to take)
//	policy_block on other steps   high      (forbidden content in a response, a tool result or a message)
//	system_failure                high      (a check could not be made; the run was stopped blind)
//	budget_exceeded, timeout      medium    (spend or running time reached its limit)
//	rate_limited                  low
//	anything else                 medium
//
// (The debrief also raises its level when the same policy stopped other
// runs recently; an incident's severity is fixed when it is created.)
func SeverityFor(r prevention.RunTerminationReason, blocked prevention.StepType) Severity {
	switch r {
	case prevention.ReasonPolicyBlock:
		if blocked == prevention.StepToolCall {
			return SeverityCritical
		}
		return SeverityHigh
	case prevention.ReasonSystemFailure:
		return SeverityHigh
	case prevention.ReasonRateLimited:
		return SeverityLow
	}
	return SeverityMedium
}

// Incident is created, in the same transaction that stops a run, for every
// Block. It links the run, its trace, the snapshot and the policy that
// blocked, and the step (the inflection point) with its record hash.
type Incident struct {
	ID         string                          `json:"incident_id"`
	TenantID   string                          `json:"tenant_id"`
	RunID      string                          `json:"run_id"`
	TraceID    string                          `json:"trace_id"`
	SnapshotID string                          `json:"policy_snapshot_id"`
	PolicyID   string                          `json:"policy_id"`
	Source     prevention.Source               `json:"source"`
	StepIndex  int                             `json:"step_index"`
	RecordHash string                          `json:"record_hash"`
	Reason     prevention.RunTerminationReason `json:"reason"`
	Threshold  string                          `json:"threshold,omitempty"`
	Limit      float64                         `json:"limit,omitempty"`
	Observed   float64                         `json:"observed,omitempty"`
	Severity   Severity                        `json:"severity"`
	Status     Status                          `json:"status"`
	Title      string                          `json:"title"`
	Message    string                          `json:"message,omitempty"`
	CreatedAt  time.Time                       `json:"created_at"`

	AcknowledgedAt *time.Time `json:"acknowledged_at,omitempty"`
	AcknowledgedBy string     `json:"acknowledged_by,omitempty"`
	ResolvedAt     *time.Time `json:"resolved_at,omitempty"`
	ResolvedBy     string     `json:"resolved_by,omitempty"`
	Resolution     string     `json:"resolution,omitempty"`
}

// TitleFor is a one-line title for an incident stopped by d.
func TitleFor(d prevention.Decision, stepIndex int) string {
	return fmt.Sprintf("Run stopped at step %d by %s (%s)", stepIndex, d.PolicyID, d.Reason)
}

// Transition returns inc moved to status to by who at at, with a note (the
// resolution, when resolving). Allowed: open → acknowledged, open →
// resolved, acknowledged → resolved. Anything else is ErrInvalidTransition.
func (inc Incident) Transition(to Status, who, note string, at time.Time) (Incident, error) {
	ok := (inc.Status == StatusOpen && (to == StatusAcknowledged || to == StatusResolved)) ||
		(inc.Status == StatusAcknowledged && to == StatusResolved)
	if !ok {
		return inc, fmt.Errorf("%w: %s → %s (incident %s)", ErrInvalidTransition, inc.Status, to, inc.ID)
	}
	at = at.UTC()
	switch to {
	case StatusAcknowledged:
		inc.AcknowledgedAt, inc.AcknowledgedBy = &at, who
	case StatusResolved:
		inc.ResolvedAt, inc.ResolvedBy, inc.Resolution = &at, who, note
	}
	inc.Status = to
	return inc, nil
}
