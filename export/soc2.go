package export

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/words"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
)

// SOC 2 control ids this package maps evidence to (bundle.Control.ID).
const (
	ControlMonitoring       = "CC7.2"
	ControlEventEvaluation  = "CC7.3"
	ControlIncidentResponse = "CC7.4"
	ControlChangeManagement = "CC8.1"
)

// SOC2 builds the SOC2 bundle of an incident (req.IncidentID) for the
// compliance period [req.From, req.To), by default the calendar quarter
// (UTC) that contains the incident. The incident must lie in the period.
func (e *Exporter) SOC2(ctx context.Context, req Request) (*bundle.SOC2, error) {
	if err := req.validate(bundle.TypeSOC2); err != nil {
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
			ErrInvalidRequest, inc.ID, words.RFC3339(inc.CreatedAt), words.RFC3339(req.From), words.RFC3339(req.To))
	}
	ev, d, err := e.evidence(ctx, bundle.TypeSOC2, &req, false) // checked whole, below
	if err != nil {
		return nil, err
	}
	b := &bundle.SOC2{
		Evidence: *ev, CompliancePeriodStart: req.From, CompliancePeriodEnd: req.To, AuditorNotes: req.AuditorNotes,
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
	b.PopulationSummary = bundle.SummaryOf(b.Population, b.Incidents)
	b.Controls = controls(b)
	for _, c := range b.Controls {
		b.ControlObjectives = append(b.ControlObjectives, c.ID)
	}
	b.AttestationStatement = attestation(b, d)
	if err := checkBuilt(b); err != nil {
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

func population(runs []governance.RunRecord) []bundle.PopulationRun {
	out := make([]bundle.PopulationRun, len(runs))
	for i, r := range runs {
		p := bundle.PopulationRun{
			RunID: r.RunID, CreatedAt: r.CreatedAt.UTC(), Status: string(r.Status), TerminationReason: r.TerminationReason,
			PolicySnapshotID: r.SnapshotID, PolicyVersion: r.PolicyVersion, ViolationPolicyID: r.ViolationPolicyID,
			IncidentID: r.IncidentID, StepCount: r.StepCount, HeadHash: r.HeadHash, ChainLength: r.ChainLength,
		}
		if r.StoppedAtStep != nil {
			v := *r.StoppedAtStep
			p.StoppedAtStep = &v
		}
		out[i] = p
	}
	slices.SortFunc(out, func(x, y bundle.PopulationRun) int {
		if c := x.CreatedAt.Compare(y.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(x.RunID, y.RunID)
	})
	return out
}

// versionsInPeriod returns the versions published before to, each marked
// in force during [from, to) if it was the active version at some instant
// of the period.
func versionsInPeriod(vs []governance.PolicyVersion, from, to time.Time) []bundle.PolicyVersion {
	out := []bundle.PolicyVersion{}
	for i, v := range vs {
		if !v.PublishedAt.Before(to) {
			continue
		}
		inForce := i == len(vs)-1 || vs[i+1].PublishedAt.After(from)
		out = append(out, bundle.PolicyVersion{
			TenantID: v.TenantID, Version: v.Version, SnapshotID: v.SnapshotID, ContentHash: v.ContentHash,
			PublishedBy: v.PublishedBy, PublishedAt: v.PublishedAt.UTC(), Note: v.Note, InForceDuringPeriod: inForce,
		})
	}
	return out
}

func controls(b *bundle.SOC2) []bundle.Control {
	inflection := "/steps"
	if b.ViolationStepIndex != nil {
		inflection = fmt.Sprintf("/steps/%d/decision", *b.ViolationStepIndex)
	}
	return []bundle.Control{
		{
			ID: ControlMonitoring, Title: "Monitoring of system components",
			Objective: "The entity monitors system components and their operation for anomalies that indicate malicious acts, errors or failures affecting its objectives, and analyzes anomalies to determine whether they are security events.",
			HowMet:    "Every step of every agent run is evaluated, before it takes effect, against the immutable policy snapshot the run was bound to when it started; every decision, allowed steps included, is recorded in the run's hash chain.",
			Evidence: []bundle.EvidenceRef{
				{Pointer: "/population", Description: "every run of the period, with the policy snapshot it was bound to and its chain head"},
				{Pointer: "/population_summary", Description: "counts of runs by status and of runs stopped by a policy"},
				{Pointer: "/steps", Description: "each step of the incident's run with its decision, status and record hash"},
				{Pointer: "/chain", Description: "the run's hash chain, which recomputes offline"},
			},
		},
		{
			ID: ControlEventEvaluation, Title: "Evaluation of security events",
			Objective: "The entity evaluates security events to determine whether they could or have resulted in a failure to meet its objectives and, if so, takes action to prevent or address such failures.",
			HowMet:    "Each decision names the policy that made it, the threshold applied, its limit and the value observed; a blocking decision is classified by termination reason, and its incident by a documented severity.",
			Evidence: []bundle.EvidenceRef{
				{Pointer: inflection, Description: "the blocking decision: policy, threshold, limit and observed value"},
				{Pointer: "/incident", Description: "the incident with its reason and severity"},
				{Pointer: "/snapshot", Description: "the policies and thresholds in force for the run"},
			},
		},
		{
			ID: ControlIncidentResponse, Title: "Incident response",
			Objective: "The entity responds to identified security incidents by executing a defined incident-response program to understand, contain, remediate and communicate them.",
			HowMet:    "The run was stopped at the violating step (contained before the step took effect); the incident was created in the same transaction as the stop and moves through open, acknowledged and resolved, recording who and when.",
			Evidence: []bundle.EvidenceRef{
				{Pointer: "/run", Description: "the run's final status, termination reason and stopped-at step"},
				{Pointer: "/incident", Description: "the incident's lifecycle: status, acknowledged and resolved by whom and when"},
				{Pointer: "/incidents", Description: "every incident of the period with its status"},
			},
		},
		{
			ID: ControlChangeManagement, Title: "Change management",
			Objective: "The entity authorizes, designs, configures, documents, tests, approves and implements changes to infrastructure, data, software and procedures to meet its objectives.",
			HowMet:    "Policies change only by publishing a new immutable, content-hashed snapshot as a new version (who, when, why); a run keeps the snapshot it started with even when policies change during it.",
			Evidence: []bundle.EvidenceRef{
				{Pointer: "/policy_versions", Description: "the policy version history: version, snapshot, content hash, publisher, time and note"},
				{Pointer: "/snapshot", Description: "the snapshot the incident's run was bound to, with its content hash"},
				{Pointer: "/population", Description: "the snapshot and policy version each run of the period was bound to"},
			},
		},
	}
}

// attestation is the attestation statement, generated from the records.
func attestation(b *bundle.SOC2, d *runData) string {
	var s strings.Builder
	fmt.Fprintf(&s, "This report was generated by stopline on %s from the governance records of tenant %q, for the compliance period from %s to %s (end excluded). ",
		words.Stamp(b.CreatedAt), b.TenantID, words.Stamp(b.CompliancePeriodStart), words.Stamp(b.CompliancePeriodEnd))
	fmt.Fprintf(&s, "During the period %s recorded; each was bound, when it started, to an immutable policy snapshot identified by its content hash, and each step was evaluated against that snapshot before it took effect. ",
		words.Plural(b.PopulationSummary.Runs, "agent run was", "agent runs were"))
	fmt.Fprintf(&s, "%s stopped by a policy and %s recorded. ",
		words.Plural(b.PopulationSummary.StoppedByPolicy, "run was", "runs were"), words.Plural(b.PopulationSummary.Incidents, "incident was", "incidents were"))
	if inf, ok := b.Inflection(); ok && b.Incident != nil {
		fmt.Fprintf(&s, "Incident %s, the subject of this report, was created in the same transaction that stopped run %s at step %d, by policy %q (%s",
			b.Incident.ID, b.RunID, inf.StepIndex, inf.Decision.PolicyID, inf.Decision.Reason)
		if th := inf.Decision; th.Threshold != "" && th.Limit != nil && th.Observed != nil {
			fmt.Fprintf(&s, ": %s observed %s, limit %s", th.Threshold, words.Decimal(*th.Observed), words.Decimal(*th.Limit))
		}
		s.WriteString("). ")
	}
	fmt.Fprintf(&s, "The run's %d records are hash-chained to head %s, under policy snapshot %s (content hash %s); this bundle verifies offline against its SHA-256 and signature. ",
		len(d.records), b.HeadHash, b.PolicySnapshotID, b.Snapshot.ContentHash())
	s.WriteString("These statements are generated from the records; they do not replace the auditor's own testing of a sample drawn from the population.")
	return s.String()
}
