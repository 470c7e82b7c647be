package governance

import (
	"context"
	"strings"
	"unicode/utf8"

	"github.com/stopline/stopline/prevention"
)

// Stream governs one step while it grows — a streamed model response,
// checked each time text arrives, before that text is delivered —
// through successive checks of the step as it stands. Its Check and
// Withhold are Run.Check and Run.Withhold (for a Stream of a
// Reservation, Reservation.Check and Reservation.Withhold), with the same
// decisions, records and errors; what a Stream adds is speed. It keeps,
// from one check to the next, what the run's content policies found in
// the step's text, so that a check whose text (input, output) extends
// the previous check's scans only the bytes added, and checks that its
// text is valid UTF-8 only there: checking a response of n bytes after
// each of its events costs O(n) in all instead of O(n²). A check whose
// text does not extend the previous one is evaluated in full, and so is
// every policy that is not a content policy (budgets and limits, which
// cost the same whatever the text; expressions, plug-in kinds and Go
// hooks, unless they implement prevention.StreamHook). Nothing is ever
// skipped: any doubt, an error of the incremental evaluation included,
// means the full evaluation.
//
// Use a Stream for the checks of one step, from its first to the last
// before the step is reported (with Run.Step or Reservation.Step, not
// through the Stream); then drop it: it keeps a reference to the text it
// last checked. A Stream is safe for concurrent use; its checks are
// serialized with the run's other steps, as Run.Check is. Checks of
// unrelated steps through one Stream are correct, only not faster.
type Stream struct {
	run *Run
	res *Reservation // nil: the run's Stream

	// Guarded by run.mu.
	es    *prevention.Stream
	valid [2]string // the input and output last found valid UTF-8
}

// Stream returns a Stream for the successive checks of one step of the
// run that grows while it happens: its Check and Withhold are Check and
// Withhold.
func (run *Run) Stream() *Stream { return &Stream{run: run} }

// Stream returns a Stream for the successive checks of the reserved step
// while it happens (a streamed response under its call's reservation):
// its Check and Withhold are the reservation's Check and Withhold, with
// their errors (ErrReservationDone once the reservation is settled or
// released).
func (res *Reservation) Stream() *Stream { return &Stream{run: res.run, res: res} }

// Check evaluates attempted, the step as it stands, as Run.Check (or
// Reservation.Check) does, from where the Stream's previous check left
// off.
func (s *Stream) Check(ctx context.Context, attempted StepInput) (prevention.Evaluation, error) {
	if s.res != nil {
		return s.res.check(ctx, attempted, s)
	}
	return s.run.check(ctx, attempted, nil, s)
}

// Withhold governs the step as it stands, as Run.Withhold (or
// Reservation.Withhold) does, evaluating attempted from where the
// Stream's previous check left off.
func (s *Stream) Withhold(ctx context.Context, attempted, delivered StepInput) (prevention.Evaluation, error) {
	if s.res != nil {
		return s.res.withhold(ctx, attempted, delivered, s)
	}
	return s.run.withhold(ctx, attempted, delivered, nil, nil, s)
}

// engine returns the engine's state for s (nil for no Stream). The
// caller holds run.mu.
func (s *Stream) engine(run *Run) *prevention.Stream {
	if s == nil {
		return nil
	}
	if s.es == nil {
		s.es = run.engine.NewStream()
	}
	return s.es
}

// validate is validateStep, which for a Stream checks the UTF-8 of only
// what the input and output add to the text last found valid: a text
// that is valid UTF-8 followed by valid UTF-8 is valid. The caller holds
// run.mu.
func (s *Stream) validate(in *StepInput) error {
	if s == nil {
		return validateStep(in)
	}
	texts := [2]*string{&in.Input, &in.Output}
	var known [2]bool
	for i, t := range texts {
		known[i] = strings.HasPrefix(*t, s.valid[i]) && utf8.ValidString((*t)[len(s.valid[i]):])
	}
	if err := validateWith(in, known); err != nil {
		return err
	}
	s.valid = [2]string{in.Input, in.Output}
	return nil
}

// validatePrefixOf is validateStep for delivered, the part of attempted
// (validated) that was delivered: a text that attempted's starts with,
// cut at a rune's start, is valid UTF-8 without scanning it.
func validatePrefixOf(delivered, attempted *StepInput) error {
	known := [2]bool{
		validPrefix(delivered.Input, attempted.Input),
		validPrefix(delivered.Output, attempted.Output),
	}
	return validateWith(delivered, known)
}

// validPrefix reports whether p is a prefix of the valid UTF-8 text t
// that ends at a rune's end. When p and t share their bytes, as the
// texts of a stream do, it costs O(1).
func validPrefix(p, t string) bool {
	return strings.HasPrefix(t, p) && (len(p) == len(t) || utf8.RuneStart(t[len(p)]))
}

// validateWith is validateStep, the input (known[0]) or output
// (known[1]) not scanned again when known to be valid UTF-8.
func validateWith(in *StepInput, known [2]bool) error {
	input, output := in.Input, in.Output
	if known[0] {
		in.Input = ""
	}
	if known[1] {
		in.Output = ""
	}
	err := validateStep(in)
	if known[0] {
		in.Input = input
	}
	if known[1] {
		in.Output = output
	}
	return err
}
