package export

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// renderEvidence writes the evidence report (A4 landscape): a title page
// with the key facts, the policies in force, and every step in a table
// whose header repeats on each page, the inflection row marked.
func renderEvidence(d *doc, b *EvidenceBundle) {
	subject := "Run " + b.RunID
	if b.IncidentID != "" {
		subject = "Incident " + b.IncidentID + " · run " + b.RunID
	}
	d.running = fmt.Sprintf("stopline · Evidence report · %s · tenant %s", subject, b.TenantID)
	d.newPage()
	d.title("stopline · evidence report", "What happened in run "+b.RunID,
		fmt.Sprintf("%s · tenant %s · trace %s · exported %s by %s", subject, b.TenantID, b.TraceID, when(b.CreatedAt), b.ExportedBy))
	evidenceBanner(d, &b.Run, b)
	evidenceFacts(d, b)
	policyTable(d, b.Snapshot.Policies(), b.Snapshot.Thresholds(), b.PolicySnapshotID, b.ViolatedPolicyID)
	stepTable(d, b)
}

func evidenceBanner(d *doc, run *RunSummary, b *EvidenceBundle) {
	if inf, ok := b.Inflection(); ok {
		d.banner(fmt.Sprintf("▶ Run stopped at step %d (%s) by policy %s: %s", inf.StepIndex, rfc3339(inf.Timestamp),
			inf.Decision.PolicyID, decisionText(inf.Decision)), colBadFill, colBadText, colBadEdge)
		return
	}
	switch run.Status {
	case governance.StatusSucceeded:
		d.banner(fmt.Sprintf("✓ Run completed: %s, no policy stopped it.", plural(len(b.Steps), "step", "steps")), colOKFill, colOKText, colOKText)
	case governance.StatusRunning, governance.StatusQueued:
		d.banner(fmt.Sprintf("Run still %s at export: %s recorded so far.", run.Status, plural(len(b.Steps), "step", "steps")), colPanel, colText, colMuted)
	default:
		d.banner(fmt.Sprintf("Run ended %s (%s) after %s: %s", run.Status, run.TerminationReason, plural(len(b.Steps), "step", "steps"), run.Message), colWarnFill, colWarnText, colWarnText)
	}
}

// decisionText is a decision in one line: "budget_exceeded: max_steps
// observed 4, limit 3" or the decision's message.
func decisionText(d StepDecision) string {
	var parts []string
	if d.Reason != "" {
		parts = append(parts, string(d.Reason))
	}
	if d.Threshold != "" && d.Limit != nil && d.Observed != nil {
		parts = append(parts, fmt.Sprintf("%s observed %s, limit %s", d.Threshold, decimal(*d.Observed), decimal(*d.Limit)))
	} else if d.Message != "" {
		parts = append(parts, d.Message)
	}
	return strings.Join(parts, ": ")
}

func evidenceFacts(d *doc, b *EvidenceBundle) {
	w := d.pageW - 2*d.margin
	colW := (w - 8) / 2
	run := &b.Run
	stopped := "—"
	if run.StoppedAtStep != nil {
		stopped = strconv.Itoa(*run.StoppedAtStep)
	}
	left := []fact{
		{"Run status", fmt.Sprintf("%s (%s)", run.Status, orDash(string(run.TerminationReason)))},
		{"Stopped at step", stopped},
		{"Violated policy", orDash(b.ViolatedPolicyID)},
	}
	if inf, ok := b.Inflection(); ok {
		left = append(left, fact{"Decision", fmt.Sprintf("%s by %s (%s): %s", inf.Decision.Action, inf.Decision.PolicyID, orDash(string(inf.Decision.Source)), decisionText(inf.Decision))})
		left = append(left, fact{"Inflection record", fmt.Sprintf("seq %d of the chain (hash below)", inf.Seq)})
	}
	if inc := b.Incident; inc != nil {
		left = append(left, fact{"Incident", fmt.Sprintf("%s · severity %s · %s · opened %s", inc.ID, inc.Severity, inc.Status, rfc3339(inc.CreatedAt))})
	}
	started := rfc3339(runStart(run))
	ended := "—"
	if run.EndedAt != nil {
		ended = rfc3339(*run.EndedAt)
	}
	version := "given explicitly"
	if run.PolicyVersion > 0 {
		version = "v" + strconv.Itoa(run.PolicyVersion)
	}
	right := []fact{
		{"Policy snapshot", fmt.Sprintf("%s (%s, %s)", b.PolicySnapshotID, plural(b.Snapshot.PolicyCount(), "policy", "policies"), version)},
		{"Started / ended", started + " → " + ended},
		{"Totals", fmt.Sprintf("%s · %s · %s tokens · %s cents", seconds(b.DurationSeconds), plural(len(b.Steps), "step", "steps"), count(b.Tokens), decimal(b.CostCents))},
		{"Chain", fmt.Sprintf("%s, run_start to %s", plural(b.ChainLength, "record", "records"), lastKind(b))},
		{"Exported", fmt.Sprintf("%s by %s%s", rfc3339(b.CreatedAt), b.ExportedBy, reasonSuffix(b.ExportReason))},
	}
	y := d.f.GetY()
	d.facts(d.margin, left, 32, colW-32, 4.6)
	yl := d.f.GetY()
	d.f.SetY(y)
	d.facts(d.margin+colW+8, right, 30, colW-30, 4.6)
	d.f.SetY(max(yl, d.f.GetY()) + 2)

	d.heading("Integrity", 20)
	keyID := d.s.KeyID()
	if keyID == "" {
		keyID = "unsigned (verify the JSON bundle's hash and chain with export.VerifyUnsigned)"
	}
	d.facts(d.margin, []fact{
		{"Bundle SHA-256", d.s.Hash},
		{"Bundle id", b.BundleID},
		{"Signing key id", keyID},
		{"Snapshot content hash", b.Snapshot.ContentHash()},
		{"Chain head hash", b.HeadHash},
		{"Inflection record hash", inflectionHash(b)},
		{"Verify offline", "export.Verify(bundle.json, publicKey) recomputes the bundle hash, the signature, the snapshot hash and every record of the chain; no database is needed."},
	}, 42, w-42, 4.6)
	d.f.SetY(d.f.GetY() + 3)
}

func inflectionHash(b *EvidenceBundle) string {
	if inf, ok := b.Inflection(); ok {
		return inf.RecordHash
	}
	return "— (no step was blocked)"
}

func lastKind(b *EvidenceBundle) string {
	if b.Run.Status.Ended() {
		return "run_end"
	}
	return "the last step (run still open)"
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " — " + r
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// policyTable lists the snapshot's policies with their parameters, the
// violated one marked, and the thresholds.
func policyTable(d *doc, policies []snapshot.Policy, thresholds map[string]float64, snapID, violated string) {
	d.heading(fmt.Sprintf("Policies in force (snapshot %s)", snapID), 20)
	w := d.pageW - 2*d.margin
	cols := []col{{"Policy", 40, "L"}, {"Kind", 28, "L"}, {"Enforcement", 26, "L"}, {"Parameters", w - 94, "L"}}
	d.setFont("", 8)
	d.table(cols, 5.5)
	for i, p := range policies {
		var fill *rgb
		name := p.ID
		if p.ID == violated {
			fill, name = &colBadFill, "▶ "+p.ID
			d.setFont("B", 8)
		} else if i%2 == 1 {
			fill = &colZebra
		}
		d.wrapRow(cols, []string{name, p.Kind, string(p.Enforcement.Effective()), string(p.ParamsJSON())}, 4.2, fill)
		d.setFont("", 8)
	}
	d.endTable()
	names := make([]string, 0, len(thresholds))
	for k := range thresholds {
		names = append(names, k)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + " = " + decimal(thresholds[k])
	}
	d.setFont("", 8.5)
	d.f.SetX(d.margin)
	d.para(w, 4.6, "Thresholds: "+orDash(strings.Join(parts, " · ")))
	d.f.SetY(d.f.GetY() + 2)
	d.setFont("", 9)
}

// stepCols are the step table's columns; Decision takes what the page
// width leaves (A4 landscape, 269 mm between the margins).
func stepCols(width float64) []col {
	cols := []col{
		{"#", 14, "R"}, {"Time (UTC)", 38, "L"}, {"Type", 22, "L"}, {"Tool / model", 30, "L"},
		{"Tokens", 15, "R"}, {"Cost ¢", 14, "R"}, {"Total ¢", 16, "R"}, {"Status", 19, "L"},
		{"Decision", 0, "L"}, {"Content", 17, "L"}, {"Prev", 17, "L"}, {"Record", 17, "L"},
	}
	cols[8].w = width - colsWidth(cols)
	return cols
}

// stepTable lists every step, one row each.
func stepTable(d *doc, b *EvidenceBundle) {
	d.newPage()
	d.heading(fmt.Sprintf("Steps (%d): each step with its decision, as recorded in the hash chain", len(b.Steps)), 30)
	d.setFont("", 7.5)
	d.textColor(colMuted)
	d.f.SetX(d.margin)
	d.para(d.pageW-2*d.margin, 4, "▶ marks the inflection point, the step where a policy stopped the run (red). Amber rows are warnings: the run went on. "+
		"Hashes show their first 8 hex digits; the JSON bundle holds them in full. Decision: action · policy · threshold observed > limit.")
	d.f.SetY(d.f.GetY() + 1.5)
	d.textColor(colText)
	d.setFont("", 7)
	const rowH = 4.6
	cols := stepCols(d.pageW - 2*d.margin)
	d.table(cols, 5.5)
	cells := make([]string, len(cols))
	for i := range b.Steps {
		s := &b.Steps[i]
		var fill *rgb
		switch {
		case s.IsInflection:
			fill = &colBadFill
			d.setFont("B", 7)
			d.textColor(colBadText)
		case s.Status == trace.StatusWarning:
			fill = &colWarnFill
			d.textColor(colWarnText)
		case s.Status == trace.StatusViolation:
			fill = &colBadFill
			d.textColor(colBadText)
		case i%2 == 1:
			fill = &colZebra
		}
		idx := strconv.Itoa(s.StepIndex)
		if s.IsInflection {
			idx = "▶ " + idx
		}
		what := s.Tool
		if what == "" {
			what = s.Model
		}
		cells[0] = idx
		cells[1] = s.Timestamp.UTC().Format("2006-01-02 15:04:05.000")
		cells[2] = string(s.StepType)
		cells[3] = what
		cells[4] = count(s.Tokens)
		cells[5] = decimal(s.CostCents)
		cells[6] = decimal(s.TotalCost)
		cells[7] = statusText(s)
		cells[8] = stepDecisionCell(s)
		cells[9] = shortHash(s.ContentHash, 8)
		cells[10] = shortHash(s.PrevHash, 8)
		cells[11] = shortHash(s.RecordHash, 8)
		d.row(cols, cells, rowH, fill)
		if fill == &colBadFill || fill == &colWarnFill {
			d.setFont("", 7)
			d.textColor(colText)
		}
	}
	d.endTable()
	d.setFont("", 8.5)
	d.f.SetX(d.margin)
	if len(b.Steps) == 0 {
		d.para(d.pageW-2*d.margin, 4.6, "No step was recorded.")
	} else {
		d.para(d.pageW-2*d.margin, 4.6, fmt.Sprintf("End of the step table: %s, %s tokens, %s cents. Chain head %s.",
			plural(len(b.Steps), "step", "steps"), count(b.Tokens), decimal(b.CostCents), b.HeadHash))
	}
}

func statusText(s *TraceStepEvidence) string {
	switch {
	case s.IsInflection:
		return "VIOLATION"
	case s.Status == trace.StatusWarning:
		return "warning"
	case s.Status == trace.StatusOK:
		return "ok"
	}
	return string(s.Status)
}

// stepDecisionCell is a step's decision in a table cell: "allow",
// "block · step-limit · max_steps 4 > 3", "warn · no-shell".
func stepDecisionCell(s *TraceStepEvidence) string {
	d := s.Decision
	if d.Action == prevention.Allow && len(s.Findings) == 0 {
		return "allow"
	}
	if d.PolicyID == "" && len(s.Findings) > 0 {
		// An allow or warn decided by no single policy: cite the first finding.
		return d.Action.String() + " · " + findingText(s.Findings[0])
	}
	return d.Action.String() + " · " + findingText(d)
}

func findingText(d StepDecision) string {
	s := d.PolicyID
	if d.Enforcement == "monitor" {
		s += " (monitor)"
	}
	if d.Threshold != "" && d.Limit != nil && d.Observed != nil {
		return s + " · " + d.Threshold + " " + decimal(*d.Observed) + " > " + decimal(*d.Limit)
	}
	if d.Message != "" {
		return s + " · " + d.Message
	}
	return s
}
