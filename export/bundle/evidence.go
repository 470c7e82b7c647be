package bundle

import (
	"time"

	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// Evidence is the evidence bundle: what exactly happened in one run, for
// an engineer: the run and its incident, the whole policy snapshot it was
// bound to, every step with its decision (policy, threshold, limit,
// observed value), status, inflection flag and hashes, the run's whole
// hash chain, and totals. It verifies offline (see Verify).
type Evidence struct {
	Header
	Provenance

	// ViolatedPolicyID and ViolationStepIndex name the policy that
	// stopped the run and the step it stopped at (the inflection point);
	// empty and null when no policy stopped it.
	ViolatedPolicyID   string `json:"violated_policy_id,omitempty"`
	ViolationStepIndex *int   `json:"violation_step_index"`

	Run      RunSummary         `json:"run"`
	Incident *incident.Incident `json:"incident,omitempty"`

	Steps []TraceStepEvidence `json:"steps"`
	Totals
	// Outlook is each step's headroom and the shadow comparison
	// (outlook.go).
	Outlook
}

// Type returns the bundle type (evidence, or soc2 when the evidence is
// embedded in a SOC2 bundle).
func (b *Evidence) Type() Type { return b.BundleType }

// ID returns the bundle id.
func (b *Evidence) ID() string { return b.BundleID }

func (b *Evidence) header() *Header         { return &b.Header }
func (b *Evidence) provenance() *Provenance { return &b.Provenance }

// Inflection returns the step the run was stopped at, if any.
func (b *Evidence) Inflection() (TraceStepEvidence, bool) {
	if b.ViolationStepIndex != nil {
		if i := *b.ViolationStepIndex; i >= 0 && i < len(b.Steps) && b.Steps[i].IsInflection {
			return b.Steps[i], true
		}
	}
	for _, s := range b.Steps {
		if s.IsInflection {
			return s, true
		}
	}
	return TraceStepEvidence{}, false
}

// RunSummary is the run as the store holds it. Status is one of queued,
// running, succeeded, failed, failed_policy and cancelled.
type RunSummary struct {
	Status            string                          `json:"status"`
	TerminationReason prevention.RunTerminationReason `json:"termination_reason,omitempty"`
	StoppedAtStep     *int                            `json:"stopped_at_step"`
	ViolationPolicyID string                          `json:"violation_policy_id,omitempty"`
	PolicyVersion     int                             `json:"policy_version,omitempty"`
	Message           string                          `json:"message,omitempty"`
	Labels            map[string]string               `json:"labels,omitempty"`
	CreatedAt         time.Time                       `json:"created_at"`
	StartedAt         *time.Time                      `json:"started_at,omitempty"`
	EndedAt           *time.Time                      `json:"ended_at,omitempty"`
	StepCount         int                             `json:"step_count"`
}

// TraceStepEvidence is one step of the run with its decision, as the
// chain records it: every field is derived from the step's record, and
// Verify checks that they agree.
type TraceStepEvidence struct {
	StepIndex    int                 `json:"step_index"`
	Seq          int                 `json:"seq"` // position of the record in the chain
	Timestamp    time.Time           `json:"timestamp"`
	StepType     prevention.StepType `json:"step_type"`
	Model        string              `json:"model,omitempty"`
	Tool         string              `json:"tool,omitempty"`
	Tokens       int64               `json:"tokens"`
	CostCents    float64             `json:"cost_cents"`
	TotalTokens  int64               `json:"total_tokens"`
	TotalCost    float64             `json:"total_cost_cents"`
	Status       trace.Status        `json:"status"`
	IsInflection bool                `json:"is_inflection"`
	ContentHash  string              `json:"content_hash,omitempty"`
	// Decision is the deciding decision: allow, warn or block, the
	// policy, and the threshold with its limit and the observed value.
	Decision StepDecision `json:"decision"`
	// Findings are every decision that was not a plain allow (warnings,
	// monitor-mode would-blocks, the block itself).
	Findings   []StepDecision `json:"findings,omitempty"`
	RecordHash string         `json:"record_hash"`
	PrevHash   string         `json:"prev_hash"`
	// Content is the step's input, output and metadata, when the export
	// included content; it hashes to ContentHash.
	Content *trace.Content `json:"content,omitempty"`
}

// StepDecision is a decision on a step. Limit and Observed are present
// whenever Threshold is (zero is a value, not an absence).
type StepDecision struct {
	Action      prevention.Action               `json:"action"`
	PolicyID    string                          `json:"policy_id,omitempty"`
	Source      prevention.Source               `json:"source,omitempty"`
	Reason      prevention.RunTerminationReason `json:"reason,omitempty"`
	Threshold   string                          `json:"threshold,omitempty"`
	Limit       *float64                        `json:"limit,omitempty"`
	Observed    *float64                        `json:"observed,omitempty"`
	Message     string                          `json:"message,omitempty"`
	Enforcement snapshot.Enforcement            `json:"enforcement,omitempty"`
}

func stepDecision(d prevention.Decision) StepDecision {
	sd := StepDecision{
		Action: d.Action, PolicyID: d.PolicyID, Source: d.Source, Reason: d.Reason,
		Threshold: d.Threshold, Message: d.Message, Enforcement: d.Enforcement,
	}
	if d.Threshold != "" {
		limit, observed := d.Limit, d.Observed
		sd.Limit, sd.Observed = &limit, &observed
	}
	return sd
}

// StepOf is the evidence of a step, derived from its chain record: every
// field of TraceStepEvidence but Content. Verify checks that each step
// of a bundle is this.
func StepOf(r *trace.Record) TraceStepEvidence {
	s := TraceStepEvidence{
		StepIndex: r.StepIndex, Seq: r.Seq, Timestamp: r.At.UTC(), StepType: r.StepType, Model: r.Model, Tool: r.Tool,
		Tokens: r.Tokens, CostCents: r.CostCents, TotalTokens: r.TotalTokens, TotalCost: r.TotalCostCents,
		Status: r.Status, IsInflection: r.Inflection, ContentHash: r.ContentHash,
		RecordHash: r.Hash, PrevHash: r.PrevHash,
	}
	if r.Decision != nil {
		s.Decision = stepDecision(*r.Decision)
	}
	if len(r.Findings) > 0 {
		s.Findings = make([]StepDecision, len(r.Findings))
		for i, f := range r.Findings {
			s.Findings[i] = stepDecision(f)
		}
	}
	return s
}

// Totals are a run's duration (seconds, from its start to its end or its
// last record), tokens and cost in cents.
type Totals struct {
	DurationSeconds float64 `json:"total_duration_seconds"`
	Tokens          int64   `json:"total_tokens"`
	CostCents       float64 `json:"total_cost_cents"`
}

// runStart is when the run started: its start time, or its creation when
// it never left the queue.
func runStart(s *RunSummary) time.Time {
	if s.StartedAt != nil {
		return *s.StartedAt
	}
	return s.CreatedAt
}

// TotalsOf computes a run's totals from its chain records: tokens and
// cost from the last record that carries them, duration from the run's
// start (start: its start time, or its creation for a run that never left
// the queue) to its end (the run_end record) or, for a run still open,
// its last record. Verify checks that a bundle's totals are these.
func TotalsOf(records []trace.Record, start time.Time) Totals {
	var t Totals
	if len(records) == 0 {
		return t
	}
	for i := len(records) - 1; i >= 0; i-- {
		r := &records[i]
		if r.Kind == trace.KindStep || r.Kind == trace.KindRunEnd {
			t.Tokens, t.CostCents = r.TotalTokens, r.TotalCostCents
			break
		}
	}
	if d := records[len(records)-1].At.Sub(start); d > 0 {
		t.DurationSeconds = d.Seconds()
	}
	return t
}
