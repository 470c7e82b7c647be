package pdf

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/words"
	"github.com/stopline/stopline/export/pdf/internal/layout"
)

// renderSOC2 writes the SOC 2 report (A4 portrait): the attestation, the
// compliance period and key figures, the subject incident, the control
// mapping, the policy version history, the population and the incidents.
func renderSOC2(d *layout.Doc, s *bundle.Sealed, b *bundle.SOC2) {
	period := fmt.Sprintf("%s to %s (UTC, end excluded)", b.CompliancePeriodStart.UTC().Format("2 January 2006 15:04"),
		b.CompliancePeriodEnd.UTC().Format("2 January 2006 15:04"))
	d.Running = fmt.Sprintf("stopline · SOC 2 evidence report · tenant %s · incident %s · period %s", b.TenantID, b.IncidentID, period)
	d.NewPage()
	d.Title("stopline · SOC 2 evidence", "SOC 2 evidence report",
		fmt.Sprintf("AI agent runtime governance · tenant %s · compliance period %s · subject incident %s", b.TenantID, period, b.IncidentID))
	inForce := 0
	for _, v := range b.PolicyVersions {
		if v.InForceDuringPeriod {
			inForce++
		}
	}
	d.KPIs([]layout.KPI{
		{Label: "Runs in the period", Value: words.Count(int64(b.PopulationSummary.Runs)), Fill: layout.ColorPanel, Text: layout.ColorText},
		{Label: "Stopped by a policy", Value: words.Count(int64(b.PopulationSummary.StoppedByPolicy)), Fill: layout.ColorBadFill, Text: layout.ColorBadText},
		{Label: "Incidents", Value: words.Count(int64(b.PopulationSummary.Incidents)), Fill: layout.ColorWarnFill, Text: layout.ColorWarnText},
		versionsKPI(inForce),
	})
	if inForce == 0 {
		// No version in force is an absence of change-management evidence,
		// never a reassuring zero.
		d.Banner("Missing evidence: no published policy version was in force during the compliance period, so this report holds no change-management evidence (CC8.1) for it. "+
			"Runs may have been bound to policy snapshots given explicitly, outside the version history; the population lists each run's snapshot.",
			layout.ColorBadFill, layout.ColorBadText, layout.ColorBadEdge)
	}

	d.Heading("Attestation", 25)
	d.Panel(b.AttestationStatement, 9)

	d.Heading("Subject incident", 30)
	w := d.PageW - 2*d.Margin
	fs := []layout.Fact{{Label: "Incident", Value: b.IncidentID}, {Label: "Run", Value: fmt.Sprintf("%s (%s, %s)", b.RunID, b.Run.Status, orDash(string(b.Run.TerminationReason)))}}
	if inf, ok := b.Inflection(); ok {
		fs = append(fs,
			layout.Fact{Label: "Stopped at", Value: fmt.Sprintf("step %d at %s", inf.StepIndex, words.Stamp(inf.Timestamp))},
			layout.Fact{Label: "Decision", Value: fmt.Sprintf("%s by %s: %s", inf.Decision.Action, inf.Decision.PolicyID, decisionText(inf.Decision))},
			layout.Fact{Label: "Record hash", Value: inf.RecordHash})
	}
	if inc := b.Incident; inc != nil {
		fs = append(fs, layout.Fact{Label: "Severity / status", Value: fmt.Sprintf("%s / %s", inc.Severity, inc.Status)})
	}
	fs = append(fs,
		layout.Fact{Label: "Policy snapshot", Value: fmt.Sprintf("%s, content hash %s", b.PolicySnapshotID, b.Snapshot.ContentHash())},
		layout.Fact{Label: "Chain", Value: fmt.Sprintf("%s, head %s", words.Plural(b.ChainLength, "record", "records"), b.HeadHash)},
		layout.Fact{Label: "Exported", Value: fmt.Sprintf("%s by %s%s", words.Stamp(b.CreatedAt), b.ExportedBy, reasonSuffix(b.ExportReason))})
	d.Facts(d.Margin, fs, 34, w-34, 4.6)
	d.F.SetY(d.F.GetY() + 3)

	d.Heading("Control mapping: which evidence supports which control", 30)
	cols := []layout.Col{{Title: "Control", W: 30, Align: "L"}, {Title: "Objective, and how stopline meets it", W: 88, Align: "L"}, {Title: "Evidence in this bundle (JSON Pointer)", W: w - 118, Align: "L"}}
	d.SetFont("", 7.5)
	d.Table(cols, 5.5)
	for i, c := range b.Controls {
		var ev []string
		for _, e := range c.Evidence {
			ev = append(ev, e.Pointer+": "+e.Description)
		}
		var fill *layout.RGB
		if i%2 == 1 {
			fill = &layout.ColorZebra
		}
		d.WrapRow(cols, []string{c.ID + "\n" + c.Title, c.Objective + "\nHow met: " + c.HowMet, strings.Join(ev, "\n")}, 3.8, fill)
	}
	d.EndTable()

	d.Heading("Policy version history (CC8.1 change management)", 20)
	vcols := []layout.Col{{Title: "Ver.", W: 10, Align: "R"}, {Title: "Published (UTC)", W: 36, Align: "L"}, {Title: "By", W: 24, Align: "L"}, {Title: "Snapshot", W: 32, Align: "L"}, {Title: "Content hash", W: 28, Align: "L"}, {Title: "Note", W: w - 146, Align: "L"}, {Title: "In force", W: 16, Align: "L"}}
	d.SetFont("", 7.5)
	d.Table(vcols, 5.5)
	for i, v := range b.PolicyVersions {
		var fill *layout.RGB
		if i%2 == 1 {
			fill = &layout.ColorZebra
		}
		yes := "no"
		if v.InForceDuringPeriod {
			yes = "✓ yes"
		}
		d.WrapRow(vcols, []string{strconv.Itoa(v.Version), words.RFC3339(v.PublishedAt), v.PublishedBy, v.SnapshotID, shortHash(v.ContentHash, 12), v.Note, yes}, 3.8, fill)
	}
	if len(b.PolicyVersions) == 0 {
		d.WrapRow(vcols, []string{"", "", "", "", "", "Missing evidence: no policy version was published before the end of the period.", ""}, 3.8, &layout.ColorBadFill)
	}
	d.EndTable()

	// The population and the incidents are what an auditor samples from:
	// ids and times are never cut; cells wrap and rows grow instead.
	d.Heading(fmt.Sprintf("Population: %s created in the period", words.Plural(len(b.Population), "run", "runs")), 20)
	pcols := []layout.Col{{Title: "#", W: 8, Align: "R"}, {Title: "Run", W: 36, Align: "L"}, {Title: "Created (UTC)", W: 33, Align: "L"}, {Title: "Status", W: 19, Align: "L"}, {Title: "Reason", W: 24, Align: "L"}, {Title: "Snapshot", W: 29, Align: "L"}, {Title: "Incident", W: w - 149, Align: "L"}}
	d.SetFont("", 7)
	d.Table(pcols, 5.5)
	for i, r := range b.Population {
		var fill *layout.RGB
		switch {
		case r.RunID == b.RunID:
			fill = &layout.ColorBadFill
		case i%2 == 1:
			fill = &layout.ColorZebra
		}
		d.WrapRow(pcols, []string{strconv.Itoa(i + 1), r.RunID, words.RFC3339(r.CreatedAt), string(r.Status), orDash(string(r.TerminationReason)),
			r.PolicySnapshotID, orDash(r.IncidentID)}, 3.4, fill)
	}
	d.EndTable()

	d.Heading(fmt.Sprintf("Incidents in the period: %d", len(b.Incidents)), 20)
	icols := []layout.Col{{Title: "Incident", W: 34, Align: "L"}, {Title: "Created (UTC)", W: 33, Align: "L"}, {Title: "Run", W: 34, Align: "L"}, {Title: "Policy", W: 25, Align: "L"}, {Title: "Reason", W: 25, Align: "L"}, {Title: "Severity", W: 14, Align: "L"}, {Title: "Status", W: w - 165, Align: "L"}}
	d.SetFont("", 7)
	d.Table(icols, 5.5)
	for i, inc := range b.Incidents {
		var fill *layout.RGB
		switch {
		case inc.ID == b.IncidentID:
			fill = &layout.ColorBadFill
		case i%2 == 1:
			fill = &layout.ColorZebra
		}
		d.WrapRow(icols, []string{inc.ID, words.RFC3339(inc.CreatedAt), inc.RunID, inc.PolicyID, string(inc.Reason), string(inc.Severity), string(inc.Status)}, 3.4, fill)
	}
	d.EndTable()

	if b.AuditorNotes != "" {
		d.Heading("Auditor notes", 15)
		d.F.SetX(d.Margin)
		d.Para(w, 4.6, b.AuditorNotes)
		d.F.SetY(d.F.GetY() + 3)
	}
	d.Heading("How to verify this report", 20)
	d.SetFont("", 8.5)
	d.F.SetX(d.Margin)
	d.Para(w, 4.4, fmt.Sprintf("Every page carries the SHA-256 of the JSON bundle this report was rendered from (%s). "+
		"stopline verify-bundle (bundle.Verify) checks, without any database, that the bundle hashes to it, that the signature is the issuer's, that the policy snapshot matches its content hash, "+
		"and recomputes the run's hash chain of %s, each step of which is listed in the bundle (/steps, /chain). "+
		"To test a sample, draw runs from the population and ask for each run's evidence bundle: its chain must end in the head hash listed here.",
		s.Hash, words.Plural(b.ChainLength, "record", "records")))
	signOff(d, s, "I have reviewed this SOC 2 evidence report")
}

// versionsKPI is the "versions in force" figure: zero is missing
// evidence, flagged, not a green figure.
func versionsKPI(inForce int) layout.KPI {
	if inForce == 0 {
		return layout.KPI{Label: "Versions in force", Value: "0 · missing", Fill: layout.ColorBadFill, Text: layout.ColorBadText}
	}
	return layout.KPI{Label: "Versions in force", Value: words.Count(int64(inForce)), Fill: layout.ColorOKFill, Text: layout.ColorOKText}
}

// signOff ends a report with the block its reviewer completes: name,
// role, date and signature, for the bundle the report was rendered from.
func signOff(d *layout.Doc, s *bundle.Sealed, reviewed string) {
	statement := fmt.Sprintf("%s, rendered from bundle %s (SHA-256 %s), and accept it as a record of what it describes.", reviewed, s.Bundle.ID(), s.Hash)
	fields := []string{"Reviewer name", "Role", "Date", "Signature"}
	d.Heading("Reviewer sign-off", d.SignOffHeight(statement, len(fields)))
	d.SignOff(statement, fields)
}
