package governance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// WhatIfChange says how a candidate policy set would have changed the
// outcome of a recorded run.
type WhatIfChange string

// What-if changes.
const (
	// WhatIfUnchanged: the candidate stops the run at the step it was
	// stopped at (maybe by another policy), or, like the recorded
	// policies, at no step.
	WhatIfUnchanged WhatIfChange = "unchanged"
	// WhatIfWouldStop: the run was not stopped at a step (it completed,
	// was cancelled, failed between steps or is still going); the
	// candidate stops it.
	WhatIfWouldStop WhatIfChange = "would_stop"
	// WhatIfWouldContinue: the run was stopped at a step; the candidate
	// lets that step and every earlier one pass. What the run would have
	// done next was never recorded.
	WhatIfWouldContinue WhatIfChange = "would_continue"
	// WhatIfStopsEarlier: the candidate stops the run at an earlier step
	// than the one it was stopped at.
	WhatIfStopsEarlier WhatIfChange = "stops_earlier"
	// WhatIfStopsLater: the candidate stops the run at a later step than
	// the one it was stopped at. A run's records end at its stop, so the
	// records of a run can never show this: a candidate that lets the
	// stopping step pass is WhatIfWouldContinue. It is counted for
	// completeness, always 0 from recorded runs.
	WhatIfStopsLater WhatIfChange = "stops_later"
	// WhatIfContentNotKept: the run did not keep its steps' content (as
	// hashes only, or redacted where a redaction masked part of a step's)
	// and the candidate has policies or hooks that read text: up to the
	// step it stops at, or to the end, its outcome depends on text that
	// was not kept. Candidate is what it decides on the text kept; no
	// spend is counted.
	WhatIfContentNotKept WhatIfChange = "content_not_kept"
	// WhatIfNotEvaluated: the run could not be read or did not verify;
	// nothing is evaluated from altered records (Error says why).
	WhatIfNotEvaluated WhatIfChange = "not_evaluated"
)

// StatusContinues is the status of a candidate outcome that lets a run
// past the step it was stopped at: what it would have done after was
// never recorded.
const StatusContinues = "continues"

// WhatIfReport is the outcome of Runner.WhatIf: per recorded run, what it
// did and what the candidate policy set would have done, with totals.
type WhatIfReport struct {
	TenantID string `json:"tenant_id"`
	// The candidate: its snapshot id and content hash.
	CandidateID   string `json:"candidate_snapshot_id"`
	CandidateHash string `json:"candidate_content_hash"`
	// Runs are the runs the filter selected, newest first.
	Runs   []WhatIfRun  `json:"runs"`
	Totals WhatIfTotals `json:"totals"`
}

// WhatIfRun is one recorded run evaluated under the candidate.
type WhatIfRun struct {
	RunID string `json:"run_id"`
	// SnapshotID is the snapshot the run was recorded under.
	SnapshotID string       `json:"policy_snapshot_id"`
	CreatedAt  time.Time    `json:"created_at"`
	Change     WhatIfChange `json:"change"`
	// Recorded is what the run did; Candidate what it would have done.
	Recorded  WhatIfOutcome `json:"recorded"`
	Candidate WhatIfOutcome `json:"candidate"`
	// Saved, for would_stop and stops_earlier, is what the run recorded
	// after the candidate's stop: the steps after the step the candidate
	// blocks, their tokens and cost (the blocked step's own cost was
	// spent before it was decided, and is not counted).
	Saved *WhatIfCost `json:"saved,omitempty"`
	// CostNote says what cannot be measured: for would_continue, the
	// cost the candidate would have allowed past the recorded stop.
	CostNote string `json:"cost_note,omitempty"`
	// Flags say what of the run the candidate could not evaluate exactly
	// as the runner would have: Go hooks this program does not run,
	// limits across the tenant's runs, text stored cut, withheld steps.
	Flags []ReplayGap `json:"flags,omitempty"`
	// Error says why a run was not evaluated.
	Error string `json:"error,omitempty"`
}

// WhatIfOutcome is how a run ended, or would have.
type WhatIfOutcome struct {
	// Status is a RunStatus (running and queued for a run still going),
	// or StatusContinues.
	Status string `json:"status"`
	// StoppedAtStep is the step a policy or hook stopped the run at; nil
	// when none did.
	StoppedAtStep *int                            `json:"stopped_at_step"`
	PolicyID      string                          `json:"policy_id"`
	Reason        prevention.RunTerminationReason `json:"reason"`
	Message       string                          `json:"message,omitempty"`
}

// WhatIfCost is an amount of recorded spend.
type WhatIfCost struct {
	Steps     int     `json:"steps"`
	Tokens    int64   `json:"tokens"`
	CostCents float64 `json:"cost_cents"`
}

// WhatIfTotals counts the runs by change, and adds up what can be
// measured of their spend.
type WhatIfTotals struct {
	Runs          int `json:"runs"`
	Unchanged     int `json:"unchanged"`
	WouldStop     int `json:"would_stop"`
	WouldContinue int `json:"would_continue"`
	StopsEarlier  int `json:"stops_earlier"`
	StopsLater    int `json:"stops_later"`
	NotEvaluated  int `json:"not_evaluated"`
	// ContentNotKept counts the runs WhatIfContentNotKept.
	ContentNotKept int `json:"content_not_kept"`
	// Flagged counts the runs with Flags.
	Flagged int `json:"flagged"`
	// Saved adds up the Saved of would_stop and stops_earlier runs.
	Saved WhatIfCost `json:"saved"`
	// CostUnknown counts the runs (would_continue, stops_later) whose
	// allowed spend past the recorded stop cannot be known.
	CostUnknown int `json:"cost_unknown"`
}

// WhatIf evaluates candidate — a policy snapshot, typically a policy file
// not yet published — on the steps of the recorded runs f selects (of the
// candidate's tenant: f.TenantID must be empty or the same; f.Status,
// f.From, f.To and f.Limit select as for Store.Runs), and reports for
// each run whether the candidate would have stopped it, earlier, or not
// at all. Nothing is written.
//
// Each run is verified first (VerifyRun); a run that does not verify is
// reported WhatIfNotEvaluated with the error, and the others are still
// evaluated. The candidate is compiled with the runner's kinds and Go
// hooks and evaluates each recorded step as the runner would have (the
// recorded time, amounts, run totals and stored text, as Replay does),
// from the first step until the candidate blocks one. Hooks that decided
// in the run but that the runner does not have answer what they recorded.
// Limits across the tenant's runs read the totals the recorded decisions
// state on the same counter, else the run's own usage (a lower bound: the
// candidate may stop less than it would have). What could not be
// evaluated exactly is in each run's Flags.
//
// An error is returned when the candidate does not compile with the
// runner's kinds, belongs to another tenant than f, or the store cannot
// list the runs.
func (r *Runner) WhatIf(ctx context.Context, candidate *snapshot.PolicySnapshot, f RunFilter) (*WhatIfReport, error) {
	if candidate == nil {
		return nil, errors.New("governance: what-if: nil candidate")
	}
	if f.TenantID == "" {
		f.TenantID = candidate.TenantID()
	} else if f.TenantID != candidate.TenantID() {
		return nil, fmt.Errorf("governance: what-if: candidate %s is the policy set of tenant %q, not %q", candidate.ID(), candidate.TenantID(), f.TenantID)
	}
	if _, err := r.cfg.kinds.Compile(candidate, r.cfg.hooks...); err != nil {
		return nil, fmt.Errorf("governance: what-if: compiling candidate %s: %w", candidate.ID(), err)
	}
	runs, err := r.store.Runs(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("governance: what-if: listing runs of tenant %q: %w", f.TenantID, err)
	}
	w := &whatIf{r: r, candidate: candidate, evaluators: map[string]*reevaluator{}, counters: map[string]map[string]prevention.Counter{}}
	rep := &WhatIfReport{TenantID: f.TenantID, CandidateID: candidate.ID(), CandidateHash: candidate.ContentHash(), Runs: make([]WhatIfRun, len(runs))}
	// Runs are read and evaluated a few at a time: reading and verifying
	// them is most of the work, and stores serve reads concurrently.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(whatIfWorkers())
	for i, run := range runs {
		g.Go(func() error {
			if err := gctx.Err(); err != nil {
				return err
			}
			wr, err := w.run(gctx, run)
			rep.Runs[i] = wr
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i := range rep.Runs {
		rep.Totals.add(&rep.Runs[i])
	}
	return rep, nil
}

// whatIfWorkers is how many runs WhatIf reads and evaluates at once.
func whatIfWorkers() int { return min(max(runtime.GOMAXPROCS(0), 1), 4) }

func (t *WhatIfTotals) add(wr *WhatIfRun) {
	t.Runs++
	switch wr.Change {
	case WhatIfUnchanged:
		t.Unchanged++
	case WhatIfWouldStop:
		t.WouldStop++
	case WhatIfWouldContinue:
		t.WouldContinue++
	case WhatIfStopsEarlier:
		t.StopsEarlier++
	case WhatIfStopsLater:
		t.StopsLater++
	case WhatIfContentNotKept:
		t.ContentNotKept++
	default:
		t.NotEvaluated++
	}
	if len(wr.Flags) > 0 {
		t.Flagged++
	}
	if s := wr.Saved; s != nil {
		t.Saved.Steps += s.Steps
		t.Saved.Tokens += s.Tokens
		t.Saved.CostCents = roundCents(t.Saved.CostCents + s.CostCents)
	}
	if wr.Change == WhatIfWouldContinue || wr.Change == WhatIfStopsLater {
		t.CostUnknown++
	}
}

// whatIf is one WhatIf: the candidate's evaluators, one per set of hooks
// taken from the records, the counters of recorded snapshots, and the
// snapshots verified. It is used by several goroutines at once.
type whatIf struct {
	r          *Runner
	candidate  *snapshot.PolicySnapshot
	mu         sync.Mutex // guards evaluators and counters
	evaluators map[string]*reevaluator
	counters   map[string]map[string]prevention.Counter // by recorded snapshot id
	snaps      verifiedSnapshots
}

// run evaluates one recorded run under the candidate. Its error is the
// candidate's or the context's; the run's own problems are in the result.
func (w *whatIf) run(ctx context.Context, run RunRecord) (wr WhatIfRun, err error) {
	wr = WhatIfRun{RunID: run.RunID, SnapshotID: run.SnapshotID, CreatedAt: run.CreatedAt, Recorded: recordedOutcome(run)}
	_, rr, err := readVerified(ctx, w.r.store, run.TenantID, run.RunID, &w.snaps)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return wr, cerr
		}
		wr.Change, wr.Error = WhatIfNotEvaluated, err.Error()
		return wr, nil
	}
	wr.Recorded = recordedOutcome(rr.run) // as verified
	hookIDs, hookEnf := hooksOf(rr.records)
	ev, err := w.evaluator(hookIDs, hookEnf)
	if err != nil {
		return wr, err
	}
	counters, err := w.recordedCounters(rr)
	if err != nil {
		return wr, err
	}
	for _, g := range ev.gaps {
		if g.Why == GapHook || g.Why == GapTenantWide {
			wr.Flags = append(wr.Flags, g)
		}
	}

	steps := recordedSteps(&rr.run, rr.records, rr.contents)
	led := &replayLedger{}
	stop := -1
	var (
		decision                     prevention.Decision
		truncated, withheld, notKept []string
		held                         []string
	)
	for i := range steps {
		st := &steps[i]
		got := ev.evaluate(ctx, st, led, counters)
		if st.notKept && len(ev.textReaders) > 0 {
			notKept = append(notKept, strconv.Itoa(st.rec.StepIndex))
		}
		if len(st.truncated) > 0 && len(ev.textReaders) > 0 {
			truncated = append(truncated, strconv.Itoa(st.rec.StepIndex))
		}
		if st.withheld {
			withheld = append(withheld, strconv.Itoa(st.rec.StepIndex))
		}
		if got.Decision.Action == prevention.HoldForApproval {
			held = append(held, strconv.Itoa(st.rec.StepIndex))
		}
		if got.Decision.Action == prevention.Block {
			stop, decision = i, got.Decision
			break
		}
	}
	if len(held) > 0 {
		wr.Flags = append(wr.Flags, ReplayGap{Why: GapApproval, Detail: fmt.Sprintf("step %s would wait for a person's approval, which no record holds: counted as approved",
			strings.Join(held, ", "))})
	}
	if len(truncated) > 0 {
		wr.Flags = append(wr.Flags, ReplayGap{Why: GapTruncated, Detail: fmt.Sprintf("step %s stored cut: the candidate's policies and hooks that read text (%s) saw only what was stored",
			strings.Join(truncated, ", "), strings.Join(ev.textReaders, ", "))})
	}
	if len(withheld) > 0 {
		wr.Flags = append(wr.Flags, ReplayGap{Why: GapWithheld, Detail: fmt.Sprintf("step %s was withheld: its record holds what was delivered, not the attempted text and amounts",
			strings.Join(withheld, ", "))})
	}

	if len(notKept) > 0 {
		wr.Flags = append(wr.Flags, ReplayGap{Why: GapContentNotKept, Detail: fmt.Sprintf("the run keeps step content %s: step %s cannot be evaluated for the candidate's policies and hooks that read text (%s)",
			rr.records[0].Retention, strings.Join(notKept, ", "), strings.Join(ev.textReaders, ", "))})
	}
	recStop := rr.run.StoppedAtStep
	defer func() {
		if len(notKept) > 0 {
			wr.Change, wr.Saved, wr.CostNote = WhatIfContentNotKept, nil, ""
		}
	}()
	if stop < 0 {
		wr.Candidate = wr.Recorded
		if recStop != nil {
			wr.Change = WhatIfWouldContinue
			wr.Candidate = WhatIfOutcome{Status: StatusContinues}
			wr.CostNote = fmt.Sprintf("the candidate lets step %d pass, where the run was stopped; the steps it would then have taken were never taken, so what they would have cost is unknown", *recStop)
		} else {
			wr.Change = WhatIfUnchanged
		}
		return wr, nil
	}
	at := steps[stop].rec.StepIndex
	status := StatusFailedPolicy
	if isFailure(decision) {
		status = StatusFailed
	}
	wr.Candidate = WhatIfOutcome{Status: string(status), StoppedAtStep: &at, PolicyID: decision.PolicyID, Reason: decision.Reason, Message: decision.Message}
	switch {
	case recStop == nil:
		wr.Change = WhatIfWouldStop
	case at < *recStop:
		wr.Change = WhatIfStopsEarlier
	case at == *recStop:
		wr.Change = WhatIfUnchanged
	default:
		wr.Change = WhatIfStopsLater
	}
	if wr.Change == WhatIfWouldStop || wr.Change == WhatIfStopsEarlier {
		last, cut := steps[len(steps)-1].rec, steps[stop].rec
		wr.Saved = &WhatIfCost{Steps: last.StepIndex - cut.StepIndex, Tokens: last.TotalTokens - cut.TotalTokens,
			CostCents: roundCents(last.TotalCostCents - cut.TotalCostCents)}
	}
	return wr, nil
}

// recordedOutcome is how a run ended, as its row (verified) says.
func recordedOutcome(run RunRecord) WhatIfOutcome {
	o := WhatIfOutcome{Status: string(run.Status), PolicyID: run.ViolationPolicyID, Reason: run.TerminationReason, Message: run.Message}
	if run.StoppedAtStep != nil {
		at := *run.StoppedAtStep
		o.StoppedAtStep = &at
	}
	return o
}

// evaluator returns the candidate's evaluator for a run whose records
// show these hooks deciding.
func (w *whatIf) evaluator(hookIDs []string, hookEnf map[string]snapshot.Enforcement) (*reevaluator, error) {
	var key strings.Builder
	for _, id := range hookIDs {
		fmt.Fprintf(&key, "%q=%s;", id, hookEnf[id])
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if ev := w.evaluators[key.String()]; ev != nil {
		return ev, nil
	}
	ev, err := newReevaluator(w.r.cfg.kinds, w.candidate, w.r.cfg.hooks, hookIDs, hookEnf, w.r.cfg.stepTimeout)
	if err != nil {
		return nil, fmt.Errorf("governance: what-if: compiling candidate %s: %w", w.candidate.ID(), err)
	}
	w.evaluators[key.String()] = ev
	return ev, nil
}

// recordedCounters maps the tenant-wide policies of the run's snapshot to
// their counters: the totals their recorded decisions state are the
// tenant's, whichever policy reads the counter.
func (w *whatIf) recordedCounters(rr *recordedRun) (map[string]prevention.Counter, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if c, ok := w.counters[rr.snap.ID()]; ok {
		return c, nil
	}
	eng, err := measuringEngine(rr.snap)
	if err != nil {
		return nil, fmt.Errorf("governance: what-if: snapshot %s of run %s: %w", rr.snap.ID(), rr.run.RunID, err)
	}
	c := tenantCounters(eng, rr.run.TenantID)
	w.counters[rr.snap.ID()] = c
	return c, nil
}

// measuringEngine compiles a recorded snapshot to measure its policies
// (prevention.MeasuringEngine).
func measuringEngine(snap *snapshot.PolicySnapshot) (*prevention.Engine, error) {
	return prevention.MeasuringEngine(snap)
}

// roundCents rounds a sum of cents to nine decimals, so that a difference
// of float sums reads as people wrote the amounts (0.3, not
// 0.30000000000000004).
func roundCents(c float64) float64 {
	if math.Abs(c) < 1e12 {
		return math.Round(c*1e9) / 1e9
	}
	return c
}
