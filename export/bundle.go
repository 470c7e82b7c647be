package export

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// BundleType says which bundle a JSON document is.
type BundleType string

// Bundle types.
const (
	TypeEvidence         BundleType = "evidence"
	TypeSOC2             BundleType = "soc2"
	TypeExecutiveDebrief BundleType = "executive_debrief"
)

// Valid reports whether t is one of the three bundle types.
func (t BundleType) Valid() bool {
	return t == TypeEvidence || t == TypeSOC2 || t == TypeExecutiveDebrief
}

func (t BundleType) String() string { return string(t) }

// MarshalText implements encoding.TextMarshaler, rejecting unknown types.
func (t BundleType) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("%w: bundle type %q", ErrInvalidRequest, string(t))
	}
	return []byte(t), nil
}

// UnmarshalText implements encoding.TextUnmarshaler, rejecting unknown types.
func (t *BundleType) UnmarshalText(b []byte) error {
	v := BundleType(b)
	if !v.Valid() {
		return fmt.Errorf("%w: bundle type %q (want evidence, soc2 or executive_debrief)", ErrInvalidRequest, b)
	}
	*t = v
	return nil
}

// Format is how an export is handed out.
type Format string

// Formats.
const (
	FormatJSON Format = "json" // the signed envelope (see Sealed.Envelope)
	FormatPDF  Format = "pdf"  // a rendering of the bundle for people
)

// ParseFormat parses "json" or "pdf".
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case FormatJSON, FormatPDF:
		return f, nil
	}
	return "", fmt.Errorf("%w: format %q (want json or pdf)", ErrInvalidRequest, s)
}

// Bundle is one of *EvidenceBundle, *SOC2Bundle and
// *ExecutiveDebriefBundle. The set is closed.
type Bundle interface {
	// Type returns the bundle's type.
	Type() BundleType
	// ID returns the bundle id ("BND-" and 16 hex digits).
	ID() string

	header() *Header
	provenance() *Provenance
}

// Header holds the facts every bundle has: what it is, when it was made,
// whose run and incident it is about, who exported it and why.
type Header struct {
	BundleID   string     `json:"bundle_id"`
	BundleType BundleType `json:"bundle_type"`
	CreatedAt  time.Time  `json:"created_at"`

	TenantID   string `json:"tenant_id"`
	RunID      string `json:"run_id"`
	IncidentID string `json:"incident_id,omitempty"`
	TraceID    string `json:"trace_id"`

	ExportedBy   string `json:"exported_by"`
	ExportReason string `json:"export_reason,omitempty"`
}

// Provenance is what makes a bundle verifiable without the database: the
// whole policy snapshot the run was bound to and every record of the run's
// hash chain, from run_start to run_end. Every bundle type carries it.
type Provenance struct {
	// PolicySnapshotID is the id of Snapshot.
	PolicySnapshotID string `json:"policy_snapshot_id"`
	// Snapshot is the policy snapshot, in its own JSON form (id, content
	// hash, policies, thresholds); Verify recomputes its hash.
	Snapshot *snapshot.PolicySnapshot `json:"snapshot"`
	// Chain is every record of the run's chain, in order.
	Chain []ChainRecord `json:"chain"`
	// HeadHash is the hash of the chain's last record and ChainLength the
	// number of records, as the store held them at export.
	HeadHash    string `json:"head_hash"`
	ChainLength int    `json:"chain_length"`
	// Checkpoint is the latest signed checkpoint of the log that covers
	// this run (a signed note), when one is available.
	Checkpoint string `json:"checkpoint,omitempty"`
}

// ChainRecord is one record of a run's chain: its body, exactly as
// trace.Encode writes it (canonical JSON, without the hashes), and the
// hashes that link it. trace.DecodeRecord(Record, PrevHash, Hash) decodes
// it, and trace.Verify recomputes the chain.
type ChainRecord struct {
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
	Record   json.RawMessage `json:"record"`
}

// RunSummary is the run as the store holds it.
type RunSummary struct {
	Status            governance.RunStatus            `json:"status"`
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

// stepOf derives a step's evidence from its chain record.
func stepOf(r *trace.Record) TraceStepEvidence {
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
