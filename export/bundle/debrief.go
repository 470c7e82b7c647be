package bundle

import (
	"time"

	"github.com/stopline/stopline/incident"
)

// ExecutiveDebrief is the executive debrief: what an incident means for
// the business, in plain words generated deterministically from the
// records (no model is asked): what happened, the business impact, a
// risk level by documented rules (export.RiskFor), the policy violated
// in words, when, how long it took to detect (run start to the blocked
// step), what it cost up to and including the blocked step, what to do
// next, and where the incident stands. It carries the snapshot and chain
// like every bundle, so its figures verify offline.
type ExecutiveDebrief struct {
	Header
	Provenance

	IncidentSummary string    `json:"incident_summary"`
	BusinessImpact  string    `json:"business_impact"`
	RiskLevel       RiskLevel `json:"risk_level"`
	RiskRationale   string    `json:"risk_rationale"`

	// PolicyViolated describes the policy in words; ViolatedPolicyID
	// names it.
	PolicyViolated     string    `json:"policy_violated"`
	ViolatedPolicyID   string    `json:"violated_policy_id"`
	ViolationStepIndex int       `json:"violation_step_index"`
	ViolationTime      time.Time `json:"violation_time"`

	// RunStartedAt is when the run started; TimeToDetectSeconds the time
	// from then to the blocked step.
	RunStartedAt        time.Time `json:"run_started_at"`
	TimeToDetectSeconds float64   `json:"time_to_detect_seconds"`
	// CostIncurredCents is the run's cost up to and including the blocked
	// step; StepsTaken the number of steps, the blocked one included.
	CostIncurredCents float64 `json:"cost_incurred_cents"`
	StepsTaken        int     `json:"steps_taken"`
	// SimilarIncidents counts other incidents of the same policy for the
	// tenant in the 30 days before this one.
	SimilarIncidents int `json:"similar_incidents_30d"`

	RecommendedActions []string        `json:"recommended_actions"`
	IncidentStatus     incident.Status `json:"incident_status"`
	RemediationStatus  string          `json:"remediation_status"`
}

// Type returns TypeExecutiveDebrief.
func (b *ExecutiveDebrief) Type() Type { return b.BundleType }

// ID returns the bundle id.
func (b *ExecutiveDebrief) ID() string { return b.BundleID }

func (b *ExecutiveDebrief) header() *Header         { return &b.Header }
func (b *ExecutiveDebrief) provenance() *Provenance { return &b.Provenance }

// RiskLevel ranks an incident for executives.
type RiskLevel string

// Risk levels, lowest first.
const (
	RiskLow      RiskLevel = "low"
	RiskMedium   RiskLevel = "medium"
	RiskHigh     RiskLevel = "high"
	RiskCritical RiskLevel = "critical"
)
