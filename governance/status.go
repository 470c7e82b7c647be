package governance

import (
	"fmt"

	"github.com/stopline/stopline/prevention"
)

// RunStatus is a run's state.
type RunStatus string

// Run statuses, as in the design.
const (
	StatusQueued       RunStatus = "queued"
	StatusRunning      RunStatus = "running"
	StatusSucceeded    RunStatus = "succeeded"
	StatusFailed       RunStatus = "failed"
	StatusFailedPolicy RunStatus = "failed_policy"
	StatusCancelled    RunStatus = "cancelled"
)

// Valid reports whether s is a defined status.
func (s RunStatus) Valid() bool {
	switch s {
	case StatusQueued, StatusRunning, StatusSucceeded, StatusFailed, StatusFailedPolicy, StatusCancelled:
		return true
	}
	return false
}

// Ended reports whether s is a terminal status.
func (s RunStatus) Ended() bool {
	switch s {
	case StatusSucceeded, StatusFailed, StatusFailedPolicy, StatusCancelled:
		return true
	}
	return false
}

func (s RunStatus) String() string { return string(s) }

// MarshalText implements encoding.TextMarshaler, rejecting unknown values.
func (s RunStatus) MarshalText() ([]byte, error) {
	if !s.Valid() {
		return nil, fmt.Errorf("%w: run status %q", prevention.ErrUnknownValue, string(s))
	}
	return []byte(s), nil
}

// UnmarshalText implements encoding.TextUnmarshaler, rejecting unknown values.
func (s *RunStatus) UnmarshalText(b []byte) error {
	v := RunStatus(b)
	if !v.Valid() {
		return fmt.Errorf("%w: run status %q", prevention.ErrUnknownValue, b)
	}
	*s = v
	return nil
}

// ParseRunStatus parses a run status.
func ParseRunStatus(s string) (RunStatus, error) {
	var v RunStatus
	err := v.UnmarshalText([]byte(s))
	return v, err
}

// StatusFor is the run status that goes with a termination reason:
// completed → succeeded; policy_block, budget_exceeded, rate_limited →
// failed_policy; timeout → failed_policy when a policy decided it, failed
// when a context deadline did; user_abort → cancelled; system_failure →
// failed.
func StatusFor(reason prevention.RunTerminationReason, byPolicy bool) RunStatus {
	switch reason {
	case prevention.ReasonCompleted:
		return StatusSucceeded
	case prevention.ReasonUserAbort:
		return StatusCancelled
	case prevention.ReasonSystemFailure:
		return StatusFailed
	}
	if byPolicy {
		return StatusFailedPolicy
	}
	return StatusFailed
}
