package governance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// MetadataWithheld is the metadata key Withhold sets ("true") on the step
// it records: the decision in that record was made on the step as it was
// attempted, and the record holds only what of it was delivered.
const MetadataWithheld = "stopline.withheld"

// Check evaluates the run's policies and hooks on in as if it were the
// run's next step — with the index, time and cumulative totals Step would
// give it — and returns the evaluation. Nothing is recorded and the run
// does not change: a Block from Check stops nothing. Check answers "would
// this step pass?" before an action is taken; report the step with Step
// once it has happened, or stop the run at a refused step with Withhold.
//
// After the run has ended, Check returns a *StoppedError. A malformed step
// is an error matching ErrInvalidStep. A hook that fails or panics makes
// Check return its *prevention.HookError (Step and Withhold would fail
// closed on it). Check takes the run's lock, like Step, so it is
// serialized with the run's other steps.
func (run *Run) Check(ctx context.Context, in StepInput) (prevention.Evaluation, error) {
	return run.check(ctx, in, nil, nil)
}

// check is Check, with the holds of a Reservation (exclude) left out of
// the tenant's counters it reads, through st if it is not nil (a
// Stream's check).
func (run *Run) check(ctx context.Context, in StepInput, exclude []prevention.Hold, st *Stream) (prevention.Evaluation, error) {
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.ended {
		return prevention.Evaluation{}, run.stoppedError()
	}
	if err := st.validate(&in); err != nil {
		return prevention.Evaluation{}, err
	}
	if err := run.checkTotals(&in); err != nil {
		return prevention.Evaluation{}, err
	}
	if err := ctx.Err(); err != nil {
		return prevention.Evaluation{}, err
	}
	_, ev, err := run.evaluateAt(ctx, &in, run.peekCharges(exclude), st.engine(run)) // [tenant limits] read, never count
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return prevention.Evaluation{}, cerr
		}
		return prevention.Evaluation{}, err
	}
	return ev, nil
}

// Withhold governs a step that is about to happen, or is happening, and
// can still be held back: a request not yet sent, the rest of a streamed
// response. attempted is the step as it would be if let through;
// delivered is what of it has actually happened (nothing of a request not
// yet sent; the text of a stream delivered so far and the tokens already
// spent).
//
// Withhold evaluates attempted as the run's next step, as Check does. If
// the policies allow it (or only warn), nothing is recorded and Withhold
// returns the evaluation and nil: the caller lets the step through and
// reports it with Step once it has happened. If a policy blocks it, the
// run stops at this step as Step would stop it — the inflection point,
// the run's final status and the incident in one transaction — but the
// record holds delivered, with metadata MetadataWithheld ("true"), under
// the decision made on attempted; Withhold then returns the *Violation. A
// hook error fails closed, as in Step.
//
// delivered must be part of attempted: the same type, model, tool and
// input, and no more tokens or cost. Its output (what was delivered) and
// metadata are its own. Otherwise Withhold returns an error matching
// ErrInvalidStep and records nothing. Other errors are those of Step.
func (run *Run) Withhold(ctx context.Context, attempted, delivered StepInput) (prevention.Evaluation, error) {
	return run.withhold(ctx, attempted, delivered, nil, nil, nil)
}

// withhold is Withhold, with the holds of a Reservation (exclude) left
// out of the tenant's counters it reads, through st if it is not nil (a
// Stream's check); on a Block, blocked is called, with run.mu held,
// before the run stops.
func (run *Run) withhold(ctx context.Context, attempted, delivered StepInput, exclude []prevention.Hold, blocked func(), st *Stream) (prevention.Evaluation, error) {
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.ended {
		return prevention.Evaluation{}, run.stoppedError()
	}
	if err := st.validate(&attempted); err != nil {
		return prevention.Evaluation{}, err
	}
	if err := validatePrefixOf(&delivered, &attempted); err != nil {
		return prevention.Evaluation{}, err
	}
	if err := validatePart(&attempted, &delivered); err != nil {
		return prevention.Evaluation{}, err
	}
	if err := run.checkTotals(&attempted); err != nil {
		return prevention.Evaluation{}, err
	}
	if err := ctx.Err(); err != nil {
		return prevention.Evaluation{}, err
	}
	now, ev, evalErr := run.evaluateAt(ctx, &attempted, run.peekCharges(exclude), st.engine(run)) // [tenant limits] read, never count
	if evalErr != nil && ctx.Err() != nil {
		return prevention.Evaluation{}, ctx.Err()
	}
	if evalErr != nil {
		var he *prevention.HookError
		d := prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonSystemFailure, Message: evalErr.Error()}
		if errors.As(evalErr, &he) {
			d.PolicyID, d.Source = he.PolicyID, he.Source
		}
		ev = prevention.Evaluation{Decision: d, Findings: []prevention.Decision{d}}
	}
	if ev.Decision.Action != prevention.Block {
		return ev, nil
	}
	if blocked != nil {
		blocked()
	}

	md := make(map[string]string, len(delivered.Metadata)+1)
	for k, v := range delivered.Metadata {
		md[k] = v
	}
	md[MetadataWithheld] = "true"
	delivered.Metadata = md
	content := run.content(&delivered)
	rec := trace.Record{
		TenantID: run.rec.TenantID, RunID: run.rec.RunID, Seq: run.seq, Kind: trace.KindStep, At: now,
		SnapshotID: run.rec.SnapshotID, StepIndex: run.nextIndex, StepType: delivered.Type,
		Model: delivered.Model, Tool: delivered.Tool,
		Tokens: delivered.Tokens, CostCents: delivered.CostCents,
		TotalTokens:    run.rec.TotalTokens + delivered.Tokens,
		TotalCostCents: run.rec.TotalCostCents + delivered.CostCents,
		ContentHash:    trace.ContentHashOf(content),
		Status:         trace.StatusOf(ev),
		Decision:       &ev.Decision,
		Findings:       ev.Findings,
	}
	content = run.complete(ctx, &rec, &attempted, &delivered, content)
	_, err := run.stopAt(ctx, &rec, content, evalErr)
	return ev, err
}

// evaluateNext evaluates in as the run's next step at the clock's time,
// counting through ch (nil: no tenant-wide limit; see ledger.go). The
// caller holds run.mu and has validated in.
func (run *Run) evaluateNext(ctx context.Context, in *StepInput, ch *prevention.Charges) (time.Time, prevention.Evaluation, error) {
	return run.evaluateAt(ctx, in, ch, nil)
}

// evaluateAt is evaluateNext, with the engine's state for a stream if es
// is not nil (prevention.Engine.EvaluateStream).
func (run *Run) evaluateAt(ctx context.Context, in *StepInput, ch *prevention.Charges, es *prevention.Stream) (time.Time, prevention.Evaluation, error) {
	cfg := &run.r.cfg
	now := run.stepTime()
	st := &run.step
	run.buildStep(st, in, now)
	var (
		ev  prevention.Evaluation
		err error
	)
	if run.engine.MayBlock() {
		// Only hooks and CEL can wait; built-in kinds only compute, and a
		// deadline's timer is not free on the per-step path.
		hctx, cancel := context.WithTimeout(ctx, cfg.stepTimeout)
		ev, err = run.engine.EvaluateStream(hctx, st, ch, es)
		cancel()
	} else {
		ev, err = run.engine.EvaluateStream(ctx, st, ch, es)
	}
	*st = prevention.Step{} // hold no reference to the caller's text
	return now, ev, err
}

// buildStep makes st the step policies see of in, the run's next step,
// at now.
func (run *Run) buildStep(st *prevention.Step, in *StepInput, now time.Time) {
	started := run.startedAt
	if run.queued {
		// A queued run starts with its first step: that step is timed
		// from itself, not from when the run was enqueued.
		started = now
	}
	*st = prevention.Step{
		RunID: run.rec.RunID, TenantID: run.rec.TenantID, SnapshotID: run.rec.SnapshotID,
		Index: run.nextIndex, Type: in.Type, At: now, RunStartedAt: started,
		Model: in.Model, Tool: in.Tool, Input: in.Input, Output: in.Output,
		Tokens: in.Tokens, CostCents: in.CostCents,
		TotalTokens: run.rec.TotalTokens + in.Tokens, TotalCostCents: run.rec.TotalCostCents + in.CostCents,
		Metadata: in.Metadata,
	}
	st.SetStepTimes(run.times)
}

// stepTime is the clock's time for the run's next step: never before the
// run's last step, whatever the clock does, so that windows and the trace
// stay in order.
func (run *Run) stepTime() time.Time {
	now := run.r.cfg.clock.Now().UTC()
	if n := len(run.times); n > 0 && now.UnixNano() < run.times[n-1] {
		now = time.Unix(0, run.times[n-1]).UTC()
	}
	return now
}

// validatePart checks that delivered is a part of attempted.
func validatePart(attempted, delivered *StepInput) error {
	var diff []string
	if attempted.Type != delivered.Type {
		diff = append(diff, "type")
	}
	if attempted.Model != delivered.Model {
		diff = append(diff, "model")
	}
	if attempted.Tool != delivered.Tool {
		diff = append(diff, "tool")
	}
	if attempted.Input != delivered.Input {
		diff = append(diff, "input")
	}
	if delivered.Tokens > attempted.Tokens {
		diff = append(diff, "tokens")
	}
	if delivered.CostCents > attempted.CostCents {
		diff = append(diff, "cost_cents")
	}
	if len(diff) > 0 {
		return fmt.Errorf("%w: withheld step: delivered is not part of attempted (%s differ)", ErrInvalidStep, strings.Join(diff, ", "))
	}
	return nil
}
