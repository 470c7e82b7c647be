package governance

import (
	"context"
	"errors"
	"sync"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// Reservation is the share of a tenant's limits that spans runs
// (tenant_budget, tenant_rate_limit) held for a step that has not
// happened yet: Run.Reserve makes it with the step's worst case, and
// Step settles it to what actually happened. Until it is settled or
// released, no other run of the tenant, on any replica, can use what it
// holds. While the step happens, Check and Withhold govern it with the
// reservation's own holds left out of the tenant's counters, so that it
// is not counted twice. A Reservation is safe for concurrent use; its
// Step or Release (or a Withhold that blocks) takes effect once.
type Reservation struct {
	run *Run

	mu    sync.Mutex
	holds []prevention.Hold
	done  bool
}

// ErrReservationDone is matched when a Reservation is used after it was
// settled or released.
var ErrReservationDone = errors.New("governance: reservation already settled or released")

// Reserve evaluates attempted — the most a step about to happen can add:
// for an LLM call, its prompt priced at the model's input rate plus
// max_tokens at its output rate — as the run's next step, as Check does,
// and in the same evaluation reserves attempted's amounts on the tenant's
// shared counters (reserve-then-settle), so that concurrent runs of the
// tenant, on any replica, cannot spend them meanwhile.
//
// If the policies allow attempted (or only warn), Reserve records nothing
// and returns the Reservation: let the step happen, then report what
// actually happened with Reservation.Step (its amounts replace the
// reserved ones), or call Reservation.Release if it did not happen. If a
// policy blocks attempted, nothing is held and the run stops at this step
// as Withhold stops it, with nothing delivered (attempted's type, model,
// tool and input, no output, tokens or cost); Reserve returns the
// *Violation. Other errors are those of Check (after the run has ended, a
// *StoppedError; a malformed step, ErrInvalidStep) and of Withhold (a hook
// error fails closed). When the run's policies have no tenant-wide limit,
// Reserve is Check followed, on a Block, by that stop.
func (run *Run) Reserve(ctx context.Context, attempted StepInput) (*Reservation, error) {
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.ended {
		return nil, run.stoppedError()
	}
	if err := validateStep(&attempted); err != nil {
		return nil, err
	}
	if err := run.checkTotals(&attempted); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ch := run.charges()
	now, ev, evalErr := run.evaluateNext(ctx, &attempted, ch)
	if evalErr != nil && ctx.Err() != nil {
		run.releaseCharges(ctx, ch)
		return nil, ctx.Err()
	}
	if evalErr == nil && ev.Decision.Action != prevention.Block {
		var holds []prevention.Hold
		if ch != nil {
			holds = ch.Holds()
		}
		return &Reservation{run: run, holds: holds}, nil
	}
	run.releaseCharges(ctx, ch)
	if evalErr != nil {
		var he *prevention.HookError
		d := prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonSystemFailure, Message: evalErr.Error()}
		if errors.As(evalErr, &he) {
			d.PolicyID, d.Source = he.PolicyID, he.Source
		}
		ev = prevention.Evaluation{Decision: d, Findings: []prevention.Decision{d}}
	}
	// Stop at the refused step, holding nothing of it but its request.
	delivered := StepInput{Type: attempted.Type, Model: attempted.Model, Tool: attempted.Tool, Input: attempted.Input,
		Metadata: map[string]string{MetadataWithheld: "true"}}
	for k, v := range attempted.Metadata {
		if _, ok := delivered.Metadata[k]; !ok {
			delivered.Metadata[k] = v
		}
	}
	content := run.content(&delivered)
	rec := trace.Record{
		TenantID: run.rec.TenantID, RunID: run.rec.RunID, Seq: run.seq, Kind: trace.KindStep, At: now,
		SnapshotID: run.rec.SnapshotID, StepIndex: run.nextIndex, StepType: delivered.Type,
		Model: delivered.Model, Tool: delivered.Tool,
		TotalTokens: run.rec.TotalTokens, TotalCostCents: run.rec.TotalCostCents,
		ContentHash: trace.ContentHashOf(content),
		Status:      trace.StatusOf(ev),
		Decision:    &ev.Decision,
		Findings:    ev.Findings,
	}
	content = run.complete(ctx, &rec, &attempted, &delivered, content)
	_, err := run.stopAt(ctx, &rec, content, evalErr)
	return nil, err
}

// Holds returns what the reservation holds on the tenant's counters (none
// when the run's policies have no tenant-wide limit).
func (res *Reservation) Holds() []prevention.Hold {
	res.mu.Lock()
	defer res.mu.Unlock()
	return append([]prevention.Hold(nil), res.holds...)
}

// Check evaluates attempted as the run's next step, as Run.Check does,
// but with what the reservation holds left out of the tenant's counters:
// a tenant-wide limit compares with its limit the counter's usage without
// the reservation's hold, plus attempted's amount. Run.Check would count
// the step twice — once in the reservation that holds its worst case,
// once in attempted — and refuse, at the exact edge of a tenant's limit,
// a step whose reservation fits. Use it to check a step that is happening
// under its reservation, such as a streamed response as it streams.
//
// Like Run.Check, it records nothing and changes neither the run nor the
// reservation; its errors are Run.Check's. After Step or Release it
// returns ErrReservationDone. It is serialized with the reservation's
// Step and Release, which wait for it.
func (res *Reservation) Check(ctx context.Context, attempted StepInput) (prevention.Evaluation, error) {
	return res.check(ctx, attempted, nil)
}

// check is Check, through st if it is not nil (a Stream's check).
func (res *Reservation) check(ctx context.Context, attempted StepInput, st *Stream) (prevention.Evaluation, error) {
	res.mu.Lock()
	defer res.mu.Unlock()
	if res.done {
		return prevention.Evaluation{}, ErrReservationDone
	}
	return res.run.check(ctx, attempted, res.holds, st)
}

// Withhold governs the reserved step while it is happening and can still
// be held back, as Run.Withhold does, with what the reservation holds
// left out of the tenant's counters as in Check. If the policies allow
// attempted (or only warn), nothing is recorded, the reservation still
// holds, and Withhold returns the evaluation: the step goes on, to be
// reported with Step. If a policy blocks it, the reservation is done: its
// holds are given back (once; a later Step or Release does nothing), and
// the run stops at this step as Run.Withhold stops it, recording
// delivered; Withhold returns the *Violation. A hook error fails closed,
// as in Run.Withhold.
//
// Other errors are Run.Withhold's (after the run has ended, a
// *StoppedError; delivered not part of attempted, ErrInvalidStep; the
// caller's context ended before the step was decided): they leave the
// reservation as it was, for the caller to settle or release. After Step
// or Release Withhold returns ErrReservationDone. It is serialized with
// the reservation's Step and Release.
func (res *Reservation) Withhold(ctx context.Context, attempted, delivered StepInput) (prevention.Evaluation, error) {
	return res.withhold(ctx, attempted, delivered, nil)
}

// withhold is Withhold, through st if it is not nil (a Stream's check).
func (res *Reservation) withhold(ctx context.Context, attempted, delivered StepInput, st *Stream) (prevention.Evaluation, error) {
	res.mu.Lock()
	defer res.mu.Unlock()
	if res.done {
		return prevention.Evaluation{}, ErrReservationDone
	}
	return res.run.withhold(ctx, attempted, delivered, res.holds, func() {
		// [tenant limits] a blocked step counts nothing: the reservation
		// goes back before the run stops, as in Step. A hold that cannot
		// be given back stays counted, which can only refuse later
		// charges, so its error is not the step's.
		holds := res.holds
		res.holds, res.done = nil, true
		_ = res.run.releaseHolds(ctx, holds)
	}, st)
}

// Step reports the reserved step once it has happened, as Run.Step does,
// with in holding what actually happened. The reserved amounts are
// settled to in's: lowered, or raised if the tenant's limits still allow
// it (a step that went over its own worst case and over a limit is
// blocked). Whatever Step returns, the reservation is then done; if the
// caller's context ended before the step was decided, the holds are
// released and nothing is recorded, as with Run.Step.
func (res *Reservation) Step(ctx context.Context, in StepInput) (StepResult, error) {
	holds, err := res.take()
	if err != nil {
		return StepResult{}, err
	}
	return res.run.stepCarrying(ctx, in, holds)
}

// Release gives back what the reservation holds: the step did not happen.
// It is a no-op after Step or Release. A hold that cannot be given back
// stays counted until its window has passed, which can refuse later
// charges, never let one overshoot.
func (res *Reservation) Release(ctx context.Context) error {
	holds, err := res.take()
	if err != nil {
		return nil
	}
	return res.run.releaseHolds(ctx, holds)
}

func (res *Reservation) take() ([]prevention.Hold, error) {
	res.mu.Lock()
	defer res.mu.Unlock()
	if res.done {
		return nil, ErrReservationDone
	}
	res.done = true
	h := res.holds
	res.holds = nil
	return h, nil
}
