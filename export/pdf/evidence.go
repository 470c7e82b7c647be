package pdf

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/words"
	"github.com/stopline/stopline/export/pdf/internal/layout"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// renderEvidence writes the evidence report (A4 landscape): a title page
// with the key facts, the policies in force, then the timeline chart and
// every step in a table whose header repeats on each page, the inflection
// row marked.
func renderEvidence(d *layout.Doc, s *bundle.Sealed, b *bundle.Evidence) {
	subject := "Run " + b.RunID
	if b.IncidentID != "" {
		subject = "Incident " + b.IncidentID + " · run " + b.RunID
	}
	d.Running = fmt.Sprintf("stopline · Evidence report · %s · tenant %s", subject, b.TenantID)
	d.NewPage()
	d.Title("stopline · evidence report", "What happened in run "+b.RunID,
		fmt.Sprintf("%s · tenant %s · trace %s · exported %s by %s", subject, b.TenantID, b.TraceID, words.When(b.CreatedAt), b.ExportedBy))
	evidenceBanner(d, &b.Run, b)
	evidenceFacts(d, s, b)
	policyTable(d, b.Snapshot.Policies(), b.Snapshot.Thresholds(), b.PolicySnapshotID, b.ViolatedPolicyID)
	// The chart heads the page the step table starts on: the picture, then
	// every step it summarises.
	d.NewPage()
	timelineSection(d, evidenceTimeline(b))
	stepTable(d, b)
}

func evidenceBanner(d *layout.Doc, run *bundle.RunSummary, b *bundle.Evidence) {
	if inf, ok := b.Inflection(); ok {
		d.Banner(fmt.Sprintf("▶ Run stopped at step %d (%s) by policy %s: %s", inf.StepIndex, words.Stamp(inf.Timestamp),
			inf.Decision.PolicyID, decisionText(inf.Decision)), layout.ColorBadFill, layout.ColorBadText, layout.ColorBadEdge)
		return
	}
	switch run.Status {
	case "succeeded":
		d.Banner(fmt.Sprintf("✓ Run completed: %s, no policy stopped it.", words.Plural(len(b.Steps), "step", "steps")), layout.ColorOKFill, layout.ColorOKText, layout.ColorOKText)
	case "running", "queued":
		d.Banner(fmt.Sprintf("Run still %s at export: %s recorded so far.", run.Status, words.Plural(len(b.Steps), "step", "steps")), layout.ColorPanel, layout.ColorText, layout.ColorMuted)
	default:
		d.Banner(fmt.Sprintf("Run ended %s (%s) after %s: %s", run.Status, run.TerminationReason, words.Plural(len(b.Steps), "step", "steps"), run.Message), layout.ColorWarnFill, layout.ColorWarnText, layout.ColorWarnText)
	}
}

// decisionText is a decision in one line: "budget_exceeded: max_steps
// observed 4, limit 3" or the decision's message.
func decisionText(d bundle.StepDecision) string {
	var parts []string
	if d.Reason != "" {
		parts = append(parts, string(d.Reason))
	}
	if d.Threshold != "" && d.Limit != nil && d.Observed != nil {
		parts = append(parts, fmt.Sprintf("%s observed %s, limit %s", d.Threshold, words.Decimal(*d.Observed), words.Decimal(*d.Limit)))
	} else if d.Message != "" {
		parts = append(parts, d.Message)
	}
	return strings.Join(parts, ": ")
}

func evidenceFacts(d *layout.Doc, s *bundle.Sealed, b *bundle.Evidence) {
	w := d.PageW - 2*d.Margin
	colW := (w - 8) / 2
	run := &b.Run
	stopped := "—"
	if run.StoppedAtStep != nil {
		stopped = strconv.Itoa(*run.StoppedAtStep)
	}
	left := []layout.Fact{
		{Label: "Run status", Value: fmt.Sprintf("%s (%s)", run.Status, orDash(string(run.TerminationReason)))},
		{Label: "Stopped at step", Value: stopped},
		{Label: "Violated policy", Value: orDash(b.ViolatedPolicyID)},
	}
	if inf, ok := b.Inflection(); ok {
		left = append(left, layout.Fact{Label: "Decision", Value: fmt.Sprintf("%s by %s (%s): %s", inf.Decision.Action, inf.Decision.PolicyID, orDash(string(inf.Decision.Source)), decisionText(inf.Decision))})
		left = append(left, layout.Fact{Label: "Inflection record", Value: fmt.Sprintf("seq %d of the chain (hash below)", inf.Seq)})
	}
	if inc := b.Incident; inc != nil {
		left = append(left, layout.Fact{Label: "Incident", Value: fmt.Sprintf("%s · severity %s · %s · opened %s", inc.ID, inc.Severity, inc.Status, words.Stamp(inc.CreatedAt))})
	}
	started := words.Stamp(runStart(run))
	ended := "—"
	if run.EndedAt != nil {
		ended = words.Stamp(*run.EndedAt)
	}
	version := "given explicitly"
	if run.PolicyVersion > 0 {
		version = "v" + strconv.Itoa(run.PolicyVersion)
	}
	right := []layout.Fact{
		{Label: "Policy snapshot", Value: fmt.Sprintf("%s (%s, %s)", b.PolicySnapshotID, words.Plural(b.Snapshot.PolicyCount(), "policy", "policies"), version)},
		{Label: "Started / ended", Value: started + " → " + ended},
		{Label: "Totals", Value: fmt.Sprintf("%s · %s · %s tokens · %s cents", words.Seconds(b.DurationSeconds), words.Plural(len(b.Steps), "step", "steps"), words.Count(b.Tokens), words.Decimal(b.CostCents))},
		{Label: "Chain", Value: fmt.Sprintf("%s, run_start to %s", words.Plural(b.ChainLength, "record", "records"), lastKind(b))},
		{Label: "Exported", Value: fmt.Sprintf("%s by %s%s", words.Stamp(b.CreatedAt), b.ExportedBy, reasonSuffix(b.ExportReason))},
	}
	y := d.F.GetY()
	d.Facts(d.Margin, left, 32, colW-32, 4.6)
	yl := d.F.GetY()
	d.F.SetY(y)
	d.Facts(d.Margin+colW+8, right, 30, colW-30, 4.6)
	d.F.SetY(max(yl, d.F.GetY()) + 2)

	d.Heading("Integrity", 20)
	keyID := s.KeyID()
	if keyID == "" {
		keyID = "unsigned (stopline verify-bundle checks the JSON bundle's hash and chain)"
	}
	d.Facts(d.Margin, []layout.Fact{
		{Label: "Bundle SHA-256", Value: s.Hash},
		{Label: "Bundle id", Value: b.BundleID},
		{Label: "Signing key id", Value: keyID},
		{Label: "Snapshot content hash", Value: b.Snapshot.ContentHash()},
		{Label: "Chain head hash", Value: b.HeadHash},
		{Label: "Inflection record hash", Value: inflectionHash(b)},
		{Label: "Verify offline", Value: "stopline verify-bundle FILE --pubkey KEY.pub (or bundle.Verify in Go, or any DSSE verifier for the signature) checks the signature, the snapshot hash and every record of the chain; no database is needed."},
	}, 42, w-42, 4.6)
	d.F.SetY(d.F.GetY() + 3)
}

func inflectionHash(b *bundle.Evidence) string {
	if inf, ok := b.Inflection(); ok {
		return inf.RecordHash
	}
	return "— (no step was blocked)"
}

func lastKind(b *bundle.Evidence) string {
	if ended(b.Run.Status) {
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
func policyTable(d *layout.Doc, policies []snapshot.Policy, thresholds map[string]float64, snapID, violated string) {
	d.Heading(fmt.Sprintf("Policies in force (snapshot %s)", snapID), 20)
	w := d.PageW - 2*d.Margin
	cols := []layout.Col{{Title: "Policy", W: 40, Align: "L"}, {Title: "Kind", W: 28, Align: "L"}, {Title: "Enforcement", W: 26, Align: "L"}, {Title: "Parameters", W: w - 94, Align: "L"}}
	d.SetFont("", 8)
	d.Table(cols, 5.5)
	for i, p := range policies {
		var fill *layout.RGB
		name := p.ID
		if p.ID == violated {
			fill, name = &layout.ColorBadFill, "▶ "+p.ID
			d.SetFont("B", 8)
		} else if i%2 == 1 {
			fill = &layout.ColorZebra
		}
		d.WrapRow(cols, []string{name, p.Kind, string(p.Enforcement.Effective()), string(p.ParamsJSON())}, 4.2, fill)
		d.SetFont("", 8)
	}
	d.EndTable()
	names := make([]string, 0, len(thresholds))
	for k := range thresholds {
		names = append(names, k)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + " = " + words.Decimal(thresholds[k])
	}
	d.SetFont("", 8.5)
	d.F.SetX(d.Margin)
	d.Para(w, 4.6, "Thresholds: "+orDash(strings.Join(parts, " · ")))
	d.F.SetY(d.F.GetY() + 2)
	d.SetFont("", 9)
}

// stepCols are the step table's columns; Decision takes what the page
// width leaves (A4 landscape, 269 mm between the margins).
func stepCols(width float64) []layout.Col {
	cols := []layout.Col{
		{Title: "#", W: 14, Align: "R"}, {Title: "Time (UTC)", W: 38, Align: "L"}, {Title: "Type", W: 22, Align: "L"}, {Title: "Tool / model", W: 30, Align: "L"},
		{Title: "Tokens", W: 15, Align: "R"}, {Title: "Cost ¢", W: 14, Align: "R"}, {Title: "Total ¢", W: 16, Align: "R"}, {Title: "Status", W: 19, Align: "L"},
		{Title: "Decision", W: 0, Align: "L"}, {Title: "Content", W: 17, Align: "L"}, {Title: "Prev", W: 17, Align: "L"}, {Title: "Record", W: 17, Align: "L"},
	}
	cols[8].W = width - layout.ColsWidth(cols)
	return cols
}

// stepTable lists every step, one row each.
func stepTable(d *layout.Doc, b *bundle.Evidence) {
	d.Heading(fmt.Sprintf("Steps (%d): each step with its decision, as recorded in the hash chain", len(b.Steps)), 30)
	d.SetFont("", 7.5)
	d.TextColor(layout.ColorMuted)
	d.F.SetX(d.Margin)
	d.Para(d.PageW-2*d.Margin, 4, "▶ marks the inflection point, the step where a policy stopped the run (red). Amber rows are warnings: the run went on. "+
		"Hashes show their first 8 hex digits; the JSON bundle holds them in full. Decision: action · policy · threshold observed > limit.")
	d.F.SetY(d.F.GetY() + 1.5)
	d.TextColor(layout.ColorText)
	d.SetFont("", 7)
	const rowH = 4.6
	cols := stepCols(d.PageW - 2*d.Margin)
	d.Table(cols, 5.5)
	cells := make([]string, len(cols))
	for i := range b.Steps {
		s := &b.Steps[i]
		var fill *layout.RGB
		switch {
		case s.IsInflection:
			fill = &layout.ColorBadFill
			d.SetFont("B", 7)
			d.TextColor(layout.ColorBadText)
		case s.Status == trace.StatusWarning:
			fill = &layout.ColorWarnFill
			d.TextColor(layout.ColorWarnText)
		case s.Status == trace.StatusViolation:
			fill = &layout.ColorBadFill
			d.TextColor(layout.ColorBadText)
		case i%2 == 1:
			fill = &layout.ColorZebra
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
		cells[4] = words.Count(s.Tokens)
		cells[5] = words.Decimal(s.CostCents)
		cells[6] = words.Decimal(s.TotalCost)
		cells[7] = statusText(s)
		cells[8] = stepDecisionCell(s)
		cells[9] = shortHash(s.ContentHash, 8)
		cells[10] = shortHash(s.PrevHash, 8)
		cells[11] = shortHash(s.RecordHash, 8)
		d.Row(cols, cells, rowH, fill)
		if fill == &layout.ColorBadFill || fill == &layout.ColorWarnFill {
			d.SetFont("", 7)
			d.TextColor(layout.ColorText)
		}
	}
	d.EndTable()
	d.SetFont("", 8.5)
	d.F.SetX(d.Margin)
	if len(b.Steps) == 0 {
		d.Para(d.PageW-2*d.Margin, 4.6, "No step was recorded.")
	} else {
		d.Para(d.PageW-2*d.Margin, 4.6, fmt.Sprintf("End of the step table: %s, %s tokens, %s cents. Chain head %s.",
			words.Plural(len(b.Steps), "step", "steps"), words.Count(b.Tokens), words.Decimal(b.CostCents), b.HeadHash))
	}
}

func statusText(s *bundle.TraceStepEvidence) string {
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
func stepDecisionCell(s *bundle.TraceStepEvidence) string {
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

func findingText(d bundle.StepDecision) string {
	s := d.PolicyID
	if d.Enforcement == "monitor" {
		s += " (monitor)"
	}
	if d.Threshold != "" && d.Limit != nil && d.Observed != nil {
		return s + " · " + d.Threshold + " " + words.Decimal(*d.Observed) + " > " + words.Decimal(*d.Limit)
	}
	if d.Message != "" {
		return s + " · " + d.Message
	}
	return s
}

// shortHash is the first n hex digits of a hash, or "—".
func shortHash(h string, n int) string {
	if h == "" {
		return "—"
	}
	if len(h) > n {
		return h[:n]
	}
	return h
}

// runStart is when the run started: its start time, or its creation when
// it never left the queue.
func runStart(s *bundle.RunSummary) time.Time {
	if s.StartedAt != nil {
		return *s.StartedAt
	}
	return s.CreatedAt
}

// ended reports whether a run status is final.
func ended(status string) bool {
	switch status {
	case "succeeded", "failed", "failed_policy", "cancelled":
		return true
	}
	return false
}
