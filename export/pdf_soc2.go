package export

import (
	"fmt"
	"strconv"
	"strings"
)

// renderSOC2 writes the SOC 2 report (A4 portrait): the attestation, the
// compliance period and key figures, the subject incident, the control
// mapping, the policy version history, the population and the incidents.
func renderSOC2(d *doc, b *SOC2Bundle) {
	period := fmt.Sprintf("%s to %s (UTC, end excluded)", b.CompliancePeriodStart.UTC().Format("2 January 2006 15:04"),
		b.CompliancePeriodEnd.UTC().Format("2 January 2006 15:04"))
	d.running = fmt.Sprintf("stopline · SOC 2 evidence report · tenant %s · incident %s · period %s", b.TenantID, b.IncidentID, period)
	d.newPage()
	d.title("stopline · SOC 2 evidence", "SOC 2 evidence report",
		fmt.Sprintf("AI agent runtime governance · tenant %s · compliance period %s · subject incident %s", b.TenantID, period, b.IncidentID))
	inForce := 0
	for _, v := range b.PolicyVersions {
		if v.InForceDuringPeriod {
			inForce++
		}
	}
	d.kpis([]kpi{
		{"Runs in the period", count(int64(b.PopulationSummary.Runs)), colPanel, colText},
		{"Stopped by a policy", count(int64(b.PopulationSummary.StoppedByPolicy)), colBadFill, colBadText},
		{"Incidents", count(int64(b.PopulationSummary.Incidents)), colWarnFill, colWarnText},
		{"Versions in force", count(int64(inForce)), colOKFill, colOKText},
	})

	d.heading("Attestation", 25)
	d.panel(b.AttestationStatement, 9)

	d.heading("Subject incident", 30)
	w := d.pageW - 2*d.margin
	fs := []fact{{"Incident", b.IncidentID}, {"Run", fmt.Sprintf("%s (%s, %s)", b.RunID, b.Run.Status, orDash(string(b.Run.TerminationReason)))}}
	if inf, ok := b.Inflection(); ok {
		fs = append(fs,
			fact{"Stopped at", fmt.Sprintf("step %d at %s", inf.StepIndex, rfc3339(inf.Timestamp))},
			fact{"Decision", fmt.Sprintf("%s by %s: %s", inf.Decision.Action, inf.Decision.PolicyID, decisionText(inf.Decision))},
			fact{"Record hash", inf.RecordHash})
	}
	if inc := b.Incident; inc != nil {
		fs = append(fs, fact{"Severity / status", fmt.Sprintf("%s / %s", inc.Severity, inc.Status)})
	}
	fs = append(fs,
		fact{"Policy snapshot", fmt.Sprintf("%s, content hash %s", b.PolicySnapshotID, b.Snapshot.ContentHash())},
		fact{"Chain", fmt.Sprintf("%s, head %s", plural(b.ChainLength, "record", "records"), b.HeadHash)},
		fact{"Exported", fmt.Sprintf("%s by %s%s", rfc3339(b.CreatedAt), b.ExportedBy, reasonSuffix(b.ExportReason))})
	d.facts(d.margin, fs, 34, w-34, 4.6)
	d.f.SetY(d.f.GetY() + 3)

	d.heading("Control mapping: which evidence supports which control", 30)
	cols := []col{{"Control", 30, "L"}, {"Objective, and how stopline meets it", 88, "L"}, {"Evidence in this bundle (JSON Pointer)", w - 118, "L"}}
	d.setFont("", 7.5)
	d.table(cols, 5.5)
	for i, c := range b.Controls {
		var ev []string
		for _, e := range c.Evidence {
			ev = append(ev, e.Pointer+": "+e.Description)
		}
		var fill *rgb
		if i%2 == 1 {
			fill = &colZebra
		}
		d.wrapRow(cols, []string{c.ID + "\n" + c.Title, c.Objective + "\nHow met: " + c.HowMet, strings.Join(ev, "\n")}, 3.8, fill)
	}
	d.endTable()

	d.heading("Policy version history (CC8.1 change management)", 20)
	vcols := []col{{"Ver.", 10, "R"}, {"Published (UTC)", 36, "L"}, {"By", 24, "L"}, {"Snapshot", 32, "L"}, {"Content hash", 28, "L"}, {"Note", w - 146, "L"}, {"In force", 16, "L"}}
	d.setFont("", 7.5)
	d.table(vcols, 5.5)
	for i, v := range b.PolicyVersions {
		var fill *rgb
		if i%2 == 1 {
			fill = &colZebra
		}
		yes := "no"
		if v.InForceDuringPeriod {
			yes = "✓ yes"
		}
		d.wrapRow(vcols, []string{strconv.Itoa(v.Version), rfc3339(v.PublishedAt), v.PublishedBy, v.SnapshotID, shortHash(v.ContentHash, 12), v.Note, yes}, 3.8, fill)
	}
	if len(b.PolicyVersions) == 0 {
		d.row(vcols, []string{"", "", "", "", "", "No policy version was published before the end of the period.", ""}, 4.6, nil)
	}
	d.endTable()

	d.heading(fmt.Sprintf("Population: %s created in the period", plural(len(b.Population), "run", "runs")), 20)
	pcols := []col{{"#", 10, "R"}, {"Run", 34, "L"}, {"Created (UTC)", 33, "L"}, {"Status", 22, "L"}, {"Reason", 26, "L"}, {"Snapshot", 31, "L"}, {"Incident", w - 156, "L"}}
	d.setFont("", 7)
	d.table(pcols, 5.5)
	for i, r := range b.Population {
		var fill *rgb
		switch {
		case r.RunID == b.RunID:
			fill = &colBadFill
		case i%2 == 1:
			fill = &colZebra
		}
		d.row(pcols, []string{strconv.Itoa(i + 1), r.RunID, rfc3339(r.CreatedAt), string(r.Status), orDash(string(r.TerminationReason)),
			r.PolicySnapshotID, orDash(r.IncidentID)}, 4.4, fill)
	}
	d.endTable()

	d.heading(fmt.Sprintf("Incidents in the period: %d", len(b.Incidents)), 20)
	icols := []col{{"Incident", 32, "L"}, {"Created (UTC)", 33, "L"}, {"Run", 34, "L"}, {"Policy", 27, "L"}, {"Reason", 26, "L"}, {"Severity", 14, "L"}, {"Status", w - 166, "L"}}
	d.setFont("", 7)
	d.table(icols, 5.5)
	for i, inc := range b.Incidents {
		var fill *rgb
		switch {
		case inc.ID == b.IncidentID:
			fill = &colBadFill
		case i%2 == 1:
			fill = &colZebra
		}
		d.row(icols, []string{inc.ID, rfc3339(inc.CreatedAt), inc.RunID, inc.PolicyID, string(inc.Reason), string(inc.Severity), string(inc.Status)}, 4.4, fill)
	}
	d.endTable()

	if b.AuditorNotes != "" {
		d.heading("Auditor notes", 15)
		d.f.SetX(d.margin)
		d.para(w, 4.6, b.AuditorNotes)
		d.f.SetY(d.f.GetY() + 3)
	}
	d.heading("How to verify this report", 20)
	d.setFont("", 8.5)
	d.f.SetX(d.margin)
	d.para(w, 4.4, fmt.Sprintf("Every page carries the SHA-256 of the JSON bundle this report was rendered from (%s). "+
		"export.Verify checks, without any database, that the bundle hashes to it, that the signature is the issuer's, that the policy snapshot matches its content hash, "+
		"and recomputes the run's hash chain of %s, each step of which is listed in the bundle (/steps, /chain). "+
		"To test a sample, draw runs from the population and ask for each run's evidence bundle: its chain must end in the head hash listed here.",
		d.s.Hash, plural(b.ChainLength, "record", "records")))
}
