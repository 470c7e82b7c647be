package governance

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// ErrBeforeRun is returned by Explain for an instant before the run was created.
var ErrBeforeRun = errors.New("governance: instant is before the run was created")

// ExecutionState says whether, at an instant, the run was waiting,
// continuing or stopped.
type ExecutionState string

// Execution states.
const (
	StateQueued     ExecutionState = "queued"     // created, no step yet
	StateContinuing ExecutionState = "continuing" // running; the last decision let it go on
	StateStopped    ExecutionState = "stopped"    // ended (by a policy, a failure, an abort or completion)
	StateHeld       ExecutionState = "held"       // running; its last step waited for a person's approval
)

// Explanation answers, for one instant of a run: which policy set and
// thresholds were in force, what the last decision at or before that
// instant was and which policy and threshold made it, whether execution
// was continuing or stopped and why, and which record of the hash chain
// holds that decision.
type Explanation struct {
	RunID    string    `json:"run_id"`
	TenantID string    `json:"tenant_id"`
	At       time.Time `json:"at"`

	SnapshotID    string              `json:"policy_snapshot_id"`
	ContentHash   string              `json:"content_hash"`
	PolicyVersion int                 `json:"policy_version,omitempty"`
	Policies      []snapshot.Policy   `json:"policies"`
	Thresholds    snapshot.Thresholds `json:"thresholds"`

	State             ExecutionState                  `json:"state"`
	RunStatus         RunStatus                       `json:"run_status"`
	TerminationReason prevention.RunTerminationReason `json:"termination_reason,omitempty"`

	// LastStep is the last step at or before At; nil when there was none.
	LastStep *StepExplanation `json:"last_step"`
	// Decisive is the policy whose decision explains the state: the
	// blocking policy once stopped, otherwise the last step's first
	// finding (warning or monitor), nil when every policy allowed.
	Decisive *DecisiveDecision `json:"decisive_decision"`

	// Hooks are the Go hooks the run's records up to At show deciding
	// (Source "hook"), in the order they ran. A hook that never objected
	// by then leaves no record, so there may be more.
	Hooks []string `json:"hooks,omitempty"`

	// Headroom says, for each policy whose decision compares a value with
	// a limit (the budget, rate_limit, timeout, tenant_budget and
	// tenant_rate_limit kinds), how close the last step at or before At
	// came to its limit: the values the policies compared when they last
	// decided, measured on the step as the records rebuild it (as Replay
	// rebuilds it), or stated by the policy's recorded finding. A step
	// stopped while withheld (Run.Withhold, Run.Reserve) records what was
	// delivered: policies without a finding there are measured on that.
	// Empty when there was no step yet.
	Headroom []Headroom `json:"headroom"`
	// Closest is, of the policies in Headroom in block mode, the one
	// whose observed value was the largest fraction of its limit at that
	// step: the threshold closest to stopping the run (past it when that
	// policy stopped it). "" when none can say.
	Closest string `json:"closest"`
	// HeadroomNote says what the headroom cannot show, when anything.
	HeadroomNote string `json:"headroom_note,omitempty"`

	// Why says it in one or two sentences.
	Why string `json:"why"`

	// Record is where the explained decision is recorded: the inflection
	// record once a policy stopped the run, otherwise the last record of
	// the chain at or before At.
	Record RecordLocation `json:"record"`

	// Verification says what was checked before explaining: which
	// records were recomputed, whether they are the whole chain, and the
	// signed checkpoint they were checked against, if any.
	Verification ExplainVerification `json:"verification"`
}

// StepExplanation is the last step at or before the instant.
type StepExplanation struct {
	Index    int                   `json:"step_index"`
	At       time.Time             `json:"at"`
	Type     prevention.StepType   `json:"type"`
	Tool     string                `json:"tool,omitempty"`
	Model    string                `json:"model,omitempty"`
	Status   trace.Status          `json:"status"`
	Decision prevention.Decision   `json:"decision"`
	Findings []prevention.Decision `json:"findings,omitempty"`
	// Totals after the step.
	TotalTokens    int64   `json:"total_tokens"`
	TotalCostCents float64 `json:"total_cost_cents"`
	// Approval is the hold of a step held for a person's approval and
	// its answer, as recorded; nil for a step that was not held.
	Approval *trace.Approval `json:"approval,omitempty"`
}

// DecisiveDecision is a decision with the policy that made it and the
// threshold it applied.
type DecisiveDecision struct {
	prevention.Decision
	Policy *snapshot.Policy `json:"policy,omitempty"` // nil for a Go hook
}

// Headroom is how close one policy came to its limit at a step.
type Headroom struct {
	PolicyID  string  `json:"policy_id"`
	Kind      string  `json:"kind"`
	Threshold string  `json:"threshold"`
	Limit     float64 `json:"limit"`
	// Observed is the value the policy compared with Limit, this step
	// included; nil for a limit across the tenant's runs whose total no
	// decision of the step recorded.
	Observed *float64 `json:"observed"`
	// Unit is what Observed counts: tokens, cost_cents, steps, seconds;
	// for a limit across the tenant's runs, its counter's metric.
	Unit string `json:"unit"`
	// WindowSeconds is the trailing window of a rate or rolling limit;
	// Period the calendar window (day, month, UTC) of a tenant budget.
	WindowSeconds float64 `json:"window_seconds,omitempty"`
	Period        string  `json:"period,omitempty"`
	// Fraction is Observed / Limit: 1 is at the limit, over 1 past it
	// (a policy blocks past it). nil when Observed is, or the limit is 0
	// and Observed is not.
	Fraction    *float64             `json:"fraction"`
	Enforcement snapshot.Enforcement `json:"enforcement"`
	// TenantWide is set for a limit across all the tenant's runs: its
	// total depends on the other runs, and only a recorded decision
	// states it.
	TenantWide bool `json:"tenant_wide,omitempty"`
	// Finding is what the policy recorded at the step, if anything: for a
	// policy in warn or monitor mode, what it would have done. Its limit
	// and observed value are the ones above.
	Finding *prevention.Decision `json:"finding,omitempty"`
	// Text says it in words: "cost_cents 120 of 150 (80%)".
	Text string `json:"text"`
}

// RecordLocation locates a record in a run's hash chain.
type RecordLocation struct {
	Seq       int        `json:"seq"`
	Kind      trace.Kind `json:"kind"`
	StepIndex int        `json:"step_index"`
	Hash      string     `json:"hash"`
	PrevHash  string     `json:"prev_hash"`
	// ChainLength and HeadHash are the chain's size and head now: as
	// recomputed when Explain read the whole chain
	// (Verification.WholeChain), else as the run's row states them.
	ChainLength int    `json:"chain_length"`
	HeadHash    string `json:"head_hash"`
	// Verified: the records up to this one (and the first after the
	// instant) were recomputed from the genesis hash and are sound.
	Verified bool `json:"verified"`
}

// Explain explains the run at instant at, from the store alone. It first
// verifies the run's snapshot and reads the run's chain from its first
// record up to the instant, recomputing every hash from the genesis hash
// (its cost is that of the records up to the instant, not of the whole
// chain): an explanation is never built on altered records (the error is
// a *trace.ChainError or a snapshot.HashMismatchError).
// Explanation.Verification says exactly what was checked; with
// ExplainCheckpoints, the records are also checked against a checkpoint
// signed with a key held outside the database. An instant after the
// run's end explains its final state. Besides the thresholds in force, it
// says how close the last step came to each of them (Headroom) and which
// policy was closest to stopping the run.
func Explain(ctx context.Context, store Store, tenantID, runID string, at time.Time, opts ...ExplainOption) (*Explanation, error) {
	var cfg explainConfig
	for _, o := range opts {
		if o != nil {
			o(&cfg)
		}
	}
	run, err := store.Run(ctx, tenantID, runID)
	if err != nil {
		return nil, fmt.Errorf("governance: explain: %w", err)
	}
	if at.Before(run.CreatedAt) {
		return nil, beforeRun(run, at)
	}
	snap, err := store.Snapshot(ctx, tenantID, run.SnapshotID)
	if err != nil {
		return nil, fmt.Errorf("governance: explain: snapshot of run %s: %w", runID, err)
	}
	if err := snap.Verify(); err != nil {
		return nil, fmt.Errorf("governance: explain: %w", err)
	}
	p, ver, err := readPrefix(ctx, store, &run, at, &cfg)
	if err != nil {
		return nil, fmt.Errorf("governance: explain: %w", err)
	}
	ex, err := explainPrefixAt(&run, snap, p, at)
	if err != nil {
		return nil, err
	}
	ex.Verification = ver
	return ex, nil
}

func beforeRun(run RunRecord, at time.Time) error {
	return fmt.Errorf("%w: %s is before run %s was created at %s", ErrBeforeRun,
		at.UTC().Format(time.RFC3339Nano), run.RunID, run.CreatedAt.Format(time.RFC3339Nano))
}

// explainPrefixAt explains instant at from what it is given, and reads
// nothing: the run's row (whose ChainLength and HeadHash the explanation
// cites) and snapshot, and what readPrefix kept of the records up to the
// instant, verified by the caller.
func explainPrefixAt(run *RunRecord, snap *snapshot.PolicySnapshot, p *explainPrefix, at time.Time) (*Explanation, error) {
	if at.Before(run.CreatedAt) {
		return nil, beforeRun(*run, at)
	}
	if p.first.Kind != trace.KindRunStart {
		return nil, fmt.Errorf("governance: explain: run %s: no run_start record", run.RunID)
	}
	r := p.last
	ex := &Explanation{
		RunID: run.RunID, TenantID: run.TenantID, At: at.UTC(),
		SnapshotID: snap.ID(), ContentHash: snap.ContentHash(), PolicyVersion: run.PolicyVersion,
		Policies: snap.Policies(), Thresholds: snap.Thresholds(), Headroom: []Headroom{},
		Record: RecordLocation{Seq: r.Seq, Kind: r.Kind, StepIndex: r.StepIndex, Hash: r.Hash, PrevHash: r.PrevHash,
			ChainLength: run.ChainLength, HeadHash: run.HeadHash, Verified: true},
	}
	ex.Hooks, _ = p.hooks.order()
	if s := p.lastStep; s != nil {
		se := &StepExplanation{Index: s.StepIndex, At: s.At, Type: s.StepType, Tool: s.Tool, Model: s.Model,
			Status: s.Status, Findings: s.Findings, TotalTokens: s.TotalTokens, TotalCostCents: s.TotalCostCents, Approval: s.Approval}
		if s.Decision != nil {
			se.Decision = *s.Decision
		}
		ex.LastStep = se
		ex.headroom(snap, p.steps.next(s, nil))
	}
	decisive := func(d prevention.Decision) *DecisiveDecision {
		dd := &DecisiveDecision{Decision: d}
		if p, ok := snap.Policy(d.PolicyID); ok && d.Source != prevention.SourceHook {
			dd.Policy = &p
		}
		return dd
	}
	policies := plural(snap.PolicyCount(), "policy", "policies")
	if ls := ex.LastStep; ls != nil && ls.Approval != nil && at.Before(ls.Approval.AnsweredAt) && r.Kind != trace.KindRunStart {
		// [holds] At this instant the step was waiting for a person: what
		// was decided later is said as later.
		hf := heldBy(ls.Findings)
		ex.State, ex.RunStatus, ex.TerminationReason = StateHeld, StatusRunning, ""
		ex.Decisive = decisive(hf)
		if ir := p.inflection; ir != nil && ir.StepIndex == ls.Index {
			ex.Record.Seq, ex.Record.Kind, ex.Record.StepIndex, ex.Record.Hash, ex.Record.PrevHash = ir.Seq, ir.Kind, ir.StepIndex, ir.Hash, ir.PrevHash
		}
		ex.Why = explainHeld(ls, hf)
		return ex, nil
	}
	switch r.Kind {
	case trace.KindRunStart:
		ex.State, ex.RunStatus = StateContinuing, StatusRunning
		if run.StartedAt == nil || run.StartedAt.After(at) {
			ex.State, ex.RunStatus = StateQueued, StatusQueued
			ex.Why = fmt.Sprintf("The run was queued under snapshot %s (%s) and no step had been reported yet.", snap.ID(), policies)
		} else {
			ex.Why = fmt.Sprintf("The run had started under snapshot %s (%s) and no step had been reported yet.", snap.ID(), policies)
		}
	case trace.KindStep:
		ex.State, ex.RunStatus = StateContinuing, StatusRunning
		switch {
		case ex.LastStep.Decision.Action == prevention.Block:
			ex.Decisive = decisive(ex.LastStep.Decision)
		case len(ex.LastStep.Findings) > 0:
			ex.Decisive = decisive(ex.LastStep.Findings[0])
		}
		ex.Why = explainStep(ex.LastStep, snap.PolicyCount(), len(ex.Hooks)) + " Execution continued" + ex.closestText() + "."
	case trace.KindRunEnd:
		ex.State, ex.RunStatus, ex.TerminationReason = StateStopped, RunStatus(r.RunStatus), r.Reason
		var why strings.Builder
		if ex.LastStep != nil && ex.LastStep.Decision.Action == prevention.Block {
			ex.Decisive = decisive(ex.LastStep.Decision)
			// The decision is held by the inflection record; the run_end
			// record after it only closes the chain.
			if ir := p.inflection; ir != nil {
				ex.Record.Seq, ex.Record.Kind, ex.Record.StepIndex, ex.Record.Hash, ex.Record.PrevHash = ir.Seq, ir.Kind, ir.StepIndex, ir.Hash, ir.PrevHash
			}
			why.WriteString(explainStep(ex.LastStep, snap.PolicyCount(), len(ex.Hooks)))
			fmt.Fprintf(&why, " The run stopped at that step: %s, %s.", r.RunStatus, r.Reason)
		} else {
			if ex.LastStep != nil {
				why.WriteString(explainStep(ex.LastStep, snap.PolicyCount(), len(ex.Hooks)) + " ")
			}
			fmt.Fprintf(&why, "The run ended: %s, %s", r.RunStatus, r.Reason)
			if r.Message != "" {
				fmt.Fprintf(&why, " (%s)", r.Message)
			}
			why.WriteString(".")
		}
		ex.Why = why.String()
	}
	return ex, nil
}

// explainHeld says what a held step was waiting for at an instant
// before its answer, and what the answer was.
func explainHeld(s *StepExplanation, hf prevention.Decision) string {
	what := string(s.Type)
	if s.Tool != "" {
		what += " " + s.Tool
	}
	a := s.Approval
	msg := fmt.Sprintf("Step %d (%s) was held for approval by %s %s since %s, until %s at the latest: at this instant the run was waiting for a person's answer.",
		s.Index, what, hf.Source, hf.PolicyID, a.RequestedAt.Format(time.RFC3339), a.Deadline.Format(time.RFC3339))
	switch a.Answer {
	case trace.AnswerApproved, trace.AnswerDenied:
		msg += fmt.Sprintf(" It was %s by %s at %s", a.Answer, a.By, a.AnsweredAt.Format(time.RFC3339))
		if a.Reason != "" {
			msg += " (" + a.Reason + ")"
		}
		msg += "."
	case trace.AnswerExpired:
		msg += " Nobody answered before the deadline; the step was blocked."
	default:
		msg += fmt.Sprintf(" The wait was cancelled at %s (%s); the step was blocked.", a.AnsweredAt.Format(time.RFC3339), a.Reason)
	}
	return msg
}

// closestText says which policy was closest to stopping the run: ", the
// policy closest to stopping it being cost-budget (cost_cents 120 of 150
// (80%))", or "" when none can say.
func (ex *Explanation) closestText() string {
	for _, h := range ex.Headroom {
		if h.PolicyID == ex.Closest {
			return fmt.Sprintf("; the policy closest to stopping it was %s: %s", h.PolicyID, h.Text)
		}
	}
	return ""
}

func explainStep(s *StepExplanation, policies, hooks int) string {
	what := string(s.Type)
	if s.Tool != "" {
		what += " " + s.Tool
	}
	if a := s.Approval; a != nil && a.Answer == trace.AnswerApproved {
		hf := heldBy(s.Findings)
		msg := fmt.Sprintf("Step %d (%s) was held for approval by %s %s and approved by %s at %s", s.Index, what, hf.Source, hf.PolicyID, a.By, a.AnsweredAt.Format(time.RFC3339))
		if a.Reason != "" {
			msg += " (" + a.Reason + ")"
		}
		return msg + "."
	}
	d := s.Decision
	switch d.Action {
	case prevention.Block:
		msg := fmt.Sprintf("Step %d (%s) was blocked by %s %s (%s)", s.Index, what, d.Source, d.PolicyID, d.Reason)
		if d.Threshold != "" {
			msg += fmt.Sprintf(": %s observed %g, limit %g", d.Threshold, d.Observed, d.Limit)
		} else if d.Message != "" {
			msg += ": " + d.Message
		}
		return msg + "."
	case prevention.Warn:
		return fmt.Sprintf("Step %d (%s) was allowed with %d warning(s); first: %s.", s.Index, what, len(s.Findings), s.Findings[0])
	default:
		if len(s.Findings) > 0 {
			return fmt.Sprintf("Step %d (%s) was allowed; %d monitor-mode finding(s) recorded; first: %s.", s.Index, what, len(s.Findings), s.Findings[0])
		}
		return fmt.Sprintf("Step %d (%s) was allowed: %s.", s.Index, what, noObjection(policies, hooks))
	}
}

// noObjection says that none of a step's policies and Go hooks objected,
// counting both.
func noObjection(policies, hooks int) string {
	switch {
	case policies == 0 && hooks == 0:
		return "no policy or Go hook was in force"
	case hooks == 0 && policies == 1:
		return "its one policy did not object"
	case hooks == 0:
		return fmt.Sprintf("none of its %d policies objected", policies)
	case policies == 0 && hooks == 1:
		return "its one Go hook did not object"
	case policies == 0:
		return fmt.Sprintf("none of its %d Go hooks objected", hooks)
	case policies == 1 && hooks == 1:
		return "neither its policy nor its Go hook objected"
	}
	return fmt.Sprintf("none of its %s and %s objected", plural(policies, "policy", "policies"), plural(hooks, "Go hook", "Go hooks"))
}

// plural spells a count of things: "1 policy", "2 policies".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
