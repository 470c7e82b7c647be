package trace

import (
	"fmt"
	"time"

	"github.com/stopline/stopline/prevention"
)

// Kind is the kind of a trace record.
type Kind string

// Record kinds. A run's chain is one RunStart, its steps in order, and
// (once the run has ended) one RunEnd that closes the chain.
const (
	KindRunStart Kind = "run_start"
	KindStep     Kind = "step"
	KindRunEnd   Kind = "run_end"
)

// Status is a step's status in the trace.
type Status string

// Step statuses.
const (
	// StatusOK: every policy allowed the step.
	StatusOK Status = "ok"
	// StatusWarning: a warn- or monitor-mode policy fired; the run went on.
	StatusWarning Status = "warning"
	// StatusViolation: a policy blocked the step; the run stopped here.
	StatusViolation Status = "violation"
)

// StatusOf maps an evaluation to the step status it is recorded with.
func StatusOf(ev prevention.Evaluation) Status {
	switch {
	case ev.Decision.Action == prevention.Allow && len(ev.Findings) == 0:
		return StatusOK
	case ev.Decision.Action == prevention.Allow || ev.Decision.Action == prevention.Warn:
		return StatusWarning
	default:
		return StatusViolation
	}
}

// Record is one entry of a run's hash chain. Every record carries the run,
// tenant and snapshot it belongs to; a step record carries the step, the
// decision and every finding with the thresholds they applied, so the
// hashed bytes say what was decided and under which limits.
//
// Hash = sha256(domain || prev || canonical body), where domain is
// "stopline/trace/v1" and a zero byte, prev is the previous record's hash
// (32 zero bytes for the first record), and the body is the record's
// canonical JSON without prev_hash and hash. See Encode.
type Record struct {
	TenantID   string    `json:"tenant_id"`
	RunID      string    `json:"run_id"`
	Seq        int       `json:"seq"` // position in the chain, from 0
	Kind       Kind      `json:"kind"`
	At         time.Time `json:"at"`
	SnapshotID string    `json:"snapshot_id"`

	// Run start.
	SnapshotHash string `json:"snapshot_hash,omitempty"`
	// Retention is how the run keeps its steps' content: "" (in full),
	// RetentionRedacted or RetentionHashes. Run start only.
	Retention Retention `json:"retention,omitempty"`
	// ShadowSnapshotID and ShadowSnapshotHash bind a run to a second
	// snapshot evaluated beside the enforcing one at every step, whose
	// decisions are recorded (ShadowDecision) and never stop the run.
	// Run start only.
	ShadowSnapshotID   string `json:"shadow_snapshot_id,omitempty"`
	ShadowSnapshotHash string `json:"shadow_snapshot_hash,omitempty"`

	// Step (StepIndex is -1 on other kinds).
	StepIndex      int                   `json:"step_index"`
	StepType       prevention.StepType   `json:"step_type,omitempty"`
	Model          string                `json:"model,omitempty"`
	Tool           string                `json:"tool,omitempty"`
	Tokens         int64                 `json:"tokens,omitempty"`
	CostCents      float64               `json:"cost_cents,omitempty"`
	TotalTokens    int64                 `json:"total_tokens,omitempty"`
	TotalCostCents float64               `json:"total_cost_cents,omitempty"`
	ContentHash    string                `json:"content_hash,omitempty"`
	Status         Status                `json:"status,omitempty"`
	Inflection     bool                  `json:"inflection,omitempty"`
	Decision       *prevention.Decision  `json:"decision,omitempty"`
	Findings       []prevention.Decision `json:"findings,omitempty"`
	// KeptContentHash, on a step of a run that does not keep content in
	// full, is the content hash (ContentHashOf) of what was kept of it,
	// when that is not the content itself: the content redacted, or
	// under RetentionHashes only the runner's own metadata
	// ("stopline.withheld"), often nothing (""). ContentHash stays the hash
	// of what the step said.
	KeptContentHash string `json:"kept_content_hash,omitempty"`
	// ShadowDecision and ShadowFindings are the shadow snapshot's
	// evaluation of the step, on every step of a run that has one. They
	// decide nothing.
	ShadowDecision *prevention.Decision  `json:"shadow_decision,omitempty"`
	ShadowFindings []prevention.Decision `json:"shadow_findings,omitempty"`
	// Approval is, on a step a policy or hook held for a person, the
	// hold and its answer. Records without it hash as before it existed.
	Approval *Approval `json:"approval,omitempty"`

	// Run end.
	RunStatus         string                          `json:"run_status,omitempty"`
	Reason            prevention.RunTerminationReason `json:"reason,omitempty"`
	StoppedAtStep     *int                            `json:"stopped_at_step,omitempty"`
	ViolationPolicyID string                          `json:"violation_policy_id,omitempty"`
	IncidentID        string                          `json:"incident_id,omitempty"`
	Message           string                          `json:"message,omitempty"`

	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// Retention says how a run keeps its steps' content (recorded in its
// run_start record). The record always binds the content's hash; what is
// stored beside it differs.
type Retention string

// Retentions, from the most kept to the least.
const (
	// RetentionFull keeps each step's input, output and metadata as
	// they were (stored as "" in a record: runs before retention existed
	// kept content in full, and hash as they did).
	RetentionFull Retention = "full"
	// RetentionRedacted keeps each step's content with the matches of
	// the run's content policies masked (RedactMask).
	RetentionRedacted Retention = "redacted"
	// RetentionHashes keeps only each step's content hash.
	RetentionHashes Retention = "hashes"
)

// RedactMask replaces each match of a content policy in content kept
// redacted.
const RedactMask = "[redacted]"

// Valid reports whether r is one of the retentions.
func (r Retention) Valid() bool {
	return r == RetentionFull || r == RetentionRedacted || r == RetentionHashes
}

// Effective returns r, or RetentionFull for "" (a run_start record that
// states none).
func (r Retention) Effective() Retention {
	if r == "" {
		return RetentionFull
	}
	return r
}

// Keeps reports whether content kept under r keeps at least what
// content kept under other keeps: full keeps more than redacted, which
// keeps more than hashes.
func (r Retention) Keeps(other Retention) bool {
	return retentionRank(r.Effective()) <= retentionRank(other.Effective())
}

func retentionRank(r Retention) int {
	switch r {
	case RetentionFull:
		return 0
	case RetentionRedacted:
		return 1
	}
	return 2
}

// ParseRetention reads "full", "redacted" or "hashes".
func ParseRetention(s string) (Retention, error) {
	r := Retention(s)
	if !r.Valid() {
		return "", fmt.Errorf("trace: retention %q: want full, redacted or hashes", s)
	}
	return r, nil
}

// Answers to a hold, as an Approval records them.
const (
	// AnswerApproved: a person approved the step; it passed.
	AnswerApproved = "approved"
	// AnswerDenied: a person denied the step; the run stopped
	// (policy_block).
	AnswerDenied = "denied"
	// AnswerExpired: nobody answered before the deadline; the run
	// stopped (timeout).
	AnswerExpired = "expired"
	// AnswerCancelled: the wait ended without an answer — the caller
	// cancelled, the kill switch was pulled, the run was recovered —;
	// the run stopped (user_abort, or system_failure when recovered).
	AnswerCancelled = "cancelled"
)

// Approval is the hold of a step and its answer, recorded in the step's
// record when the answer is known: which hold (HoldID), when it was
// requested and until when it could wait, the answer (AnswerApproved,
// AnswerDenied, AnswerExpired, AnswerCancelled), who gave it, why, and
// when. The policy that held the step is the record's finding with
// Action HoldForApproval.
type Approval struct {
	HoldID      string    `json:"hold_id"`
	RequestedAt time.Time `json:"requested_at"`
	Deadline    time.Time `json:"deadline"`
	Answer      string    `json:"answer"`
	By          string    `json:"by,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	AnsweredAt  time.Time `json:"answered_at"`
}

// Content is what a step said: its input and output text and metadata.
// It is stored beside the record, not inside the hashed body, and bound to
// it by the record's ContentHash: an export can leave the text out without
// breaking the chain, and any stored text can be checked against its hash.
type Content struct {
	Input    string            `json:"input,omitempty"`
	Output   string            `json:"output,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Inflection is the point of a trace where a run was stopped: the step, its
// time, the policy and the reason.
type Inflection struct {
	StepIndex int                             `json:"step_index"`
	At        time.Time                       `json:"timestamp"`
	PolicyID  string                          `json:"policy_id"`
	Reason    prevention.RunTerminationReason `json:"reason"`
	Seq       int                             `json:"seq"`
	Hash      string                          `json:"hash"`
}

// InflectionOf returns the inflection point of a run's records, if any.
func InflectionOf(records []Record) (Inflection, bool) {
	for _, r := range records {
		if r.Kind == KindStep && r.Inflection {
			inf := Inflection{StepIndex: r.StepIndex, At: r.At, Seq: r.Seq, Hash: r.Hash}
			if r.Decision != nil {
				inf.PolicyID = r.Decision.PolicyID
				inf.Reason = r.Decision.Reason
			}
			return inf, true
		}
	}
	return Inflection{}, false
}
