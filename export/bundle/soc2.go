package bundle

import (
	"time"

	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
)

// SOC2 is the SOC 2 bundle: the evidence an auditor needs for one
// incident and the period it falls in: the incident's evidence bundle
// (flattened into the same JSON object), plus the control objectives it supports and which
// evidence supports which control, an attestation statement, the
// compliance period, the population of every run of the tenant created
// in the period (so that a sample can be drawn), the period's incidents,
// and the policy version history (change-management evidence).
type SOC2 struct {
	Evidence

	// ControlObjectives are the ids of the controls in Controls.
	ControlObjectives    []string `json:"control_objectives"`
	AttestationStatement string   `json:"attestation_statement"`
	// The compliance period is [CompliancePeriodStart, CompliancePeriodEnd).
	CompliancePeriodStart time.Time `json:"compliance_period_start"`
	CompliancePeriodEnd   time.Time `json:"compliance_period_end"`
	AuditorNotes          string    `json:"auditor_notes,omitempty"`

	// Controls maps evidence in this bundle to the controls it supports.
	Controls []Control `json:"controls"`

	// Population is every run of the tenant created in the period, oldest
	// first; Incidents every incident created in the period, oldest first.
	Population        []PopulationRun     `json:"population"`
	Incidents         []incident.Incident `json:"incidents"`
	PopulationSummary PopulationSummary   `json:"population_summary"`

	// PolicyVersions is the tenant's policy version history up to the end
	// of the period, oldest first.
	PolicyVersions []PolicyVersion `json:"policy_versions"`
}

// Control is a SOC 2 Trust Services Criterion this bundle holds evidence
// for, and where that evidence is.
type Control struct {
	ID        string `json:"id"` // e.g. "CC7.2"
	Title     string `json:"title"`
	Objective string `json:"objective"` // the criterion, paraphrased
	// HowMet says how stopline's records meet the objective.
	HowMet   string        `json:"how_met"`
	Evidence []EvidenceRef `json:"evidence"`
}

// EvidenceRef points at evidence in the same bundle.
type EvidenceRef struct {
	// Pointer is an RFC 6901 JSON Pointer into the bundle, such as
	// "/policy_versions" or "/steps/3/decision".
	Pointer     string `json:"pointer"`
	Description string `json:"description"`
}

// PopulationRun is one run of the population: enough to draw a sample and
// to ask for each sampled run's evidence bundle.
type PopulationRun struct {
	RunID             string                          `json:"run_id"`
	CreatedAt         time.Time                       `json:"created_at"`
	Status            string                          `json:"status"`
	TerminationReason prevention.RunTerminationReason `json:"termination_reason,omitempty"`
	PolicySnapshotID  string                          `json:"policy_snapshot_id"`
	PolicyVersion     int                             `json:"policy_version,omitempty"`
	StoppedAtStep     *int                            `json:"stopped_at_step"`
	ViolationPolicyID string                          `json:"violation_policy_id,omitempty"`
	IncidentID        string                          `json:"incident_id,omitempty"`
	StepCount         int                             `json:"step_count"`
	HeadHash          string                          `json:"head_hash"`
	ChainLength       int                             `json:"chain_length"`
}

// PopulationSummary counts the population.
type PopulationSummary struct {
	Runs            int            `json:"runs"`
	ByStatus        map[string]int `json:"runs_by_status"`
	StoppedByPolicy int            `json:"runs_stopped_by_policy"`
	Incidents       int            `json:"incidents"`
	BySeverity      map[string]int `json:"incidents_by_severity"`
	Snapshots       int            `json:"distinct_policy_snapshots"`
}

// PolicyVersion is a published version of the tenant's policy set and
// whether it was in force at some time during the period.
type PolicyVersion struct {
	TenantID            string    `json:"tenant_id"`
	Version             int       `json:"version"`
	SnapshotID          string    `json:"snapshot_id"`
	ContentHash         string    `json:"content_hash"`
	PublishedBy         string    `json:"published_by"`
	PublishedAt         time.Time `json:"published_at"`
	Note                string    `json:"note,omitempty"`
	InForceDuringPeriod bool      `json:"in_force_during_period"`
}

// SummaryOf counts a population and the period's incidents. Verify
// checks that a SOC2 bundle's population summary is this.
func SummaryOf(pop []PopulationRun, incs []incident.Incident) PopulationSummary {
	s := PopulationSummary{Runs: len(pop), ByStatus: map[string]int{}, Incidents: len(incs), BySeverity: map[string]int{}}
	snaps := map[string]bool{}
	for _, r := range pop {
		s.ByStatus[r.Status]++
		if r.Status == "failed_policy" {
			s.StoppedByPolicy++
		}
		snaps[r.PolicySnapshotID] = true
	}
	for _, inc := range incs {
		s.BySeverity[string(inc.Severity)]++
	}
	s.Snapshots = len(snaps)
	return s
}
