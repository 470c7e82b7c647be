package governance

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// ReplayOutcome says how a recorded decision compares with the same step
// evaluated again.
type ReplayOutcome string

// Replay outcomes.
const (
	// ReplayReproduced: evaluated again, every policy and hook gives the
	// recorded decision and findings.
	ReplayReproduced ReplayOutcome = "reproduced"
	// ReplayPartial: the recorded decision and findings are reproduced,
	// but not every policy or hook was evaluated again exactly (Gaps:
	// hooks and kinds taken from the records, limits across runs, text
	// stored cut).
	ReplayPartial ReplayOutcome = "partial"
	// ReplayMismatch: evaluated again, the step gets another decision or
	// other findings than the ones recorded.
	ReplayMismatch ReplayOutcome = "mismatch"
	// ReplayNotReplayable: the step cannot be evaluated again as it was:
	// it was withheld (decided on what was attempted, of which the record
	// holds what was delivered), or it differs only where a policy read
	// text the record holds cut.
	ReplayNotReplayable ReplayOutcome = "not_replayable"
	// ReplayContentNotKept: the step's content was not kept (the run
	// keeps content as hashes only, or redacted and a redaction masked
	// part of this step's), and policies or hooks that read text are
	// evaluated again on what was kept: whatever they decide now, the
	// recorded decision is neither reproduced nor contradicted by them.
	// A difference that lies with a policy that does not read text is
	// still a mismatch.
	ReplayContentNotKept ReplayOutcome = "content_not_kept"
)

// ReplayReport is the outcome of Runner.Replay: each step of a recorded
// run with its recorded and its recomputed evaluation.
type ReplayReport struct {
	TenantID    string    `json:"tenant_id"`
	RunID       string    `json:"run_id"`
	SnapshotID  string    `json:"policy_snapshot_id"`
	ContentHash string    `json:"content_hash"`
	RunStatus   RunStatus `json:"run_status"`
	// Retention is how the run kept its steps' content (run_start).
	Retention trace.Retention `json:"retention"`
	// Records is the length of the run's chain, which was verified
	// (VerifyRun) before anything was evaluated.
	Records int `json:"records"`
	// NotReplayable lists the policies and hooks of the run whose
	// outcomes are not evaluated again exactly on any step, and why.
	NotReplayable []ReplayGap  `json:"not_replayable"`
	Steps         []StepReplay `json:"steps"`
	Totals        ReplayTotals `json:"totals"`
	// ShadowSnapshotID is the run's shadow snapshot, if it has one: its
	// recorded decisions are evaluated again too (StepReplay.Shadow),
	// counted in ShadowTotals.
	ShadowSnapshotID string        `json:"shadow_snapshot_id,omitempty"`
	ShadowTotals     *ReplayTotals `json:"shadow_totals,omitempty"`
}

// ReplayTotals counts the steps of a ReplayReport by outcome.
type ReplayTotals struct {
	Steps         int `json:"steps"`
	Reproduced    int `json:"reproduced"`
	Partial       int `json:"partial"`
	Mismatch      int `json:"mismatch"`
	NotReplayable int `json:"not_replayable"`
	// ContentNotKept counts the steps ReplayContentNotKept.
	ContentNotKept int `json:"content_not_kept"`
}

func (t *ReplayTotals) add(o ReplayOutcome) {
	t.Steps++
	switch o {
	case ReplayReproduced:
		t.Reproduced++
	case ReplayPartial:
		t.Partial++
	case ReplayMismatch:
		t.Mismatch++
	case ReplayContentNotKept:
		t.ContentNotKept++
	default:
		t.NotReplayable++
	}
}

// StepReplay is one step of a replayed run.
type StepReplay struct {
	StepIndex int           `json:"step_index"`
	Seq       int           `json:"seq"`
	Outcome   ReplayOutcome `json:"outcome"`
	// Stored is the evaluation the record holds; Recomputed the step
	// evaluated again (nil when it was not: a withheld step).
	Stored     prevention.Evaluation  `json:"stored"`
	Recomputed *prevention.Evaluation `json:"recomputed"`
	// Difference says what differs first, for a mismatch or a step not
	// replayable because of text stored cut.
	Difference string `json:"difference,omitempty"`
	// Gaps are the policies and hooks of this step whose outcome was not
	// evaluated again exactly (or, for a withheld step, the step).
	Gaps []ReplayGap `json:"gaps,omitempty"`
	// Shadow is the step's recorded shadow decision evaluated again, on
	// a run with a shadow snapshot.
	Shadow *ShadowReplay `json:"shadow,omitempty"`
}

// ShadowReplay is a step's shadow decision evaluated again: its outcome,
// the stored and recomputed evaluations and, for a mismatch, what differs
// first.
type ShadowReplay struct {
	Outcome    ReplayOutcome          `json:"outcome"`
	Stored     prevention.Evaluation  `json:"stored"`
	Recomputed *prevention.Evaluation `json:"recomputed"`
	Difference string                 `json:"difference,omitempty"`
	Gaps       []ReplayGap            `json:"gaps,omitempty"`
}

// Reproduced reports whether no step's decision, nor any shadow
// decision, differs from the one recorded: every step is reproduced,
// partly reproduced, not replayable or its content not kept, none a
// mismatch.
func (r *ReplayReport) Reproduced() bool {
	return r.Totals.Mismatch == 0 && (r.ShadowTotals == nil || r.ShadowTotals.Mismatch == 0)
}

// Mismatches returns the steps whose recomputed decision, or shadow
// decision, differs from the recorded one.
func (r *ReplayReport) Mismatches() []StepReplay {
	var out []StepReplay
	for _, s := range r.Steps {
		if s.Outcome == ReplayMismatch || (s.Shadow != nil && s.Shadow.Outcome == ReplayMismatch) {
			out = append(out, s)
		}
	}
	return out
}

// Replay evaluates a recorded run again, step by step, and compares each
// decision with the one recorded. It first verifies the run (VerifyRun:
// its chain, snapshot, row, incident and contents; its error is returned
// as is, wrapped), so that nothing is replayed from altered records. Then
// it compiles the run's snapshot with the runner's kinds and Go hooks
// (WithKinds, WithHooks) and evaluates every step as the runner did: the
// recorded time, the recorded amounts and run totals, the times of the
// earlier steps, the stored input, output and metadata. Nothing is
// written; the run may be one of another runner or program.
//
// A step is reproduced when the recomputed decision and findings are
// exactly the recorded ones (ReplayReproduced, or ReplayPartial when part
// of it could not be evaluated again exactly), a mismatch when they are
// not. What cannot be evaluated again exactly is reported, never skipped:
// Go hooks this runner does not have and policies of kinds it lacks (their
// decisions are taken from the records: ReplayPartial), limits across the
// tenant's runs (evaluated with the totals their recorded decisions state,
// else this run's own usage: a decision this run's own steps contradict
// is a mismatch), steps stored cut (ReplayNotReplayable when the
// difference lies with a policy or hook that reads text), withheld steps
// (ReplayNotReplayable). The report's NotReplayable lists them for the
// whole run, each step's Gaps for that step.
//
// Hooks are called as the runner calls them, bounded by the step timeout;
// a hook that does not decide the same way twice does not reproduce.
func (r *Runner) Replay(ctx context.Context, tenantID, runID string) (*ReplayReport, error) {
	n, rr, err := readVerified(ctx, r.store, tenantID, runID, nil)
	if err != nil {
		return nil, fmt.Errorf("governance: replay of run %s: %w", runID, err)
	}
	hookIDs, hookEnf := hooksOf(rr.records)
	ev, err := newReevaluator(r.cfg.kinds, rr.snap, r.cfg.hooks, hookIDs, hookEnf, r.cfg.stepTimeout)
	if err != nil {
		return nil, fmt.Errorf("governance: replay of run %s: compiling snapshot %s: %w", runID, rr.snap.ID(), err)
	}
	rep := &ReplayReport{
		TenantID: tenantID, RunID: runID, SnapshotID: rr.snap.ID(), ContentHash: rr.snap.ContentHash(),
		RunStatus: rr.run.Status, Records: n, NotReplayable: slices.Clone(ev.gaps), Steps: []StepReplay{},
	}
	if rep.NotReplayable == nil {
		rep.NotReplayable = []ReplayGap{}
	}
	if len(rr.records) > 0 {
		rep.Retention = rr.records[0].Retention.Effective()
	}
	var (
		shadowEv  *reevaluator
		shadowLed = &replayLedger{}
	)
	if rr.shadow != nil {
		if shadowEv, err = newReevaluator(r.cfg.kinds, rr.shadow, nil, nil, nil, r.cfg.stepTimeout); err != nil {
			return nil, fmt.Errorf("governance: replay of run %s: compiling shadow snapshot %s: %w", runID, rr.shadow.ID(), err)
		}
		rep.ShadowSnapshotID, rep.ShadowTotals = rr.shadow.ID(), &ReplayTotals{}
	}
	counters := tenantCounters(ev.engine, tenantID)
	led := &replayLedger{}
	for _, st := range recordedSteps(&rr.run, rr.records, rr.contents) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		sr := replayStep(ctx, ev, &st, led, counters)
		if shadowEv != nil {
			sr.Shadow = replayShadow(ctx, shadowEv, st, shadowLed, tenantCounters(shadowEv.engine, tenantID))
			rep.ShadowTotals.add(sr.Shadow.Outcome)
		}
		rep.Steps = append(rep.Steps, sr)
		rep.Totals.add(sr.Outcome)
		if st.withheld && !slices.ContainsFunc(rep.NotReplayable, func(g ReplayGap) bool { return g.Why == GapWithheld }) {
			rep.NotReplayable = append(rep.NotReplayable, withheldGap(st.rec))
		}
		if st.notKept && len(ev.textReaders) > 0 && !slices.ContainsFunc(rep.NotReplayable, func(g ReplayGap) bool { return g.Why == GapContentNotKept }) {
			rep.NotReplayable = append(rep.NotReplayable, notKeptGap(rep.Retention, ev.textReaders))
		}
	}
	return rep, nil
}

// replayShadow evaluates a step's recorded shadow decision again with the
// shadow snapshot's evaluator, as replayStep does the enforcing one.
func replayShadow(ctx context.Context, ev *reevaluator, st recordedStep, led *replayLedger, counters map[string]prevention.Counter) *ShadowReplay {
	view := *st.rec
	view.Decision, view.Findings = st.rec.ShadowDecision, st.rec.ShadowFindings
	if view.Decision == nil {
		// The chain verified: every step of a shadow run has one. An
		// absent one is compared as the zero decision (a Block).
		view.Decision = &prevention.Decision{}
	}
	stored := storedEvaluation(&view)
	view.Status, view.Inflection = trace.StatusOf(stored), stored.Decision.Action == prevention.Block
	st.rec = &view
	sr := replayStep(ctx, ev, &st, led, counters)
	return &ShadowReplay{Outcome: sr.Outcome, Stored: sr.Stored, Recomputed: sr.Recomputed, Difference: sr.Difference, Gaps: sr.Gaps}
}

func notKeptGap(r trace.Retention, readers []string) ReplayGap {
	return ReplayGap{Why: GapContentNotKept, Detail: fmt.Sprintf("the run keeps step content %s: the policies and hooks that read text (%s) cannot be evaluated again on what the steps said",
		r, strings.Join(readers, ", "))}
}

// replayStep evaluates one recorded step again and says how it compares.
func replayStep(ctx context.Context, ev *reevaluator, st *recordedStep, led *replayLedger, counters map[string]prevention.Counter) StepReplay {
	rec := st.rec
	sr := StepReplay{StepIndex: rec.StepIndex, Seq: rec.Seq, Stored: storedEvaluation(rec)}
	if st.withheld {
		// The amounts decided on were the attempted ones; as a blocked
		// step it counted nothing.
		sr.Outcome, sr.Gaps = ReplayNotReplayable, []ReplayGap{withheldGap(rec)}
		return sr
	}
	got := ev.evaluate(ctx, st, led, counters)
	sr.Recomputed = &got
	sr.Gaps = ev.gapsOf(st)
	diff, ids := sameEvaluation(rec, got)
	notKept := st.notKept && len(ev.textReaders) > 0
	switch {
	case notKept && (diff == "" || slices.ContainsFunc(ids, func(id string) bool { return slices.Contains(ev.textReaders, id) }) || len(ids) == 0):
		sr.Outcome = ReplayContentNotKept
		if diff != "" {
			sr.Difference = diff + " (the text it read was not kept)"
		}
	case diff == "" && len(sr.Gaps) == 0:
		sr.Outcome = ReplayReproduced
	case diff == "":
		sr.Outcome = ReplayPartial
	case slices.ContainsFunc(ids, func(id string) bool { return ev.readsTextOn(st, id) }):
		sr.Outcome, sr.Difference = ReplayNotReplayable, diff+" (the text it read was stored cut)"
	default:
		sr.Outcome, sr.Difference = ReplayMismatch, diff
	}
	return sr
}

func withheldGap(rec *trace.Record) ReplayGap {
	return ReplayGap{Why: GapWithheld, Detail: fmt.Sprintf("step %d was decided as it was attempted; its record holds what was delivered, not the attempted text and amounts the decision was made on", rec.StepIndex)}
}

// storedEvaluation is the evaluation a step record holds.
func storedEvaluation(rec *trace.Record) prevention.Evaluation {
	var ev prevention.Evaluation
	if rec.Decision != nil {
		ev.Decision = *rec.Decision
	}
	ev.Findings = rec.Findings
	return ev
}
