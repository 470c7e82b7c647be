package llmhttp

import "errors"

// Errors of this package. The errors a call returns wrap them (with %w),
// and wrap the governance error when there is one, so that
// errors.As(err, &violation) finds the *governance.Violation that stopped
// the run and errors.Is(err, governance.ErrRunStopped) matches.
var (
	// ErrNotSent is matched when a model request was refused before it was
	// sent: the run had ended, or a policy blocked the call beforehand
	// (a budget already spent, a forbidden input). No network call was made.
	ErrNotSent = errors.New("llmhttp: request not sent")
	// ErrTooLarge is matched when a response body is larger than the
	// inspection cap (WithMaxBodyBytes) and the Governor fails closed on it.
	ErrTooLarge = errors.New("llmhttp: response too large to inspect")
	// ErrMalformed is matched when a response body or a streamed event
	// cannot be understood. The response does not reach the agent.
	ErrMalformed = errors.New("llmhttp: malformed response")
	// ErrTruncated is matched when a stream ended, or failed, before its
	// final event.
	ErrTruncated = errors.New("llmhttp: stream ended before its final event")
	// ErrClosed is returned by reads of a streamed body after Close.
	ErrClosed = errors.New("llmhttp: read of a closed stream")
)
