package prevention

import (
	"context"
	"sort"
	"time"
)

// Hook evaluates one step of a governed run and returns its Decision.
//
// A Block is a decision, not an error: an error means the check itself
// could not be made, and the runner then fails closed (the step is not
// allowed and the run ends with system_failure). A panic is treated the
// same way.
//
// The runner calls the hooks of one run one step at a time, in order;
// hooks of different runs may be called concurrently, so a Hook shared
// between runs must be safe for concurrent use. The step must not be
// retained or modified after Evaluate returns. ctx carries the step's
// deadline; a hook that blocks must return when ctx is done.
type Hook interface {
	Evaluate(ctx context.Context, step *Step) (Decision, error)
}

// HookFunc adapts a function to Hook.
type HookFunc func(ctx context.Context, step *Step) (Decision, error)

// Evaluate calls f.
func (f HookFunc) Evaluate(ctx context.Context, step *Step) (Decision, error) { return f(ctx, step) }

// AllowAll is a Hook that allows every step. For tests.
var AllowAll Hook = HookFunc(func(context.Context, *Step) (Decision, error) { return Allowed(), nil })

// BlockAll returns a Hook that blocks every step with the given reason.
// For tests.
func BlockAll(reason RunTerminationReason) Hook {
	return HookFunc(func(context.Context, *Step) (Decision, error) {
		return Decision{Action: Block, Reason: reason, Message: "blocked by BlockAll"}, nil
	})
}

// Step is what a hook sees of the step being evaluated: the step itself
// and the run's cumulative state, which includes this step.
type Step struct {
	RunID      string
	TenantID   string
	SnapshotID string

	// Index is the step's position in the run, from 0.
	Index int
	Type  StepType
	// At is the step's time; RunStartedAt the run's start (same clock).
	At           time.Time
	RunStartedAt time.Time

	Model  string
	Tool   string
	Input  string
	Output string

	Tokens    int64
	CostCents float64

	// Cumulative values over the run, this step included.
	TotalTokens    int64
	TotalCostCents float64

	// Metadata is free-form data the agent attached to the step.
	Metadata map[string]string

	// times holds the unix-nanosecond times of every earlier step of the
	// run, in order; StepsInWindow counts over it and At.
	times []int64
	// memo holds what hooks share within this step (Memo).
	memo []memoEntry
}

type memoEntry struct{ key, val any }

// Memo returns the value kept under key for this step, calling build to
// make it on the step's first call with that key. The hooks of a plug-in
// kind use it to share work across their policies within one step — the
// expression kind builds one CEL activation for all its policies — instead
// of each redoing it. The value lives as long as the step's evaluation.
// key should be a value of an unexported type of the calling package, as
// context keys are. Like the rest of the step, Memo is not safe for
// concurrent use (the runner evaluates a step's hooks one at a time).
func (s *Step) Memo(key any, build func() any) any {
	for _, e := range s.memo {
		if e.key == key {
			return e.val
		}
	}
	v := build()
	// A full slice expression: a copy of the step (a hook given its own)
	// appends to its own array, never to the one it shares.
	s.memo = append(s.memo[:len(s.memo):len(s.memo)], memoEntry{key, v})
	return v
}

// StepCount is the number of steps in the run, this one included.
func (s *Step) StepCount() int { return s.Index + 1 }

// Elapsed is the time from the run's start to this step.
func (s *Step) Elapsed() time.Duration { return s.At.Sub(s.RunStartedAt) }

// StepsInWindow counts the steps (this one included) whose time lies in
// the trailing window (At-d, At]. Earlier steps' times are in
// non-decreasing order (the runner guarantees it), so this is a binary
// search.
func (s *Step) StepsInWindow(d time.Duration) int {
	lo := s.At.UnixNano() - int64(d)
	// The first earlier step strictly after lo.
	i := sort.Search(len(s.times), func(i int) bool { return s.times[i] > lo })
	return len(s.times) - i + 1
}

// SetStepTimes gives the step the times (unix nanoseconds) of the run's
// earlier steps, oldest first and non-decreasing, for StepsInWindow. The runner calls it; so
// may tests of custom hooks. The slice is read, not copied: it must not
// change while the step is evaluated.
func (s *Step) SetStepTimes(earlierUnixNano []int64) { s.times = earlierUnixNano }
