package governance

import (
	"errors"
	"fmt"

	"github.com/stopline/stopline/prevention"
)

var (
	// ErrRunStopped is matched by the error of any step reported to a run
	// that has ended (stopped by a policy, finished, aborted or failed).
	ErrRunStopped = errors.New("governance: run stopped")
	// ErrPolicyViolation is matched by the *Violation a blocked step returns.
	ErrPolicyViolation = errors.New("governance: policy violation")
	// ErrRecordFailed is matched when the store could not record something
	// the runner had to: a run's start (or its snapshot), a step, the
	// run's end, a checkpoint, a published policy version. A step that
	// could not be recorded was not allowed (unless WithFailOpen); a run
	// whose start could not be recorded did not start.
	ErrRecordFailed = errors.New("governance: could not record")
	// ErrInvalidStep is matched when a reported step is malformed.
	ErrInvalidStep = errors.New("governance: invalid step")
)

// Violation is the error a step returns when a policy blocked it: the run
// stopped at that step. Match it with errors.As; it also matches
// ErrPolicyViolation and ErrRunStopped.
type Violation struct {
	RunID      string
	TenantID   string
	SnapshotID string
	StepIndex  int
	// Decision is the blocking decision: policy id, source, reason,
	// threshold, limit, observed value and message.
	Decision   prevention.Decision
	IncidentID string
	// RecordHash is the hash of the inflection record in the run's chain.
	RecordHash string
}

// PolicyID is the id of the policy (or hook) that blocked.
func (v *Violation) PolicyID() string { return v.Decision.PolicyID }

// Reason is the run's termination reason.
func (v *Violation) Reason() prevention.RunTerminationReason { return v.Decision.Reason }

func (v *Violation) Error() string {
	return fmt.Sprintf("governance: run %s stopped at step %d: %s", v.RunID, v.StepIndex, v.Decision)
}

// Is matches ErrPolicyViolation and ErrRunStopped.
func (v *Violation) Is(target error) bool {
	return target == ErrPolicyViolation || target == ErrRunStopped
}

// StoppedError is returned for a step reported after the run ended. It
// matches ErrRunStopped and unwraps to the error that stopped the run (a
// *Violation when a policy did), so errors.As finds the violation.
type StoppedError struct {
	RunID  string
	Status RunStatus
	Reason prevention.RunTerminationReason
	Cause  error // what stopped the run, if the runner knows it
}

func (e *StoppedError) Error() string {
	return fmt.Sprintf("governance: run %s has ended (%s, %s): no further steps accepted", e.RunID, e.Status, e.Reason)
}

// Is matches ErrRunStopped.
func (e *StoppedError) Is(target error) bool { return target == ErrRunStopped }

// Unwrap returns the cause.
func (e *StoppedError) Unwrap() error { return e.Cause }
