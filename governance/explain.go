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

	// Why says it in one or two sentences.
	Why string `json:"why"`

	// Record is where the explained decision is recorded: the inflection
	// record once a policy stopped the run, otherwise the last record of
	// the chain at or before At.
	Record RecordLocation `json:"record"`
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
}

// DecisiveDecision is a decision with the policy that made it and the
// threshold it applied.
type DecisiveDecision struct {
	prevention.Decision
	Policy *snapshot.Policy `json:"policy,omitempty"` // nil for a Go hook
}

// RecordLocation locates a record in a run's hash chain.
type RecordLocation struct {
	Seq         int        `json:"seq"`
	Kind        trace.Kind `json:"kind"`
	StepIndex   int        `json:"step_index"`
	Hash        string     `json:"hash"`
	PrevHash    string     `json:"prev_hash"`
	ChainLength int        `json:"chain_length"` // records in the chain now
	HeadHash    string     `json:"head_hash"`    // hash of the chain's last record now
	Verified    bool       `json:"verified"`     // the whole chain was recomputed and is sound
}

// Explain explains the run at instant at, from the store alone. It first
// verifies the run's snapshot and recomputes its whole chain: an
// explanation is never built on altered records (the error is a
// *trace.ChainError or a snapshot.HashMismatchError). An instant after the
// run's end explains its final state.
func Explain(ctx context.Context, store Store, tenantID, runID string, at time.Time) (*Explanation, error) {
	run, err := store.Run(ctx, tenantID, runID)
	if err != nil {
		return nil, fmt.Errorf("governance: explain: %w", err)
	}
	if at.Before(run.CreatedAt) {
		return nil, fmt.Errorf("%w: %s is before run %s was created at %s", ErrBeforeRun,
			at.UTC().Format(time.RFC3339Nano), runID, run.CreatedAt.Format(time.RFC3339Nano))
	}
	snap, err := store.Snapshot(ctx, tenantID, run.SnapshotID)
	if err != nil {
		return nil, fmt.Errorf("governance: explain: snapshot of run %s: %w", runID, err)
	}
	if err := snap.Verify(); err != nil {
		return nil, fmt.Errorf("governance: explain: %w", err)
	}
	records, err := store.Records(ctx, tenantID, runID)
	if err != nil {
		return nil, fmt.Errorf("governance: explain: records of run %s: %w", runID, err)
	}
	head, err := trace.Verify(records)
	if err != nil {
		return nil, fmt.Errorf("governance: explain: %w", err)
	}

	// The last record at or before the instant.
	last := 0
	for i := range records {
		if records[i].At.After(at) {
			break
		}
		last = i
	}
	r := records[last]
	ex := &Explanation{
		RunID: runID, TenantID: tenantID, At: at.UTC(),
		SnapshotID: snap.ID(), ContentHash: snap.ContentHash(), PolicyVersion: run.PolicyVersion,
		Policies: snap.Policies(), Thresholds: snap.Thresholds(),
		Record: RecordLocation{Seq: r.Seq, Kind: r.Kind, StepIndex: r.StepIndex, Hash: r.Hash, PrevHash: r.PrevHash,
			ChainLength: len(records), HeadHash: head, Verified: true},
	}
	for i := last; i >= 0; i-- {
		if s := records[i]; s.Kind == trace.KindStep {
			se := &StepExplanation{Index: s.StepIndex, At: s.At, Type: s.StepType, Tool: s.Tool, Model: s.Model,
				Status: s.Status, Findings: s.Findings, TotalTokens: s.TotalTokens, TotalCostCents: s.TotalCostCents}
			if s.Decision != nil {
				se.Decision = *s.Decision
			}
			ex.LastStep = se
			break
		}
	}
	decisive := func(d prevention.Decision) *DecisiveDecision {
		dd := &DecisiveDecision{Decision: d}
		if p, ok := snap.Policy(d.PolicyID); ok && d.Source != prevention.SourceHook {
			dd.Policy = &p
		}
		return dd
	}
	switch r.Kind {
	case trace.KindRunStart:
		ex.State, ex.RunStatus = StateContinuing, StatusRunning
		if run.StartedAt == nil || run.StartedAt.After(at) {
			ex.State, ex.RunStatus = StateQueued, StatusQueued
		}
		ex.Why = fmt.Sprintf("The run had started under snapshot %s (%d policies) and no step had been reported yet.", snap.ID(), snap.PolicyCount())
	case trace.KindStep:
		ex.State, ex.RunStatus = StateContinuing, StatusRunning
		switch {
		case ex.LastStep.Decision.Action == prevention.Block:
			ex.Decisive = decisive(ex.LastStep.Decision)
		case len(ex.LastStep.Findings) > 0:
			ex.Decisive = decisive(ex.LastStep.Findings[0])
		}
		ex.Why = explainStep(ex.LastStep, snap.PolicyCount()) + " Execution continued."
	case trace.KindRunEnd:
		ex.State, ex.RunStatus, ex.TerminationReason = StateStopped, RunStatus(r.RunStatus), r.Reason
		var why strings.Builder
		if ex.LastStep != nil && ex.LastStep.Decision.Action == prevention.Block {
			ex.Decisive = decisive(ex.LastStep.Decision)
			// The decision is held by the inflection record; the run_end
			// record after it only closes the chain.
			if inf, ok := trace.InflectionOf(records); ok {
				ir := records[inf.Seq]
				ex.Record.Seq, ex.Record.Kind, ex.Record.StepIndex, ex.Record.Hash, ex.Record.PrevHash = ir.Seq, ir.Kind, ir.StepIndex, ir.Hash, ir.PrevHash
			}
			why.WriteString(explainStep(ex.LastStep, snap.PolicyCount()))
			fmt.Fprintf(&why, " The run stopped at that step: %s, %s.", r.RunStatus, r.Reason)
		} else {
			if ex.LastStep != nil {
				why.WriteString(explainStep(ex.LastStep, snap.PolicyCount()) + " ")
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

func explainStep(s *StepExplanation, policies int) string {
	what := string(s.Type)
	if s.Tool != "" {
		what += " " + s.Tool
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
		if policies == 1 {
			return fmt.Sprintf("Step %d (%s) was allowed: its one policy did not object.", s.Index, what)
		}
		return fmt.Sprintf("Step %d (%s) was allowed: none of the %d policies objected.", s.Index, what, policies)
	}
}
