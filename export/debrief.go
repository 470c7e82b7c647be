package export

import (
	"context"
	"fmt"
	"time"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/words"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

var riskOrder = []bundle.RiskLevel{bundle.RiskLow, bundle.RiskMedium, bundle.RiskHigh, bundle.RiskCritical}

// SimilarWindow is how far back RiskFor's repeat rule looks.
const SimilarWindow = 30 * 24 * time.Hour

// RiskFor is the documented risk level of an incident. The first rule
// that applies gives the base level:
//
//  1. critical: a content, tool or expression policy (reason policy_block)
//     blocked a tool call: the agent tried to take an action it is not
//     allowed to take.
//  2. high: any other policy_block (forbidden content in a response, a
//     tool result or a message), or system_failure (a safety check could
//     not be made, so the run was stopped without it).
//  3. medium: budget_exceeded or timeout: spending or running time
//     reached its limit; also any reason not listed here.
//  4. low: rate_limited: the agent acted faster than allowed.
//
// Then the level is raised by one (up to critical) when the same policy
// stopped at least two other runs of the tenant in the 30 days before
// (similar >= 2): a repeated stop is a pattern, not an accident.
//
// It returns the level and the rationale in one sentence.
func RiskFor(reason prevention.RunTerminationReason, blocked prevention.StepType, similar int) (bundle.RiskLevel, string) {
	var (
		level bundle.RiskLevel
		why   string
	)
	switch {
	case reason == prevention.ReasonPolicyBlock && blocked == prevention.StepToolCall:
		level, why = bundle.RiskCritical, "the agent tried to take an action it is not allowed to take (rule 1)"
	case reason == prevention.ReasonPolicyBlock:
		level, why = bundle.RiskHigh, "the agent produced or received content a policy forbids (rule 2)"
	case reason == prevention.ReasonSystemFailure:
		level, why = bundle.RiskHigh, "a safety check could not be made, so the run was stopped without it (rule 2)"
	case reason == prevention.ReasonRateLimited:
		level, why = bundle.RiskLow, "the agent acted faster than allowed (rule 4)"
	case reason == prevention.ReasonBudgetExceeded:
		level, why = bundle.RiskMedium, "the run's spending reached its limit (rule 3)"
	case reason == prevention.ReasonTimeout:
		level, why = bundle.RiskMedium, "the run's running time reached its limit (rule 3)"
	default:
		level, why = bundle.RiskMedium, fmt.Sprintf("the run was stopped (%s) (rule 3)", reason)
	}
	if similar >= 2 {
		i := min(indexOf(riskOrder, level)+1, len(riskOrder)-1)
		if riskOrder[i] != level {
			level = riskOrder[i]
			why += fmt.Sprintf(", raised one level because the same policy stopped %s in the previous 30 days (repeat rule)", words.Plural(similar, "other run", "other runs"))
		}
	}
	return level, words.Capitalize(string(level)) + ": " + why + "."
}

func indexOf(levels []bundle.RiskLevel, l bundle.RiskLevel) int {
	for i, x := range levels {
		if x == l {
			return i
		}
	}
	return 1
}

// ExecutiveDebrief builds the executive debrief of an incident.
func (e *Exporter) ExecutiveDebrief(ctx context.Context, req Request) (*bundle.ExecutiveDebrief, error) {
	if err := req.validate(bundle.TypeExecutiveDebrief); err != nil {
		return nil, err
	}
	d, err := e.load(ctx, &req)
	if err != nil {
		return nil, err
	}
	if d.inc == nil {
		return nil, fmt.Errorf("%w: run %s", ErrNoIncident, d.run.RunID)
	}
	inf, ok := trace.InflectionOf(d.records)
	var rec *trace.Record
	for i := range d.records {
		if d.records[i].Kind == trace.KindStep && d.records[i].Inflection {
			rec = &d.records[i]
			break
		}
	}
	if !ok || rec == nil {
		return nil, fmt.Errorf("%w: incident %s: run %s has no inflection point in its chain", ErrStoreIntegrity, d.inc.ID, d.run.RunID)
	}
	prior, err := e.store.Incidents(ctx, governance.IncidentFilter{
		TenantID: req.TenantID, From: d.inc.CreatedAt.Add(-SimilarWindow), To: d.inc.CreatedAt,
	})
	if err != nil {
		return nil, fmt.Errorf("export: incidents of tenant %q: %w", req.TenantID, err)
	}
	similar := 0
	for _, p := range prior {
		if p.ID != d.inc.ID && p.PolicyID == d.inc.PolicyID {
			similar++
		}
	}
	b := &bundle.ExecutiveDebrief{
		Header: d.header(bundle.TypeExecutiveDebrief, &req, e.clock.Now()), Provenance: d.provenance(),
		ViolatedPolicyID: inf.PolicyID, ViolationStepIndex: inf.StepIndex, ViolationTime: inf.At.UTC(),
		RunStartedAt: d.runStart(), CostIncurredCents: rec.TotalCostCents, StepsTaken: inf.StepIndex + 1,
		SimilarIncidents: similar, IncidentStatus: d.inc.Status,
	}
	b.TimeToDetectSeconds = b.ViolationTime.Sub(b.RunStartedAt).Seconds()
	b.RiskLevel, b.RiskRationale = RiskFor(inf.Reason, rec.StepType, similar)
	b.PolicyViolated = policyInWords(d.snap, inf.PolicyID)
	b.IncidentSummary = incidentSummary(b, rec, d.snap)
	b.BusinessImpact = businessImpact(b, rec)
	b.RecommendedActions = recommendedActions(b, rec, d.snap, d.inc)
	b.RemediationStatus = remediationStatus(d.inc)
	if b.BundleID, err = e.bundleID(&b.Header, b.HeadHash, &req); err != nil {
		return nil, err
	}
	if err := checkBuilt(b); err != nil {
		return nil, err
	}
	return b, nil
}

// blockedBecause says, in words, why the step was blocked.
func blockedBecause(rec *trace.Record, snap *snapshot.PolicySnapshot) string {
	d := rec.Decision
	if d == nil {
		return "because a policy blocked it"
	}
	if d.Reason == prevention.ReasonSystemFailure {
		return "because a safety check could not be completed, so the run was stopped as a precaution"
	}
	p, inSnapshot := snap.Policy(d.PolicyID)
	if d.Source == prevention.SourceHook || !inSnapshot {
		return fmt.Sprintf("because a safeguard built into the application (%s) blocked it", words.Quote(d.PolicyID))
	}
	pp := paramsOf(p)
	switch p.Kind {
	case "budget":
		switch pp.Metric {
		case "tokens":
			return fmt.Sprintf("because it had processed %s tokens of text, more than its limit of %s", words.Count(int64(d.Observed)), words.Count(int64(d.Limit)))
		case "cost_cents":
			return fmt.Sprintf("because its cost had reached %s, more than its limit of %s", words.Money(d.Observed), words.Money(d.Limit))
		case "steps":
			return fmt.Sprintf("because it had taken %s, more than its limit of %s", words.Plural(int(d.Observed), "step", "steps"), words.Count(int64(d.Limit)))
		}
	case "rate_limit":
		return fmt.Sprintf("because it was acting too fast: %s in a short window, more than the %s allowed", words.Plural(int(d.Observed), "step", "steps"), words.Count(int64(d.Limit)))
	case "timeout":
		return fmt.Sprintf("because it had been running for %s, longer than the %s allowed", words.Seconds(d.Observed), words.Seconds(d.Limit))
	case "content":
		fields := pp.Fields
		if len(fields) == 0 {
			fields = []string{"output"}
		}
		return fmt.Sprintf("because the agent's %s contained text that a content rule forbids", words.List(fields))
	case "tool_allowlist":
		return fmt.Sprintf("before it could use the tool %s, which is not on its list of allowed tools", words.Quote(rec.Tool))
	case "tool_denylist":
		return fmt.Sprintf("before it could use the tool %s, which it is not allowed to use", words.Quote(rec.Tool))
	case "expression":
		return fmt.Sprintf("because a custom rule (%s) matched what it was doing", words.Quote(p.ID))
	}
	return fmt.Sprintf("because the policy %s blocked it", words.Quote(d.PolicyID))
}

func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return words.Count(int64(n)) + suffix
}

func incidentSummary(b *bundle.ExecutiveDebrief, rec *trace.Record, snap *snapshot.PolicySnapshot) string {
	return fmt.Sprintf("On %s, stopline stopped an automated agent run (%s) at its %s step, %s. The stop came %s after the run started, and the blocked step had no further effect. Incident %s was opened at the same moment.",
		words.When(b.ViolationTime), b.RunID, ordinal(b.StepsTaken), blockedBecause(rec, snap), words.Seconds(b.TimeToDetectSeconds), b.IncidentID)
}

func businessImpact(b *bundle.ExecutiveDebrief, rec *trace.Record) string {
	s := fmt.Sprintf("The agent took %s and spent %s before it was stopped, the blocked step included. ",
		words.Plural(b.StepsTaken, "step", "steps"), words.Money(b.CostIncurredCents))
	switch rec.StepType {
	case prevention.StepToolCall:
		s += "The blocked action was never carried out. "
	case prevention.StepLLMResponse:
		s += "The blocked response had already been written (and paid for) by the AI model, but was not passed on. "
	case prevention.StepToolResult:
		s += "The tool had already run; its result was kept from the agent. "
	default:
		s += "The blocked message was not passed on. "
	}
	switch reasonOf(rec) {
	case prevention.ReasonBudgetExceeded:
		s += "Spending stopped at the limit the policy sets; the overrun is limited to the one step that crossed it. "
	case prevention.ReasonSystemFailure:
		s += "The run was stopped as a precaution because a check failed, not because the agent misbehaved. "
	case prevention.ReasonPolicyBlock:
		s += "The safeguard worked as intended: the agent was stopped at the moment it did something it is not allowed to do. "
	default:
		s += "The limit worked as intended and stopped the run at the step that crossed it. "
	}
	return s + "Whatever the run was doing is unfinished and may need to be redone once the cause is addressed."
}

func reasonOf(rec *trace.Record) prevention.RunTerminationReason {
	if rec.Decision == nil {
		return ""
	}
	return rec.Decision.Reason
}

func recommendedActions(b *bundle.ExecutiveDebrief, rec *trace.Record, snap *snapshot.PolicySnapshot, inc *incident.Incident) []string {
	var out []string
	kind := ""
	if p, ok := snap.Policy(b.ViolatedPolicyID); ok && (rec.Decision == nil || rec.Decision.Source != prevention.SourceHook) {
		kind = p.Kind
	}
	switch {
	case reasonOf(rec) == prevention.ReasonSystemFailure:
		out = append(out, "Have engineering fix the check that failed: while it fails, runs are stopped for safety.")
	case kind == "tool_allowlist" || kind == "tool_denylist":
		out = append(out, fmt.Sprintf("Confirm with the team that owns this agent whether it should ever use the tool %s. If not, nothing needs to change; if it should, change the tool list through the normal, reviewed policy change.", words.Quote(rec.Tool)))
	case kind == "content":
		out = append(out, "Find out where the forbidden text came from (the user's request, a tool's result or the AI model) and whether the data needs protecting at its source.")
	case kind == "budget":
		out = append(out, "Find out why this run needed more than its budget (a loop, an unusually large task, a change to the agent). Raise the limit only through a reviewed policy change.")
	case kind == "rate_limit":
		out = append(out, "Check whether the agent was stuck in a loop or retrying too fast, and fix that before raising the limit.")
	case kind == "timeout":
		out = append(out, "Check why the run took so long (a slow tool, a loop, a task too large) before raising the time limit.")
	default:
		out = append(out, fmt.Sprintf("Ask the team that owns the rule %s to review the blocked step and confirm the rule stopped it for the right reason.", words.Quote(b.ViolatedPolicyID)))
	}
	if b.SimilarIncidents > 0 {
		out = append(out, fmt.Sprintf("The same safeguard stopped %s in the previous 30 days: look for a common cause rather than treating each stop on its own.",
			words.Plural(b.SimilarIncidents, "other run", "other runs")))
	}
	switch inc.Status {
	case incident.StatusOpen:
		out = append(out, "Acknowledge the incident and name an owner for it.")
	case incident.StatusAcknowledged:
		out = append(out, "Resolve the incident once the cause is understood and any follow-up is planned.")
	default:
		out = append(out, "Nothing more is needed on the incident itself; check that the follow-up agreed when it was resolved is done.")
	}
	out = append(out, fmt.Sprintf("Engineers will find every step of the run, with the rule and the limit that applied, in the evidence report for incident %s.", b.IncidentID))
	return out
}

func remediationStatus(inc *incident.Incident) string {
	switch inc.Status {
	case incident.StatusAcknowledged:
		s := "Acknowledged"
		if inc.AcknowledgedBy != "" {
			s += " by " + inc.AcknowledgedBy
		}
		if inc.AcknowledgedAt != nil {
			s += " on " + words.When(*inc.AcknowledgedAt)
		}
		return s + "; not yet resolved."
	case incident.StatusResolved:
		s := "Resolved"
		if inc.ResolvedBy != "" {
			s += " by " + inc.ResolvedBy
		}
		if inc.ResolvedAt != nil {
			s += " on " + words.When(*inc.ResolvedAt)
		}
		if inc.Resolution != "" {
			return s + ": " + inc.Resolution
		}
		return s + "."
	}
	return "Open: not yet acknowledged by anyone."
}
