package export_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

func f64(v float64) *float64 { return &v }
func intp(v int) *int        { return &v }

func TestEvidenceBundle(t *testing.T) {
	f := fixture.New(t, nil)
	b, err := f.Exp.Evidence(ctx, export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "alice", Reason: "post-mortem"})
	if err != nil {
		t.Fatal(err)
	}
	at := func(ms int) time.Time { return fixture.T0.Add(time.Duration(ms) * time.Millisecond) }
	wantHeader := bundle.Header{
		BundleID: b.BundleID, BundleType: bundle.TypeEvidence, CreatedAt: fixture.T0.Add(time.Hour),
		TenantID: "acme", RunID: "RUN-0001", IncidentID: "INC-0001", TraceID: "TRA-0001",
		ExportedBy: "alice", ExportReason: "post-mortem",
	}
	if diff := cmp.Diff(wantHeader, b.Header); diff != "" {
		t.Errorf("header (-want +got):\n%s", diff)
	}
	if !strings.HasPrefix(b.BundleID, "BND-") || len(b.BundleID) != 20 {
		t.Errorf("bundle id %q, want BND- and 16 hex digits", b.BundleID)
	}
	// The steps, as an engineer reads them.
	type row struct {
		Index      int
		At         time.Time
		Type       prevention.StepType
		Tool       string
		Tokens     int64
		Status     trace.Status
		Inflection bool
		Decision   bundle.StepDecision
	}
	var got []row
	for _, s := range b.Steps {
		got = append(got, row{s.StepIndex, s.Timestamp, s.StepType, s.Tool + s.Model, s.Tokens, s.Status, s.IsInflection, s.Decision})
	}
	want := []row{
		{0, at(1500), prevention.StepLLMResponse, "μοντέλο-4", 120, trace.StatusOK, false, bundle.StepDecision{Action: prevention.Allow}},
		{1, at(3000), prevention.StepToolCall, "поиск", 10, trace.StatusOK, false, bundle.StepDecision{Action: prevention.Allow}},
		{2, at(4500), prevention.StepToolResult, "検索", 300, trace.StatusWarning, false, bundle.StepDecision{Action: prevention.Warn}},
		{3, at(6000), prevention.StepToolCall, "shell", 15, trace.StatusViolation, true, bundle.StepDecision{
			Action: prevention.Block, PolicyID: "tools", Source: prevention.SourcePolicy, Reason: prevention.ReasonPolicyBlock,
			Message: `tool "shell" is not in the allowlist`, Enforcement: snapshot.EnforceBlock}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if f := b.Steps[2].Findings; len(f) != 1 || f[0].PolicyID != "long-output" || f[0].Enforcement != snapshot.EnforceWarn {
		t.Errorf("warning step findings: %+v", f)
	}
	// Every step carries its hashes, linked in chain order.
	for i, s := range b.Steps {
		if s.RecordHash != b.Chain[i+1].Hash || s.PrevHash != b.Chain[i].Hash || s.Seq != i+1 {
			t.Errorf("step %d: hashes %s / %s seq %d do not match chain record %d", i, s.RecordHash, s.PrevHash, s.Seq, i+1)
		}
		if s.ContentHash == "" {
			t.Errorf("step %d has no content hash", i)
		}
		if s.Content != nil {
			t.Errorf("step %d carries content, not asked for", i)
		}
	}
	if b.ViolatedPolicyID != "tools" || b.ViolationStepIndex == nil || *b.ViolationStepIndex != 3 {
		t.Errorf("violation: %q at %v", b.ViolatedPolicyID, b.ViolationStepIndex)
	}
	wantTotals := bundle.Totals{DurationSeconds: 6, Tokens: 445, CostCents: 4.25}
	if diff := cmp.Diff(wantTotals, b.Totals); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	wantRun := bundle.RunSummary{
		Status: string(governance.StatusFailedPolicy), TerminationReason: prevention.ReasonPolicyBlock, StoppedAtStep: intp(3),
		ViolationPolicyID: "tools", PolicyVersion: 2, Message: `tool "shell" is not in the allowlist`,
		Labels: map[string]string{"agent": "researcher"}, CreatedAt: fixture.T0, StartedAt: &fixture.T0, EndedAt: ptr(at(6000)), StepCount: 4,
	}
	if diff := cmp.Diff(wantRun, b.Run); diff != "" {
		t.Errorf("run (-want +got):\n%s", diff)
	}
	if b.Incident == nil || b.Incident.ID != "INC-0001" || b.Incident.Severity != incident.SeverityCritical {
		t.Errorf("incident: %+v", b.Incident)
	}
	// The whole snapshot and the whole chain, run_start to run_end.
	if b.Snapshot == nil || b.Snapshot.ID() != b.PolicySnapshotID || b.Snapshot.PolicyCount() != 4 {
		t.Fatalf("snapshot: %v", b.Snapshot)
	}
	if len(b.Chain) != 6 || b.ChainLength != 6 || b.HeadHash != b.Chain[5].Hash {
		t.Fatalf("chain of %d records (length %d, head %s)", len(b.Chain), b.ChainLength, b.HeadHash)
	}
	var recs []trace.Record
	for _, c := range b.Chain {
		r, err := trace.DecodeRecord(c.Record, c.PrevHash, c.Hash)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	if head, err := trace.Verify(recs); err != nil || head != b.HeadHash {
		t.Fatalf("chain from the bundle: head %s, %v", head, err)
	}
	if recs[0].Kind != trace.KindRunStart || recs[5].Kind != trace.KindRunEnd {
		t.Errorf("chain kinds: %s … %s", recs[0].Kind, recs[5].Kind)
	}
	if b.Checkpoint != "" {
		t.Errorf("checkpoint %q, want none", b.Checkpoint)
	}

	// The JSON field names of the design.
	raw, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bundle_id", "bundle_type", "created_at", "run_id", "incident_id", "trace_id", "tenant_id",
		"policy_snapshot_id", "violated_policy_id", "violation_step_index", "steps", "total_duration_seconds",
		"total_tokens", "total_cost_cents", "exported_by", "export_reason", "snapshot", "chain", "head_hash"} {
		if _, ok := top[k]; !ok {
			t.Errorf("bundle JSON has no %q", k)
		}
	}
	if _, ok := top["checkpoint"]; ok {
		t.Errorf("empty checkpoint is not omitted")
	}
	var step map[string]json.RawMessage
	var steps []json.RawMessage
	json.Unmarshal(top["steps"], &steps)
	json.Unmarshal(steps[3], &step)
	for _, k := range []string{"step_index", "timestamp", "step_type", "tokens", "cost_cents", "status", "is_inflection",
		"content_hash", "decision", "record_hash", "prev_hash"} {
		if _, ok := step[k]; !ok {
			t.Errorf("step JSON has no %q", k)
		}
	}
}

func ptr[T any](v T) *T { return &v }

func TestEvidenceDecisionCitesThreshold(t *testing.T) {
	f := fixture.New(t, nil)
	b, err := f.Exp.Evidence(ctx, export.Request{TenantID: "acme", IncidentID: "INC-0002"})
	if err != nil {
		t.Fatal(err)
	}
	inf, ok := b.Inflection()
	if !ok {
		t.Fatal("no inflection")
	}
	want := bundle.StepDecision{Action: prevention.Block, PolicyID: "cost-budget", Source: prevention.SourcePolicy,
		Reason: prevention.ReasonBudgetExceeded, Threshold: "max_cost_cents", Limit: f64(100), Observed: f64(120),
		Message: "cumulative cost_cents 120 exceeds max_cost_cents 100", Enforcement: snapshot.EnforceBlock}
	if diff := cmp.Diff(want, inf.Decision); diff != "" {
		t.Errorf("decision (-want +got):\n%s", diff)
	}
	if b.ExportedBy != "system" {
		t.Errorf("exported_by %q, want the default %q", b.ExportedBy, "system")
	}
	// An allowed step of a budget policy: limit and observed are absent
	// only because no threshold decided it.
	if d := b.Steps[0].Decision; d.Limit != nil || d.Observed != nil {
		t.Errorf("allowed step decision cites a threshold: %+v", d)
	}
}

func TestEvidenceForRuns(t *testing.T) {
	f := fixture.New(t, nil)
	tests := []struct {
		name     string
		req      export.Request
		incident string
		steps    int
		status   governance.RunStatus
	}{
		{"completed run by run id", export.Request{TenantID: "acme", RunID: "RUN-0003"}, "", 2, governance.StatusSucceeded},
		{"stopped run by run id includes its incident", export.Request{TenantID: "acme", RunID: "RUN-0002"}, "INC-0002", 2, governance.StatusFailedPolicy},
		{"incident and its run", export.Request{TenantID: "acme", RunID: "RUN-0001", IncidentID: "INC-0001"}, "INC-0001", 4, governance.StatusFailedPolicy},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := f.Exp.Evidence(ctx, tc.req)
			if err != nil {
				t.Fatal(err)
			}
			if b.IncidentID != tc.incident || len(b.Steps) != tc.steps || b.Run.Status != string(tc.status) {
				t.Errorf("got incident %q, %d steps, %s", b.IncidentID, len(b.Steps), b.Run.Status)
			}
			if tc.incident == "" && (b.ViolationStepIndex != nil || b.Incident != nil) {
				t.Errorf("completed run has a violation: %v %v", b.ViolationStepIndex, b.Incident)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	f := fixture.New(t, nil)
	tests := []struct {
		name string
		typ  bundle.Type
		req  export.Request
		want error
	}{
		{"no tenant", bundle.TypeEvidence, export.Request{IncidentID: "INC-0001"}, export.ErrInvalidRequest},
		{"no id", bundle.TypeEvidence, export.Request{TenantID: "acme"}, export.ErrInvalidRequest},
		{"unknown incident", bundle.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-9999"}, governance.ErrNotFound},
		{"unknown run", bundle.TypeEvidence, export.Request{TenantID: "acme", RunID: "RUN-9999"}, governance.ErrNotFound},
		{"another tenant's incident", bundle.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-0003"}, governance.ErrNotFound},
		{"another tenant's run", bundle.TypeSOC2, export.Request{TenantID: "globex", IncidentID: "INC-0001"}, governance.ErrNotFound},
		{"incident of another run", bundle.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-0001", RunID: "RUN-0002"}, export.ErrInvalidRequest},
		{"debrief without incident", bundle.TypeExecutiveDebrief, export.Request{TenantID: "acme", RunID: "RUN-0003"}, export.ErrInvalidRequest},
		{"soc2 half a period", bundle.TypeSOC2, export.Request{TenantID: "acme", IncidentID: "INC-0001", From: fixture.T0}, export.ErrInvalidRequest},
		{"soc2 empty period", bundle.TypeSOC2, export.Request{TenantID: "acme", IncidentID: "INC-0001", From: fixture.T0, To: fixture.T0}, export.ErrInvalidRequest},
		{"soc2 incident outside the period", bundle.TypeSOC2, export.Request{TenantID: "acme", IncidentID: "INC-0001", From: fixture.T0.AddDate(0, 1, 0), To: fixture.T0.AddDate(0, 2, 0)}, export.ErrInvalidRequest},
		{"unknown type", bundle.Type("memo"), export.Request{TenantID: "acme", IncidentID: "INC-0001"}, export.ErrInvalidRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.Exp.Build(ctx, tc.typ, tc.req)
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestSOC2Bundle(t *testing.T) {
	f := fixture.New(t, nil)
	b, err := f.Exp.SOC2(ctx, export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "auditor@example.com", AuditorNotes: "Sample of 2 runs drawn."})
	if err != nil {
		t.Fatal(err)
	}
	if b.BundleType != bundle.TypeSOC2 || b.Type() != bundle.TypeSOC2 {
		t.Errorf("type %q", b.BundleType)
	}
	// Default period: the calendar quarter of the incident.
	q1, q2 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	if !b.CompliancePeriodStart.Equal(q1) || !b.CompliancePeriodEnd.Equal(q2) {
		t.Errorf("period [%v, %v), want Q1 2026", b.CompliancePeriodStart, b.CompliancePeriodEnd)
	}
	// The population: every acme run in the period, never globex's.
	var pop []string
	for _, r := range b.Population {
		pop = append(pop, r.RunID+" "+string(r.Status)+" "+r.IncidentID)
		if r.PolicySnapshotID == "" || r.HeadHash == "" {
			t.Errorf("population run %s without snapshot or head: %+v", r.RunID, r)
		}
	}
	wantPop := []string{"RUN-0001 failed_policy INC-0001", "RUN-0002 failed_policy INC-0002", "RUN-0003 succeeded "}
	if diff := cmp.Diff(wantPop, pop); diff != "" {
		t.Errorf("population (-want +got):\n%s", diff)
	}
	var incs []string
	for _, inc := range b.Incidents {
		incs = append(incs, inc.ID)
	}
	if diff := cmp.Diff([]string{"INC-0001", "INC-0002"}, incs); diff != "" {
		t.Errorf("incidents (-want +got):\n%s", diff)
	}
	wantSummary := bundle.PopulationSummary{Runs: 3, ByStatus: map[string]int{"failed_policy": 2, "succeeded": 1}, StoppedByPolicy: 2,
		Incidents: 2, BySeverity: map[string]int{"critical": 1, "medium": 1}, Snapshots: 1}
	if diff := cmp.Diff(wantSummary, b.PopulationSummary); diff != "" {
		t.Errorf("summary (-want +got):\n%s", diff)
	}
	// Policy versions: v1 (superseded before the runs, but in force early in the quarter) and v2.
	var versions []string
	for _, v := range b.PolicyVersions {
		versions = append(versions, v.PublishedBy+" "+v.SnapshotID[:5]+" "+map[bool]string{true: "in force", false: "not in force"}[v.InForceDuringPeriod])
	}
	if diff := cmp.Diff([]string{"alice SNAP- in force", "bob SNAP- in force"}, versions); diff != "" {
		t.Errorf("versions (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"CC7.2", "CC7.3", "CC7.4", "CC8.1"}, b.ControlObjectives); diff != "" {
		t.Errorf("control objectives (-want +got):\n%s", diff)
	}
	// Every evidence pointer resolves in the bundle's JSON.
	raw, _ := json.Marshal(b)
	var doc any
	json.Unmarshal(raw, &doc)
	for _, c := range b.Controls {
		if len(c.Evidence) == 0 || c.HowMet == "" || c.Objective == "" {
			t.Errorf("control %s without evidence or text", c.ID)
		}
		for _, e := range c.Evidence {
			if !resolves(doc, e.Pointer) {
				t.Errorf("control %s: evidence pointer %q does not resolve", c.ID, e.Pointer)
			}
		}
	}
	cc81 := b.Controls[3]
	if cc81.ID != "CC8.1" || cc81.Evidence[0].Pointer != "/policy_versions" {
		t.Errorf("CC8.1 is not supported by the policy version history: %+v", cc81)
	}
	for _, s := range []string{"acme", "3 agent runs were recorded", "2 runs were stopped by a policy", "Incident INC-0001", "step 3", `"tools"`, b.HeadHash} {
		if !strings.Contains(b.AttestationStatement, s) {
			t.Errorf("attestation lacks %q:\n%s", s, b.AttestationStatement)
		}
	}
	if b.AuditorNotes != "Sample of 2 runs drawn." || len(b.Steps) != 4 || b.Snapshot == nil {
		t.Errorf("SOC2 bundle lacks the evidence: notes %q, %d steps", b.AuditorNotes, len(b.Steps))
	}
}

// resolves reports whether an RFC 6901 JSON Pointer resolves in doc.
func resolves(doc any, ptr string) bool {
	if ptr == "" {
		return true
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch v := doc.(type) {
		case map[string]any:
			var ok bool
			if doc, ok = v[tok]; !ok {
				return false
			}
		case []any:
			i := 0
			for _, c := range tok {
				if c < '0' || c > '9' {
					return false
				}
				i = i*10 + int(c-'0')
			}
			if i >= len(v) {
				return false
			}
			doc = v[i]
		default:
			return false
		}
	}
	return true
}

func TestExecutiveDebrief(t *testing.T) {
	f := fixture.New(t, nil)
	tests := []struct {
		incident string
		risk     bundle.RiskLevel
		ttd      float64
		cost     float64
		steps    int
		phrases  []string
	}{
		{"INC-0001", bundle.RiskCritical, 6, 4.25, 4, []string{
			"1 March 2026 at 09:00:06 UTC", "RUN-0001", "4th step", `before it could use the tool “shell”, which is not on its list of allowed tools`,
			"6 seconds after the run started"}},
		{"INC-0002", bundle.RiskMedium, 3, 120, 2, []string{
			"2nd step", "its cost had reached $1.20, more than its limit of $1.00"}},
	}
	for _, tc := range tests {
		t.Run(tc.incident, func(t *testing.T) {
			b, err := f.Exp.ExecutiveDebrief(ctx, export.Request{TenantID: "acme", IncidentID: tc.incident, ExportedBy: "cfo"})
			if err != nil {
				t.Fatal(err)
			}
			if b.RiskLevel != tc.risk || b.TimeToDetectSeconds != tc.ttd || b.CostIncurredCents != tc.cost || b.StepsTaken != tc.steps {
				t.Errorf("risk %s, time to detect %v, cost %v, steps %d; want %s, %v, %v, %d",
					b.RiskLevel, b.TimeToDetectSeconds, b.CostIncurredCents, b.StepsTaken, tc.risk, tc.ttd, tc.cost, tc.steps)
			}
			for _, p := range tc.phrases {
				if !strings.Contains(b.IncidentSummary, p) {
					t.Errorf("summary lacks %q:\n%s", p, b.IncidentSummary)
				}
			}
			if b.BusinessImpact == "" || b.PolicyViolated == "" || len(b.RecommendedActions) < 2 || b.RemediationStatus != "Open: not yet acknowledged by anyone." {
				t.Errorf("debrief incomplete: %+v", b)
			}
			// Deterministic: built again, the same text.
			again, err := f.Exp.ExecutiveDebrief(ctx, export.Request{TenantID: "acme", IncidentID: tc.incident, ExportedBy: "cfo"})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(b, again, cmp.Comparer(func(a, b *snapshot.PolicySnapshot) bool { return a.ContentHash() == b.ContentHash() })); diff != "" {
				t.Errorf("debrief differs when built again (-first +second):\n%s", diff)
			}
		})
	}
	// The incident's lifecycle shows in the remediation status.
	inc, _ := f.Store.Incident(ctx, "acme", "INC-0001")
	inc, _ = inc.Transition(incident.StatusResolved, "dana", "shell removed from the agent's prompt", fixture.T0.Add(2*time.Hour))
	if err := f.Store.UpdateIncident(ctx, inc); err != nil {
		t.Fatal(err)
	}
	b, err := f.Exp.ExecutiveDebrief(ctx, export.Request{TenantID: "acme", IncidentID: "INC-0001"})
	if err != nil {
		t.Fatal(err)
	}
	if want := "Resolved by dana on 1 March 2026 at 11:00:00 UTC: shell removed from the agent's prompt"; b.RemediationStatus != want {
		t.Errorf("remediation status %q, want %q", b.RemediationStatus, want)
	}
}

func TestRiskFor(t *testing.T) {
	tests := []struct {
		reason  prevention.RunTerminationReason
		step    prevention.StepType
		similar int
		want    bundle.RiskLevel
	}{
		{prevention.ReasonPolicyBlock, prevention.StepToolCall, 0, bundle.RiskCritical},
		{prevention.ReasonPolicyBlock, prevention.StepLLMResponse, 0, bundle.RiskHigh},
		{prevention.ReasonPolicyBlock, prevention.StepLLMResponse, 2, bundle.RiskCritical},
		{prevention.ReasonSystemFailure, prevention.StepToolCall, 0, bundle.RiskHigh},
		{prevention.ReasonBudgetExceeded, prevention.StepLLMResponse, 0, bundle.RiskMedium},
		{prevention.ReasonBudgetExceeded, prevention.StepLLMResponse, 1, bundle.RiskMedium},
		{prevention.ReasonBudgetExceeded, prevention.StepLLMResponse, 2, bundle.RiskHigh},
		{prevention.ReasonTimeout, prevention.StepMessage, 0, bundle.RiskMedium},
		{prevention.ReasonRateLimited, prevention.StepToolCall, 0, bundle.RiskLow},
		{prevention.ReasonRateLimited, prevention.StepToolCall, 5, bundle.RiskMedium},
		{prevention.ReasonPolicyBlock, prevention.StepToolCall, 9, bundle.RiskCritical},
	}
	for _, tc := range tests {
		got, why := export.RiskFor(tc.reason, tc.step, tc.similar)
		if got != tc.want || why == "" {
			t.Errorf("RiskFor(%s, %s, %d) = %s (%q), want %s", tc.reason, tc.step, tc.similar, got, why, tc.want)
		}
	}
}

func TestBundleIDIsDeterministic(t *testing.T) {
	f := fixture.New(t, nil)
	req := export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "alice"}
	a, _ := f.Exp.Evidence(ctx, req)
	b, _ := f.Exp.Evidence(ctx, req)
	req.Reason = "another reason"
	c, _ := f.Exp.Evidence(ctx, req)
	if a.BundleID != b.BundleID || a.BundleID == c.BundleID {
		t.Errorf("ids %s, %s (same request) and %s (other reason)", a.BundleID, b.BundleID, c.BundleID)
	}
	sa, _ := f.Exp.Seal(a)
	sb, _ := f.Exp.Seal(b)
	var ea, eb bytes.Buffer
	sa.WriteTo(&ea)
	sb.WriteTo(&eb)
	if sa.Hash != sb.Hash || ea.String() != eb.String() {
		t.Errorf("same bundle, different seals: %s %s", sa.Hash, sb.Hash)
	}
}

func TestExportRecordsTheExportLog(t *testing.T) {
	f := fixture.New(t, nil)
	for _, tc := range []struct {
		typ bundle.Type
		f   export.Format
	}{{bundle.TypeEvidence, export.FormatJSON}, {bundle.TypeEvidence, export.FormatPDF}, {bundle.TypeSOC2, export.FormatPDF}, {bundle.TypeExecutiveDebrief, export.FormatJSON}} {
		a, err := f.Exp.Export(ctx, tc.typ, export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "alice", Reason: "audit"}, tc.f)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.typ, tc.f, err)
		}
		want := governance.ExportRecord{TenantID: "acme", BundleID: a.Sealed.Bundle.ID(), BundleType: string(tc.typ), Format: string(tc.f),
			BundleHash: a.Sealed.Hash, RunID: "RUN-0001", IncidentID: "INC-0001", KeyID: bundle.KeyID(f.Pub),
			ExportedBy: "alice", Reason: "audit", CreatedAt: fixture.T0.Add(time.Hour)}
		if diff := cmp.Diff(want, a.Record); diff != "" {
			t.Errorf("%s %s record (-want +got):\n%s", tc.typ, tc.f, diff)
		}
	}
	// The same export again is recorded once, and is not an error.
	if _, err := f.Exp.Export(ctx, bundle.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "alice", Reason: "audit"}, export.FormatJSON); err != nil {
		t.Fatalf("same export again: %v", err)
	}
	log, err := f.Store.Exports(ctx, governance.ExportFilter{TenantID: "acme", IncidentID: "INC-0001"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range log {
		got = append(got, e.BundleType+"/"+e.Format)
	}
	if diff := cmp.Diff([]string{"executive_debrief/json", "soc2/pdf", "evidence/pdf", "evidence/json"}, got); diff != "" {
		t.Errorf("export log, newest first (-want +got):\n%s", diff)
	}
}

func TestExportRefusesTamperedStore(t *testing.T) {
	f := fixture.New(t, nil)
	bad := &tamperedStore{Store: f.Store}
	exp, err := export.New(bad)
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []bundle.Type{bundle.TypeEvidence, bundle.TypeSOC2, bundle.TypeExecutiveDebrief} {
		_, err := exp.Build(ctx, typ, export.Request{TenantID: "acme", IncidentID: "INC-0001"})
		if !errors.Is(err, export.ErrStoreIntegrity) || !errors.Is(err, bundle.ErrRecordChanged) {
			t.Errorf("%s from a tampered store: got %v, want ErrStoreIntegrity and ErrRecordChanged", typ, err)
		}
	}
	if log, _ := f.Store.Exports(ctx, governance.ExportFilter{TenantID: "acme"}); len(log) != 0 {
		t.Errorf("failed exports were logged: %+v", log)
	}
}

// tamperedStore changes a step's tokens as a writer with database access
// could.
type tamperedStore struct{ governance.Store }

func (s *tamperedStore) Records(c context.Context, tenant, run string) ([]trace.Record, error) {
	recs, err := s.Store.Records(c, tenant, run)
	if len(recs) > 2 {
		recs[2].Tokens++
	}
	return recs, err
}

// TestHookAndFailureIncidents exports incidents made by a Go hook and by
// a hook that failed: the bundles verify and the debrief says so in words.
func TestHookAndFailureIncidents(t *testing.T) {
	st := memstore.New()
	clock := governance.NewFakeClock(fixture.T0)
	hooks := governance.WithHooks(prevention.NamedHook{ID: "pii-guard", Hook: prevention.HookFunc(
		func(_ context.Context, s *prevention.Step) (prevention.Decision, error) {
			switch s.Output {
			case "ssn":
				return prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonPolicyBlock, Message: "personal data"}, nil
			case "crash":
				return prevention.Decision{}, errors.New("classifier unavailable")
			}
			return prevention.Allowed(), nil
		})})
	r, err := governance.NewRunner(st, governance.WithKinds(fixture.Kinds), governance.WithClock(clock), governance.WithIDGenerator(fixture.IDs()), hooks)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{"ssn", "crash"} {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: fixture.Policy(t, "acme", 50, fixture.T0)})
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second)
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Output: out}); err == nil {
			t.Fatalf("%s: not stopped", out)
		}
	}
	key := fixture.Key("hooks")
	exp, err := export.New(st, export.WithSigner(key), export.WithClock(clock), export.WithRenderer(fixture.Renderer(t)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		incident string
		risk     bundle.RiskLevel
		phrase   string
	}{
		{"INC-0001", bundle.RiskHigh, "a safeguard built into the application (“pii-guard”)"},
		{"INC-0002", bundle.RiskHigh, "a safety check could not be completed"},
	}
	for _, tc := range tests {
		for _, typ := range []bundle.Type{bundle.TypeEvidence, bundle.TypeSOC2, bundle.TypeExecutiveDebrief} {
			a, err := exp.Export(ctx, typ, export.Request{TenantID: "acme", IncidentID: tc.incident}, export.FormatJSON)
			if err != nil {
				t.Fatalf("%s %s: %v", tc.incident, typ, err)
			}
			v, err := bundle.Verify(dataOf(t, a), key.Public().(ed25519.PublicKey))
			if err != nil {
				t.Fatalf("%s %s: %v", tc.incident, typ, err)
			}
			if d, ok := v.Bundle.(*bundle.ExecutiveDebrief); ok {
				if d.RiskLevel != tc.risk || !strings.Contains(d.IncidentSummary, tc.phrase) {
					t.Errorf("%s: risk %s, summary %q", tc.incident, d.RiskLevel, d.IncidentSummary)
				}
			}
		}
		if _, err := exp.Export(ctx, bundle.TypeExecutiveDebrief, export.Request{TenantID: "acme", IncidentID: tc.incident}, export.FormatPDF); err != nil {
			t.Errorf("%s PDF: %v", tc.incident, err)
		}
	}
}
