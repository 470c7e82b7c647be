package export

import (
	"fmt"
	"strconv"
	"strings"
)

// renderDebrief writes the executive debrief (A4 portrait, one or two
// pages): the risk and key figures, then plain-language sections.
func renderDebrief(d *doc, b *ExecutiveDebriefBundle) {
	d.running = fmt.Sprintf("stopline · Executive debrief · incident %s · tenant %s", b.IncidentID, b.TenantID)
	d.newPage()
	d.title("stopline · executive debrief", "Incident "+b.IncidentID+": what happened",
		fmt.Sprintf("Tenant %s · run %s · %s", b.TenantID, b.RunID, when(b.ViolationTime)))
	fill, text := riskColors(b.RiskLevel)
	d.kpis([]kpi{
		{"Risk level", strings.ToUpper(string(b.RiskLevel)), fill, text},
		{"Time to detect", seconds(b.TimeToDetectSeconds), colPanel, colText},
		{"Cost incurred", money(b.CostIncurredCents), colPanel, colText},
		{"Incident status", capitalize(string(b.IncidentStatus)), colPanel, colText},
	})
	w := d.pageW - 2*d.margin
	section := func(title, body string) {
		d.heading(title, 12)
		d.setFont("", 10)
		d.f.SetX(d.margin)
		d.para(w, 5.2, body)
		d.f.SetY(d.f.GetY() + 2)
	}
	section("What happened", b.IncidentSummary)
	section("What it means for the business", b.BusinessImpact)
	section("The rule that applied", b.PolicyViolated)
	section("Why this risk level", b.RiskRationale)

	d.heading("What we recommend", 12)
	d.setFont("", 10)
	for i, a := range b.RecommendedActions {
		ls := d.lines(a, w-8-2*d.cm)
		d.need(float64(len(ls)) * 5.2)
		d.f.SetX(d.margin)
		d.setFont("B", 10)
		d.cell(8, 5.2, strconv.Itoa(i+1)+".", "", 0, "R", false)
		d.setFont("", 10)
		for _, l := range ls {
			d.f.SetX(d.margin + 8)
			d.cell(w-8, 5.2, l, "", 2, "L", false)
		}
		d.f.SetY(d.f.GetY() + 1)
	}
	d.f.SetY(d.f.GetY() + 1)
	section("Where it stands", b.RemediationStatus)

	d.heading("For reference", 20)
	d.setFont("", 8)
	d.facts(d.margin, []fact{
		{"Incident / run", b.IncidentID + " / " + b.RunID},
		{"Stopped", fmt.Sprintf("step %d (%s in all) at %s, by policy %s", b.ViolationStepIndex, plural(b.StepsTaken, "step", "steps"), rfc3339(b.ViolationTime), b.ViolatedPolicyID)},
		{"Policy snapshot", b.PolicySnapshotID + ", content hash " + b.Snapshot.ContentHash()},
		{"Prepared", fmt.Sprintf("%s for %s%s", rfc3339(b.CreatedAt), b.ExportedBy, reasonSuffix(b.ExportReason))},
		{"Bundle SHA-256", d.s.Hash},
	}, 30, w-30, 4.2)
}

func riskColors(l RiskLevel) (fill, text rgb) {
	switch l {
	case RiskLow:
		return colOKFill, colOKText
	case RiskMedium:
		return colWarnFill, colWarnText
	case RiskHigh:
		return rgb{255, 224, 204}, rgb{138, 57, 0}
	}
	return colBadEdge, colWhite
}
