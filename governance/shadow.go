package governance

import (
	"context"
	"errors"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// ShadowOutcome compares a run's shadow snapshot (StartOptions.Shadow)
// with the snapshot that enforced: where the shadow would have stopped
// the run, by which policy and with which reason, and how that differs
// from what the enforcing snapshot did. Every field is derived from the
// run's chain (ShadowOf).
type ShadowOutcome struct {
	// SnapshotID and ContentHash are the shadow snapshot's, as the
	// run_start record binds them.
	SnapshotID  string `json:"policy_snapshot_id"`
	ContentHash string `json:"content_hash"`
	// WouldStopAtStep is the first step the shadow blocked (nil when it
	// blocked none), with the policy (or a failed check's id), reason
	// and message of its decision there.
	WouldStopAtStep *int                            `json:"would_stop_at_step"`
	PolicyID        string                          `json:"policy_id,omitempty"`
	Reason          prevention.RunTerminationReason `json:"reason,omitempty"`
	Message         string                          `json:"message,omitempty"`
	// Steps counts the steps the shadow evaluated; Blocks those it
	// blocked; Differs those where its action (allow, warn, block) is
	// not the enforcing one.
	Steps   int `json:"steps"`
	Blocks  int `json:"blocks"`
	Differs int `json:"differs"`
	// EnforcingStoppedAtStep, EnforcingPolicyID and EnforcingReason are
	// the step the enforcing snapshot stopped the run at (its inflection
	// point; nil when it did not), and its decision there.
	EnforcingStoppedAtStep *int                            `json:"enforcing_stopped_at_step"`
	EnforcingPolicyID      string                          `json:"enforcing_policy_id,omitempty"`
	EnforcingReason        prevention.RunTerminationReason `json:"enforcing_reason,omitempty"`
	// Change is what enforcing the shadow would have changed, as far as
	// the steps recorded show it: WhatIfUnchanged (stops at the same
	// step, or neither stops), WhatIfWouldStop, WhatIfStopsEarlier, or
	// WhatIfWouldContinue (the shadow lets the step the run was stopped
	// at pass; what would have come after was never recorded).
	Change WhatIfChange `json:"change"`
}

// ShadowOf returns the shadow comparison of a run from its records, in
// chain order (verified: see VerifyRun), and false when the run has no
// shadow snapshot.
func ShadowOf(records []trace.Record) (ShadowOutcome, bool) {
	var s ShadowScan
	for i := range records {
		s.Add(&records[i])
	}
	return s.Outcome()
}

// ShadowScan is ShadowOf one record at a time, for a chain read in
// pages: Add each record in chain order, then Outcome. Its zero value is
// ready; it is not safe for concurrent use.
type ShadowScan struct {
	out    ShadowOutcome
	shadow bool
}

// Add reads the next record of the chain.
func (s *ShadowScan) Add(r *trace.Record) {
	switch r.Kind {
	case trace.KindRunStart:
		s.shadow = r.ShadowSnapshotID != ""
		s.out.SnapshotID, s.out.ContentHash = r.ShadowSnapshotID, r.ShadowSnapshotHash
	case trace.KindStep:
		if r.Inflection {
			at := r.StepIndex
			s.out.EnforcingStoppedAtStep = &at
			if r.Decision != nil {
				s.out.EnforcingPolicyID, s.out.EnforcingReason = r.Decision.PolicyID, r.Decision.Reason
			}
		}
		d := r.ShadowDecision
		if d == nil {
			return
		}
		s.out.Steps++
		var enforcing prevention.Action
		if r.Decision != nil {
			enforcing = r.Decision.Action
		}
		if d.Action != enforcing {
			s.out.Differs++
		}
		if d.Action != prevention.Block {
			return
		}
		s.out.Blocks++
		if s.out.WouldStopAtStep == nil {
			at := r.StepIndex
			s.out.WouldStopAtStep = &at
			s.out.PolicyID, s.out.Reason, s.out.Message = d.PolicyID, d.Reason, d.Message
		}
	}
}

// Outcome returns the comparison of the records added, and false when
// their run has no shadow snapshot.
func (s *ShadowScan) Outcome() (ShadowOutcome, bool) {
	if !s.shadow {
		return ShadowOutcome{}, false
	}
	out := s.out
	sh, en := out.WouldStopAtStep, out.EnforcingStoppedAtStep
	switch {
	case sh == nil && en == nil:
		out.Change = WhatIfUnchanged
	case sh == nil:
		out.Change = WhatIfWouldContinue
	case en == nil:
		out.Change = WhatIfWouldStop
	case *sh < *en:
		out.Change = WhatIfStopsEarlier
	case *sh == *en:
		out.Change = WhatIfUnchanged
	default:
		out.Change = WhatIfStopsLater
	}
	return out, true
}

// Shadow returns the comparison of the run's shadow snapshot with its
// enforcing one over the steps recorded so far, and false when the run
// has no shadow snapshot.
func (run *Run) Shadow() (ShadowOutcome, bool) {
	run.mu.Lock()
	defer run.mu.Unlock()
	return run.shadowScan.Outcome()
}

// evaluateShadow evaluates the run's shadow snapshot on in, the step as
// the enforcing snapshot decided on it, at now, as evaluateAt does —
// but it reads the tenant's counters without counting, and a failed
// check is its decision, not an error: nothing it says stops the run.
// The caller holds run.mu, before the step is counted (advance).
func (run *Run) evaluateShadow(ctx context.Context, in *StepInput, now time.Time) prevention.Evaluation {
	var ch *prevention.Charges
	if run.shadow.UsesLedger() {
		if l := run.r.ledger(); l != nil {
			ch = prevention.PeekCharges(l)
		}
	}
	var st prevention.Step
	run.buildStep(&st, in, now)
	var (
		ev  prevention.Evaluation
		err error
	)
	if run.shadow.MayBlock() {
		hctx, cancel := context.WithTimeout(ctx, run.r.cfg.stepTimeout)
		ev, err = run.shadow.EvaluateCharged(hctx, &st, ch)
		cancel()
	} else {
		ev, err = run.shadow.EvaluateCharged(ctx, &st, ch)
	}
	if err != nil {
		d := prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonSystemFailure, Message: prevention.RecordableText(err.Error())}
		var he *prevention.HookError
		if errors.As(err, &he) {
			d.PolicyID, d.Source = he.PolicyID, he.Source
		}
		return prevention.Evaluation{Decision: d, Findings: []prevention.Decision{d}}
	}
	return ev
}

// complete finishes a step record before it is sealed: the shadow
// snapshot's evaluation of decided (the step as it was decided on), and
// what the run keeps of the step's content c (made from kept, the step
// as it is recorded), which it returns. The caller holds run.mu.
func (run *Run) complete(ctx context.Context, rec *trace.Record, decided, kept *StepInput, c trace.Content) trace.Content {
	if run.shadow != nil {
		ev := run.evaluateShadow(ctx, decided, rec.At)
		rec.ShadowDecision, rec.ShadowFindings = &ev.Decision, ev.Findings
	}
	return run.keep(rec, kept, c)
}

// Retention returns how the run keeps its steps' content.
func (run *Run) Retention() trace.Retention { return run.retention }
