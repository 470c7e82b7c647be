package export

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
)

// SOC2Bundle is the evidence an auditor needs for one incident and the
// period it falls in: the incident's evidence bundle (flattened into the
// same JSON object), plus the control objectives it supports and which
// evidence supports which control, an attestation statement, the
// compliance period, the population of every run of the tenant created
// in the period (so that a sample can be drawn), the period's incidents,
// and the policy version history (change-management evidence).
type SOC2Bundle struct {
	EvidenceBundle

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
	PolicyVersions []PolicyVersionEvidence `json:"policy_versions"`
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
	Status            governance.RunStatus            `json:"status"`
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

// PolicyVersionEvidence is a published policy version and whether it was
// in force at some time during the period.
type PolicyVersionEvidence struct {
	governance.PolicyVersion
	InForceDuringPeriod bool `json:"in_force_during_period"`
}

// SOC2 control ids this package maps evidence to.
const (
	ControlMonitoring       = "CC7.2"
	ControlEventEvaluation  = "CC7.3"
	ControlIncidentResponse = "CC7.4"
	ControlChangeManagement = "CC8.1"
)

// SOC2 builds the SOC2 bundle of an incident (req.IncidentID) for the
// compliance period [req.From, req.To), by default the calendar quarter
// (UTC) that contains the incident. The incident must lie in the period.
func (e *Exporter) SOC2(ctx context.Context, req Request) (*SOC2Bundle, error) {
	if err := req.validate(TypeSOC2); err != nil {
		return nil, err
	}
	inc, err := e.store.Incident(ctx, req.TenantID, req.IncidentID)
	if err != nil {
		return nil, fmt.Errorf("export: incident %s: %w", req.IncidentID, err)
	}
	if req.From.IsZero() {
		req.From, req.To = quarterOf(inc.CreatedAt)
	}
	req.From, req.To = req.From.UTC(), req.To.UTC()
	if inc.CreatedAt.Before(req.From) || !inc.CreatedAt.Before(req.To) {
		return nil, fmt.Errorf("%w: incident %s was created at %s, outside the compliance period [%s, %s)",
			ErrInvalidRequest, inc.ID, rfc3339(inc.CreatedAt), rfc3339(req.From), rfc3339(req.To))
	}
	ev, d, err := e.evidence(ctx, TypeSOC2, &req, false) // checked whole, below
	if err != nil {
		return nil, err
	}
	b := &SOC2Bundle{
		EvidenceBundle: *ev, CompliancePeriodStart: req.From, CompliancePeriodEnd: req.To, AuditorNotes: req.AuditorNotes,
	}
	runs, err := e.store.Runs(ctx, governance.RunFilter{TenantID: req.TenantID, From: req.From, To: req.To})
	if err != nil {
		return nil, fmt.Errorf("export: runs of tenant %q: %w", req.TenantID, err)
	}
	b.Population = population(runs)
	if b.Incidents, err = e.store.Incidents(ctx, governance.IncidentFilter{TenantID: req.TenantID, From: req.From, To: req.To}); err != nil {
		return nil, fmt.Errorf("export: incidents of tenant %q: %w", req.TenantID, err)
	}
	slices.SortFunc(b.Incidents, func(x, y incident.Incident) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.ID, y.ID)
	})
	if b.Incidents == nil {
		b.Incidents = []incident.Incident{}
	}
	versions, err := e.store.PolicyVersions(ctx, req.TenantID)
	if err != nil {
		return nil, fmt.Errorf("export: policy versions of tenant %q: %w", req.TenantID, err)
	}
	b.PolicyVersions = versionsInPeriod(versions, req.From, req.To)
	b.PopulationSummary = summarize(b.Population, b.Incidents)
	b.Controls = controls(b)
	for _, c := range b.Controls {
		b.ControlObjectives = append(b.ControlObjectives, c.ID)
	}
	b.AttestationStatement = attestation(b, d)
	if err := checkBuilt(b, d.records); err != nil {
		return nil, err
	}
	return b, nil
}

// quarterOf returns the calendar quarter (UTC) that contains t.
func quarterOf(t time.Time) (from, to time.Time) {
	t = t.UTC()
	q := (int(t.Month()) - 1) / 3
	from = time.Date(t.Year(), time.Month(3*q+1), 1, 0, 0, 0, 0, time.UTC)
	return from, from.AddDate(0, 3, 0)
}

func population(runs []governance.RunRecord) []PopulationRun {
	out := make([]PopulationRun, len(runs))
	for i, r := range runs {
		p := PopulationRun{
			RunID: r.RunID, CreatedAt: r.CreatedAt.UTC(), Status: r.Status, TerminationReason: r.TerminationReason,
			PolicySnapshotID: r.SnapshotID, PolicyVersion: r.PolicyVersion, ViolationPolicyID: r.ViolationPolicyID,
			IncidentID: r.IncidentID, StepCount: r.StepCount, HeadHash: r.HeadHash, ChainLength: r.ChainLength,
		}
		if r.StoppedAtStep != nil {
			v := *r.StoppedAtStep
			p.StoppedAtStep = &v
		}
		out[i] = p
	}
	slices.SortFunc(out, func(x, y PopulationRun) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.RunID, y.RunID)
	})
	return out
}

func summarize(pop []PopulationRun, incs []incident.Incident) PopulationSummary {
	s := PopulationSummary{Runs: len(pop), ByStatus: map[string]int{}, Incidents: len(incs), BySeverity: map[string]int{}}
	snaps := map[string]bool{}
	for _, r := range pop {
		s.ByStatus[string(r.Status)]++
		if r.Status == governance.StatusFailedPolicy {
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

// versionsInPeriod returns the versions published before to, each marked
// in force during [from, to) if it was the active version at some instant
// of the period.
func versionsInPeriod(vs []governance.PolicyVersion, from, to time.Time) []PolicyVersionEvidence {
	out := []PolicyVersionEvidence{}
	for i, v := range vs {
		if !v.PublishedAt.Before(to) {
			continue
		}
		v.PublishedAt = v.PublishedAt.UTC()
		inForce := i == len(vs)-1 || vs[i+1].PublishedAt.After(from)
		out = append(out, PolicyVersionEvidence{PolicyVersion: v, InForceDuringPeriod: inForce})
	}
	return out
}

func controls(b *SOC2Bundle) []Control {
	inflection := "/steps"
	if b.ViolationStepIndex != nil {
		inflection = fmt.Sprintf("/steps/%d/decision", *b.ViolationStepIndex)
	}
	return []Control{
		{
			ID: ControlMonitoring, Title: "Monitoring of system components",
			Objective: "The entity monitors system components and their operation for anomalies that indicate malicious acts, errors or failures affecting its objectives, and analyzes anomalies to determine whether they are security events.",
			HowMet:    "Every step of every agent run is evaluated, before it takes effect, against the immutable policy snapshot the run was bound to when it started; every decision, allowed steps included, is recorded in the run's hash chain.",
			Evidence: []EvidenceRef{
				{"/population", "every run of the period, with the policy snapshot it was bound to and its chain head"},
				{"/population_summary", "counts of runs by status and of runs stopped by a policy"},
				{"/steps", "each step of the incident's run with its decision, status and record hash"},
				{"/chain", "the run's hash chain, which recomputes offline"},
			},
		},
		{
			ID: ControlEventEvaluation, Title: "Evaluation of security events",
			Objective: "The entity evaluates security events to determine whether they could or have resulted in a failure to meet its objectives and, if so, takes action to prevent or address such failures.",
			HowMet:    "Each decision names the policy that made it, the threshold applied, its limit and the value observed; a blocking decision is classified by termination reason, and its incident by a documented severity.",
			Evidence: []EvidenceRef{
				{inflection, "the blocking decision: policy, threshold, limit and observed value"},
				{"/incident", "the incident with its reason and severity"},
				{"/snapshot", "the policies and thresholds in force for the run"},
			},
		},
		{
			ID: ControlIncidentResponse, Title: "Incident response",
			Objective: "The entity responds to identified security incidents by executing a defined incident-response program to understand, contain, remediate and communicate them.",
			HowMet:    "The run was stopped at the violating step (contained before the step took effect); the incident was created in the same transaction as the stop and moves through open, acknowledged and resolved, recording who and when.",
			Evidence: []EvidenceRef{
				{"/run", "the run's final status, termination reason and stopped-at step"},
				{"/incident", "the incident's lifecycle: status, acknowledged and resolved by whom and when"},
				{"/incidents", "every incident of the period with its status"},
			},
		},
		{
			ID: ControlChangeManagement, Title: "Change management",
			Objective: "The entity authorizes, designs, configures, documents, tests, approves and implements changes to infrastructure, data, software and procedures to meet its objectives.",
			HowMet:    "Policies change only by publishing a new immutable, content-hashed snapshot as a new version (who, when, why); a run keeps the snapshot it started with even when policies change during it.",
			Evidence: []EvidenceRef{
				{"/policy_versions", "the policy version history: version, snapshot, content hash, publisher, time and note"},
				{"/snapshot", "the snapshot the incident's run was bound to, with its content hash"},
				{"/population", "the snapshot and policy version each run of the period was bound to"},
			},
		},
	}
}

// attestation is the attestation statement, generated from the records.
func attestation(b *SOC2Bundle, d *runData) string {
	var s strings.Builder
	fmt.Fprintf(&s, "This report was generated by stopline on %s from the governance records of tenant %q, for the compliance period from %s to %s (end excluded). ",
		rfc3339(b.CreatedAt), b.TenantID, rfc3339(b.CompliancePeriodStart), rfc3339(b.CompliancePeriodEnd))
	fmt.Fprintf(&s, "During the period %s recorded; each was bound, when it started, to an immutable policy snapshot identified by its content hash, and each step was evaluated against that snapshot before it took effect. ",
		plural(b.PopulationSummary.Runs, "agent run was", "agent runs were"))
	fmt.Fprintf(&s, "%s stopped by a policy and %s recorded. ",
		plural(b.PopulationSummary.StoppedByPolicy, "run was", "runs were"), plural(b.PopulationSummary.Incidents, "incident was", "incidents were"))
	if inf, ok := b.Inflection(); ok && b.Incident != nil {
		fmt.Fprintf(&s, "Incident %s, the subject of this report, was created in the same transaction that stopped run %s at step %d, by policy %q (%s",
			b.Incident.ID, b.RunID, inf.StepIndex, inf.Decision.PolicyID, inf.Decision.Reason)
		if th := inf.Decision; th.Threshold != "" && th.Limit != nil && th.Observed != nil {
			fmt.Fprintf(&s, ": %s observed %s, limit %s", th.Threshold, decimal(*th.Observed), decimal(*th.Limit))
		}
		s.WriteString("). ")
	}
	fmt.Fprintf(&s, "The run's %d records are hash-chained to head %s, under policy snapshot %s (content hash %s); this bundle verifies offline against its SHA-256 and signature. ",
		len(d.records), b.HeadHash, b.PolicySnapshotID, b.Snapshot.ContentHash())
	s.WriteString("These statements are generated from the records; they do not replace the auditor's own testing of a sample drawn from the population.")
	return s.String()
}
