package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// kindRequiresApproval is the policy kind that holds steps (prevention).
const kindRequiresApproval = "requires_approval"

// checkHolds refuses, at Start, a snapshot that can hold steps when the
// store keeps no holds: such a step could never be answered.
func (r *Runner) checkHolds(eng *prevention.Engine) error {
	if _, ok := r.store.(HoldStore); ok {
		return nil
	}
	for _, p := range eng.Snapshot().Policies() {
		if p.Kind == kindRequiresApproval {
			return fmt.Errorf("governance: start: policy %q of snapshot %s holds steps for approval: %w", p.ID, eng.Snapshot().ID(), ErrNoHoldStore)
		}
	}
	return nil
}

// pendingStep is a held step as a Hold keeps it (Hold.Step).
type pendingStep struct {
	Record  trace.Record   `json:"record"`
	Content *trace.Content `json:"content,omitempty"`
}

// await holds the step rec (its findings set, its first enforced hold
// deciding) until it is answered, and returns the evaluation the answer
// makes and the approval to record with it. An error means the hold
// could not be kept: the step is blocked as a failed check.
func (run *Run) await(ctx context.Context, rec *trace.Record, content trace.Content) (prevention.Evaluation, *trace.Approval, error) {
	hf := heldBy(rec.Findings)
	hs, ok := run.r.store.(HoldStore)
	if !ok {
		return prevention.Evaluation{}, nil, fmt.Errorf("%s %q held step %d for approval: %w", hf.Source, hf.PolicyID, rec.StepIndex, ErrNoHoldStore)
	}
	cfg := &run.r.cfg
	wait := cfg.holdDefault
	switch {
	case hf.HoldSeconds >= cfg.holdMax.Seconds():
		wait = cfg.holdMax // also keeps a hook's huge value from overflowing
	case hf.HoldSeconds > 0:
		wait = time.Duration(hf.HoldSeconds * float64(time.Second))
	}
	wait = min(wait, cfg.holdMax)
	h := Hold{
		ID: cfg.newID("hold"), TenantID: rec.TenantID, RunID: rec.RunID, StepIndex: rec.StepIndex,
		StepType: rec.StepType, Tool: rec.Tool, CostCents: rec.CostCents,
		PolicyID: hf.PolicyID, Source: hf.Source, Message: hf.Message,
		RequestedAt: rec.At, Deadline: rec.At.Add(wait), Status: HoldPending,
	}
	step, err := json.Marshal(pendingStep{Record: *rec, Content: contentPtr(content)})
	if err != nil {
		return prevention.Evaluation{}, nil, fmt.Errorf("governance: hold of step %d: %w", rec.StepIndex, err)
	}
	h.Step = step
	wctx, cancel := run.r.writeContext(ctx)
	err = hs.PutHold(wctx, h)
	cancel()
	if err != nil {
		return prevention.Evaluation{}, nil, fmt.Errorf("%w: hold of step %d of run %s: %w", ErrRecordFailed, rec.StepIndex, rec.RunID, err)
	}
	got, kill := run.r.waitHold(ctx, hs, h, func() *KillSwitch { return run.r.killed(run.rec.TenantID, run.agent, run.rec.RunID) })
	ev, appr := decideHeld(rec.Findings, hf, got, kill)
	return ev, appr, nil
}

// heldBy returns the finding that holds the step: the first enforced hold.
func heldBy(findings []prevention.Decision) prevention.Decision {
	for _, f := range findings {
		if f.Action == prevention.HoldForApproval && f.Enforcement.Effective() == snapshot.EnforceBlock {
			return f
		}
	}
	return prevention.Decision{Action: prevention.HoldForApproval}
}

// waitHold waits until h is answered — by a person, through any process
// that shares the store —, its deadline passes, ctx is done or a kill
// switch is pulled over the run; it returns the hold as answered, and the
// kill switch if one ended the wait. An answer the waiting side gives
// (expired, cancelled) is stored first, so that a person's answer that
// arrives at the same moment either wins or is refused, never both.
func (r *Runner) waitHold(ctx context.Context, hs HoldStore, h Hold, killed func() *KillSwitch) (Hold, *KillSwitch) {
	var changes <-chan struct{}
	if c, ok := hs.(Changes); ok {
		ch, unsubscribe := c.SubscribeChanges()
		defer unsubscribe()
		changes = ch
	}
	timer := time.NewTimer(h.Deadline.Sub(r.cfg.clock.Now()))
	defer timer.Stop()
	tick := time.NewTicker(r.cfg.holdPoll)
	defer tick.Stop()
	for {
		var (
			end  *HoldAnswer
			kill *KillSwitch
		)
		select {
		case <-ctx.Done():
			end = &HoldAnswer{Status: HoldCancelled, Reason: "the caller stopped waiting: " + ctx.Err().Error()}
		case <-timer.C:
			end = &HoldAnswer{Status: HoldExpired, Reason: "no answer before the deadline"}
		case <-changes:
		case <-tick.C:
		}
		if end == nil {
			if kill = killed(); kill != nil {
				end = &HoldAnswer{Status: HoldCancelled, By: kill.By, Reason: "kill switch " + kill.ID + ": " + kill.Reason}
			}
		}
		if end == nil {
			got, err := hs.Hold(ctx, h.TenantID, h.ID)
			if err == nil && got.Status != HoldPending {
				return got, nil
			}
			continue // a read that failed is tried again, until the deadline
		}
		end.At = r.cfg.clock.Now().UTC()
		if end.Status == HoldExpired && end.At.Before(h.Deadline) {
			end.At = h.Deadline
		}
		wctx, cancel := r.writeContext(ctx)
		got, err := hs.AnswerHold(wctx, h.TenantID, h.ID, *end)
		if errors.Is(err, ErrHoldAnswered) {
			// A person answered first: that answer stands.
			if got, err = hs.Hold(wctx, h.TenantID, h.ID); err == nil {
				kill = nil
			}
		}
		cancel()
		if err != nil {
			// The store cannot say: the step is blocked all the same.
			h.Status, h.AnsweredBy, h.AnswerReason = end.Status, end.By, end.Reason
			at := end.At
			h.AnsweredAt = &at
			return h, kill
		}
		if got.Status != end.Status {
			kill = nil
		}
		return got, kill
	}
}

// decideHeld turns the answer to a hold into the step's evaluation: an
// approval lets the step pass (a warning stays a warning); a denial
// blocks it with policy_block, an expired hold with timeout, a cancelled
// one with user_abort (the kill switch's own decision if it ended the
// wait). The blocking decision is appended to the findings.
func decideHeld(findings []prevention.Decision, hf prevention.Decision, h Hold, kill *KillSwitch) (prevention.Evaluation, *trace.Approval) {
	appr := &trace.Approval{HoldID: h.ID, RequestedAt: h.RequestedAt.UTC(), Deadline: h.Deadline.UTC(), Answer: string(h.Status),
		By: prevention.RecordableText(h.AnsweredBy), Reason: prevention.RecordableText(h.AnswerReason)}
	if h.AnsweredAt != nil {
		appr.AnsweredAt = h.AnsweredAt.UTC()
	}
	var d prevention.Decision
	switch h.Status {
	case HoldApproved:
		d = prevention.Allowed()
		for _, f := range findings {
			if f.Action == prevention.Warn || f.Enforcement == snapshot.EnforceWarn {
				d = prevention.Decision{Action: prevention.Warn}
			}
		}
		return prevention.Evaluation{Decision: d, Findings: findings}, appr
	case HoldDenied:
		d = prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonPolicyBlock,
			Message: fmt.Sprintf("denied by %s: %s", h.AnsweredBy, h.AnswerReason)}
	case HoldExpired:
		d = prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonTimeout,
			Message: "no answer before the deadline " + h.Deadline.UTC().Format(time.RFC3339)}
	default:
		d = prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonUserAbort,
			Message: "hold cancelled: " + h.AnswerReason}
	}
	if kill != nil {
		d = kill.decision()
	} else {
		d.PolicyID, d.Source, d.Enforcement = hf.PolicyID, hf.Source, hf.Enforcement
		d.Threshold, d.Limit, d.Observed = hf.Threshold, hf.Limit, hf.Observed
	}
	d.Message = prevention.RecordableText(d.Message)
	out := append(findings[:len(findings):len(findings)], d)
	return prevention.Evaluation{Decision: d, Findings: out}, appr
}

// Resume takes over a run that another process left unfinished — it
// died, or restarted — and returns it ready for its next step. It
// verifies the run's chain, binds the run to its snapshot again and
// rebuilds what its policies see (step times, totals). A run in the
// scope of an active kill switch is refused (ErrKilled).
//
// If the run was waiting on a hold when its process ended, Resume waits
// for the hold as Step would have — an answer given through any process,
// the deadline, ctx, the kill switch — and records the held step with
// its answer: approved, the run is returned ready for the step after it;
// otherwise the run stops there and Resume returns it with the
// *Violation. A hold is never let pass without an answer. A step approved
// after a restart is recorded without being counted again against
// tenant-wide limits (tenant_budget, tenant_rate_limit).
//
// Call Resume only for runs no live process owns.
func (r *Runner) Resume(ctx context.Context, tenantID, runID string) (*Run, error) {
	rr, err := r.store.Run(ctx, tenantID, runID)
	if err != nil {
		return nil, err
	}
	if rr.Status.Ended() {
		return nil, fmt.Errorf("governance: resume run %s: %w", runID, ErrRunEnded)
	}
	records, err := r.store.Records(ctx, tenantID, runID)
	if err != nil {
		return nil, err
	}
	head, err := trace.Verify(records)
	if err != nil {
		return nil, fmt.Errorf("governance: resume run %s: %w", runID, err)
	}
	eng, err := r.engineFor(ctx, tenantID, rr.SnapshotID, nil)
	if err != nil {
		return nil, err
	}
	agent := agentKey(rr.Labels[AgentLabel])
	if err := r.refuseKilled(ctx, tenantID, agent, runID); err != nil {
		return nil, err
	}
	run := &Run{r: r, engine: eng, rec: rr, head: head, seq: len(records), agent: agent, queued: rr.Status == StatusQueued}
	run.startedAt = rr.CreatedAt
	if rr.StartedAt != nil {
		run.startedAt = *rr.StartedAt
	}
	run.rec.TotalTokens, run.rec.TotalCostCents, run.rec.StepCount = 0, 0, 0
	for _, rec := range records {
		if rec.Kind != trace.KindStep {
			continue
		}
		if run.queued {
			run.queued, run.startedAt = false, rec.At
		}
		run.times = append(run.times, rec.At.UnixNano())
		run.nextIndex = rec.StepIndex + 1
		run.rec.TotalTokens, run.rec.TotalCostCents = rec.TotalTokens, rec.TotalCostCents
	}
	run.rec.StepCount, run.rec.HeadHash, run.rec.ChainLength = run.nextIndex, head, run.seq
	hs, ok := r.store.(HoldStore)
	if !ok {
		return run, nil
	}
	pending, err := hs.Holds(ctx, HoldFilter{TenantID: tenantID, RunID: runID, Status: HoldPending})
	if err != nil {
		return nil, fmt.Errorf("governance: resume run %s: reading its holds: %w", runID, err)
	}
	for _, p := range pending {
		if err := run.resumeHold(ctx, hs, p.ID); err != nil {
			return run, err
		}
	}
	return run, nil
}

// resumeHold waits for the hold id of run and records its step.
func (run *Run) resumeHold(ctx context.Context, hs HoldStore, id string) error {
	run.mu.Lock()
	defer run.mu.Unlock()
	h, err := hs.Hold(ctx, run.rec.TenantID, id)
	if err != nil {
		return err
	}
	var ps pendingStep
	if err := json.Unmarshal(h.Step, &ps); err != nil || ps.Record.Seq != run.seq || ps.Record.StepIndex != run.nextIndex ||
		ps.Record.Kind != trace.KindStep || ps.Record.RunID != run.rec.RunID || ps.Record.TenantID != run.rec.TenantID {
		// Not the run's next step: it can never be recorded. Cancel it.
		_, aerr := hs.AnswerHold(ctx, run.rec.TenantID, id, HoldAnswer{Status: HoldCancelled,
			Reason: "resumed: the held step is not the run's next step", At: run.r.cfg.clock.Now().UTC()})
		if aerr != nil && !errors.Is(aerr, ErrHoldAnswered) {
			return aerr
		}
		return nil
	}
	rec := ps.Record
	content := trace.Content{}
	if ps.Content != nil {
		content = *ps.Content
	}
	got := h
	var kill *KillSwitch
	if h.Status == HoldPending {
		got, kill = run.r.waitHold(ctx, hs, h, func() *KillSwitch { return run.r.killed(run.rec.TenantID, run.agent, run.rec.RunID) })
	}
	ev, appr := decideHeld(rec.Findings, heldBy(rec.Findings), got, kill)
	rec.Approval = appr
	rec.Status = trace.StatusOf(ev)
	rec.Decision = &ev.Decision
	rec.Findings = ev.Findings
	if ev.Decision.Action == prevention.Block {
		_, err := run.stopAt(ctx, &rec, content, nil)
		return err
	}
	body := trace.Seal(&rec, run.head, nil)
	wctx, cancel := run.r.writeContext(ctx)
	err = run.r.store.AppendStep(wctx, StepWrite{Record: rec, Body: body, Content: contentPtr(content), MarkRunning: run.queued})
	cancel()
	if err != nil {
		recErr := fmt.Errorf("%w: step %d of run %s: %w", ErrRecordFailed, rec.StepIndex, run.rec.RunID, err)
		run.failClosed(ctx, recErr)
		return recErr
	}
	run.advance(&rec, rec.At, rec.TotalTokens, rec.TotalCostCents)
	return nil
}

// cancelHolds answers the run's pending holds as cancelled, for
// RecoverRun: a run closed without its process must not leave a hold
// someone could still approve.
func cancelHolds(ctx context.Context, store Store, tenantID, runID, why string, at time.Time) error {
	hs, ok := store.(HoldStore)
	if !ok {
		return nil
	}
	pending, err := hs.Holds(ctx, HoldFilter{TenantID: tenantID, RunID: runID, Status: HoldPending})
	if err != nil {
		return err
	}
	for _, h := range pending {
		if _, err := hs.AnswerHold(ctx, tenantID, h.ID, HoldAnswer{Status: HoldCancelled, Reason: why, At: at}); err != nil && !errors.Is(err, ErrHoldAnswered) {
			return err
		}
	}
	return nil
}
