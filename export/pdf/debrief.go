package pdf

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/words"
	"github.com/stopline/stopline/export/pdf/internal/layout"
)

// renderDebrief writes the executive debrief (A4 portrait, two pages
// most often): the risk and key figures, what happened, the timeline
// chart, then plain-language sections, the facts for reference and the
// reviewer's sign-off.
func renderDebrief(d *layout.Doc, s *bundle.Sealed, b *bundle.ExecutiveDebrief) {
	d.Running = fmt.Sprintf("stopline · Executive debrief · incident %s · tenant %s", b.IncidentID, b.TenantID)
	d.NewPage()
	d.Title("stopline · executive debrief", "Incident "+b.IncidentID+": what happened",
		fmt.Sprintf("Tenant %s · run %s · %s", b.TenantID, b.RunID, words.When(b.ViolationTime)))
	fill, text := riskColors(b.RiskLevel)
	d.KPIs([]layout.KPI{
		{Label: "Risk level", Value: strings.ToUpper(string(b.RiskLevel)), Fill: fill, Text: text},
		{Label: "Time to detect", Value: words.Seconds(b.TimeToDetectSeconds), Fill: layout.ColorPanel, Text: layout.ColorText},
		{Label: "Cost incurred", Value: words.Money(b.CostIncurredCents), Fill: layout.ColorPanel, Text: layout.ColorText},
		{Label: "Incident status", Value: words.Capitalize(string(b.IncidentStatus)), Fill: layout.ColorPanel, Text: layout.ColorText},
	})
	w := d.PageW - 2*d.Margin
	section := func(title, body string) {
		d.Heading(title, 12)
		d.SetFont("", 10)
		d.F.SetX(d.Margin)
		d.Para(w, 5.2, body)
		d.F.SetY(d.F.GetY() + 2)
	}
	section("What happened", b.IncidentSummary)
	timelineSection(d, chainTimeline(b.RunStartedAt, b.Chain, b.Snapshot))
	section("What it means for the business", b.BusinessImpact)
	section("The rule that applied", b.PolicyViolated)
	section("Why this risk level", b.RiskRationale)

	d.Heading("What we recommend", 12)
	d.SetFont("", 10)
	for i, a := range b.RecommendedActions {
		ls := d.Lines(a, w-8-2*d.CM)
		d.Need(float64(len(ls)) * 5.2)
		d.F.SetX(d.Margin)
		d.SetFont("B", 10)
		d.Cell(8, 5.2, strconv.Itoa(i+1)+".", "", 0, "R", false)
		d.SetFont("", 10)
		for _, l := range ls {
			d.F.SetX(d.Margin + 8)
			d.Cell(w-8, 5.2, l, "", 2, "L", false)
		}
		d.F.SetY(d.F.GetY() + 1)
	}
	d.F.SetY(d.F.GetY() + 1)
	section("Where it stands", b.RemediationStatus)

	d.Heading("For reference", 20)
	d.SetFont("", 8)
	d.Facts(d.Margin, []layout.Fact{
		{Label: "Incident / run", Value: b.IncidentID + " / " + b.RunID},
		{Label: "Stopped", Value: fmt.Sprintf("step %d (%s in all) at %s, by policy %s", b.ViolationStepIndex, words.Plural(b.StepsTaken, "step", "steps"), words.Stamp(b.ViolationTime), b.ViolatedPolicyID)},
		{Label: "Policy snapshot", Value: b.PolicySnapshotID + ", content hash " + b.Snapshot.ContentHash()},
		{Label: "Prepared", Value: fmt.Sprintf("%s for %s%s", words.Stamp(b.CreatedAt), b.ExportedBy, reasonSuffix(b.ExportReason))},
		{Label: "Bundle SHA-256", Value: s.Hash},
	}, 30, w-30, 4.2)
	d.F.SetY(d.F.GetY() + 3)
	signOff(d, s, "I have read this executive debrief")
}

func riskColors(l bundle.RiskLevel) (fill, text layout.RGB) {
	switch l {
	case bundle.RiskLow:
		return layout.ColorOKFill, layout.ColorOKText
	case bundle.RiskMedium:
		return layout.ColorWarnFill, layout.ColorWarnText
	case bundle.RiskHigh:
		return layout.RGB{R: 255, G: 224, B: 204}, layout.RGB{R: 138, G: 57, B: 0}
	}
	return layout.ColorBadEdge, layout.ColorWhite
}
