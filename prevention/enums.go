package prevention

import (
	"errors"
	"fmt"
)

// ErrUnknownValue is matched when text or JSON names a value outside one
// of the closed enums of this package.
var ErrUnknownValue = errors.New("prevention: unknown enum value")

// Action is what a decision does to the run. The zero value is Block: a
// hook that returns a zero Decision stops the run, and an unknown action
// read back from JSON is rejected. Only an explicit Allow lets a step pass
// (HoldForApproval lets it pass only once a person approved it).
type Action uint8

// Actions.
const (
	// Block stops the run at this step.
	Block Action = iota
	// Warn records the decision; the run goes on.
	Warn
	// Allow lets the step pass.
	Allow
	// HoldForApproval ("hold") holds the step until a person approves it
	// (it passes) or denies it, or its deadline passes (it is blocked).
	// Decision.HoldSeconds is how long the policy lets it wait.
	HoldForApproval
)

var actionNames = [...]string{Block: "block", Warn: "warn", Allow: "allow", HoldForApproval: "hold"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", uint8(a))
}

// MarshalText implements encoding.TextMarshaler; unknown values are an error.
func (a Action) MarshalText() ([]byte, error) {
	if int(a) >= len(actionNames) {
		return nil, fmt.Errorf("%w: action %d", ErrUnknownValue, uint8(a))
	}
	return []byte(actionNames[a]), nil
}

// UnmarshalText implements encoding.TextUnmarshaler; unknown names are an
// error, never Allow.
func (a *Action) UnmarshalText(b []byte) error {
	for i, n := range actionNames {
		if string(b) == n {
			*a = Action(i)
			return nil
		}
	}
	return fmt.Errorf("%w: action %q", ErrUnknownValue, b)
}

// RunTerminationReason says why a run ended. The zero value ("") means the
// run has not ended.
type RunTerminationReason string

// Termination reasons, as in the design.
const (
	ReasonCompleted      RunTerminationReason = "completed"
	ReasonPolicyBlock    RunTerminationReason = "policy_block"
	ReasonBudgetExceeded RunTerminationReason = "budget_exceeded"
	ReasonRateLimited    RunTerminationReason = "rate_limited"
	ReasonUserAbort      RunTerminationReason = "user_abort"
	ReasonSystemFailure  RunTerminationReason = "system_failure"
	ReasonTimeout        RunTerminationReason = "timeout"
)

// Reasons lists every termination reason.
var reasons = []RunTerminationReason{ReasonCompleted, ReasonPolicyBlock, ReasonBudgetExceeded,
	ReasonRateLimited, ReasonUserAbort, ReasonSystemFailure, ReasonTimeout}

// Valid reports whether r is one of the defined reasons.
func (r RunTerminationReason) Valid() bool {
	for _, x := range reasons {
		if r == x {
			return true
		}
	}
	return false
}

func (r RunTerminationReason) String() string { return string(r) }

// MarshalText implements encoding.TextMarshaler. The empty reason ("not
// ended") marshals as empty text; any other unknown value is an error.
func (r RunTerminationReason) MarshalText() ([]byte, error) {
	if r != "" && !r.Valid() {
		return nil, fmt.Errorf("%w: termination reason %q", ErrUnknownValue, string(r))
	}
	return []byte(r), nil
}

// UnmarshalText implements encoding.TextUnmarshaler, rejecting unknown reasons.
func (r *RunTerminationReason) UnmarshalText(b []byte) error {
	v := RunTerminationReason(b)
	if v != "" && !v.Valid() {
		return fmt.Errorf("%w: termination reason %q", ErrUnknownValue, b)
	}
	*r = v
	return nil
}

// ParseReason parses a termination reason.
func ParseReason(s string) (RunTerminationReason, error) {
	var r RunTerminationReason
	err := r.UnmarshalText([]byte(s))
	return r, err
}

// StepType is the kind of step an agent reports.
type StepType string

// Step types.
const (
	// StepLLMResponse is a model's response.
	StepLLMResponse StepType = "llm_response"
	// StepToolCall is a tool call, reported BEFORE the tool executes.
	StepToolCall StepType = "tool_call"
	// StepToolResult is a tool's result.
	StepToolResult StepType = "tool_result"
	// StepMessage is any other message in the run (user input, a note).
	StepMessage StepType = "message"
)

// Valid reports whether t is one of the four step types.
func (t StepType) Valid() bool {
	switch t {
	case StepLLMResponse, StepToolCall, StepToolResult, StepMessage:
		return true
	}
	return false
}

func (t StepType) String() string { return string(t) }

// MarshalText implements encoding.TextMarshaler, rejecting unknown types.
func (t StepType) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("%w: step type %q", ErrUnknownValue, string(t))
	}
	return []byte(t), nil
}

// UnmarshalText implements encoding.TextUnmarshaler, rejecting unknown types.
func (t *StepType) UnmarshalText(b []byte) error {
	v := StepType(b)
	if !v.Valid() {
		return fmt.Errorf("%w: step type %q (want llm_response, tool_call, tool_result or message)", ErrUnknownValue, b)
	}
	*t = v
	return nil
}
