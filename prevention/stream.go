package prevention

import "context"

// StreamHook is a Hook that can evaluate the successive checks of one
// step that grows while it happens — a streamed model response, checked
// as its text arrives — in time proportional to what each check adds,
// rather than to the whole text (the content kind's hooks are
// StreamHooks).
type StreamHook interface {
	Hook
	// NewStreamState returns the hook's state for one stream, or nil if
	// it cannot evaluate this way (the step is then evaluated in full).
	NewStreamState() StreamState
}

// StreamState is a StreamHook's state for one stream: its Evaluate must
// return, for every step, the Decision the hook's Evaluate returns for
// that step — whether or not the step's text extends the text it last
// evaluated, which only makes it faster. An error or a panic from it is
// not the step's: the engine drops the state and evaluates the step, and
// every later one of the stream, with the hook's Evaluate. A StreamState
// is used by one stream at a time, never concurrently.
type StreamState interface {
	Evaluate(ctx context.Context, step *Step) (Decision, error)
}

// Stream holds what an Engine's StreamHooks keep between the successive
// checks of one growing step (EvaluateStream): make one per stream with
// NewStream, and drop it when the stream ends. It keeps a reference to
// the text it last checked. A Stream is not safe for concurrent use.
type Stream struct {
	e      *Engine
	made   []bool
	states []StreamState
}

// NewStream returns a Stream for the successive checks of one growing
// step with e.
func (e *Engine) NewStream() *Stream {
	return &Stream{e: e, made: make([]bool, len(e.rules)), states: make([]StreamState, len(e.rules))}
}

// state returns rule i's state, made on first use (nil for a hook that
// is not a StreamHook, or whose state failed).
func (s *Stream) state(i int, r *rule) StreamState {
	if !s.made[i] {
		s.made[i] = true
		if h, ok := r.hook.(StreamHook); ok {
			s.states[i] = h.NewStreamState()
		}
	}
	return s.states[i]
}

// EvaluateStream is EvaluateCharged for one of the successive checks of
// a step that grows while it happens: the same evaluation, with the same
// result, but StreamHooks (content policies) evaluate it from what they
// kept of the stream's previous check, in time proportional to the text
// added since. A step whose text does not extend the previous check's is
// evaluated in full, and so is every hook that is not a StreamHook
// (expressions, Go hooks, limits), as by EvaluateCharged. A nil st, or
// one made by another Engine, is EvaluateCharged.
func (e *Engine) EvaluateStream(ctx context.Context, step *Step, ch *Charges, st *Stream) (Evaluation, error) {
	if st != nil && st.e != e {
		st = nil
	}
	return e.evaluate(ctx, step, ch, st)
}

// call evaluates rule i (r) on step with its state, or in full
// (callHook) if it has none. Any failure of the state, an error or a
// panic, is no decision: the hook evaluates the step in full, and every
// later step of the stream.
func (s *Stream) call(ctx context.Context, i int, r *rule, step *Step, ch *Charges) (Decision, error) {
	if ch == nil || !isCharged(r.hook) {
		if ss := s.state(i, r); ss != nil {
			if d, ok := callStream(ctx, ss, step); ok {
				return d, nil
			}
			s.states[i] = nil
		}
	}
	return callHook(ctx, r, step, ch)
}

// callStream evaluates a rule with its stream state; ok is false if the
// state failed (an error or a panic), which the caller then drops.
func callStream(ctx context.Context, ss StreamState, step *Step) (d Decision, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			d, ok = Decision{}, false
		}
	}()
	d, err := ss.Evaluate(ctx, step)
	return d, err == nil
}
