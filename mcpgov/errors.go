package mcpgov

import "errors"

var (
	// ErrNotSent is matched by the error of a client request that was
	// refused before it was sent: the server never received it. It wraps
	// the reason: governance.ErrNoRun, the *governance.Violation of a
	// blocked tool_call step (errors.As), the run's
	// *governance.StoppedError, an invalid tool name
	// (governance.ErrInvalidStep), ambiguous arguments (ErrMalformed), or
	// a step that could not be recorded (governance.ErrRecordFailed).
	ErrNotSent = errors.New("mcpgov: request not sent")

	// ErrMalformed is matched when what a request or a result holds
	// cannot be read one way only: arguments that are not exactly one JSON
	// value, not valid UTF-8, with an unpaired surrogate escape or with a
	// key written twice in one object; or a content block of a type this
	// package does not know.
	ErrMalformed = errors.New("mcpgov: malformed")
)

// CodeRefused is the JSON-RPC error code of a request a governed server
// refused: no run for the session, the run has ended, a policy blocked
// the call or its result, or the step could not be recorded. It lies in
// the range JSON-RPC leaves to implementations (-32000 to -32099) and is
// not one the MCP specification or the Go SDK uses.
const CodeRefused = -32090
