package pdf_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// longIDs makes ids of 64 characters ("RUN-" and 60 hex digits), as an
// embedding runtime's UUID-based or hash-based ids can be.
func longIDs() func(kind string) string {
	var mu sync.Mutex
	n := 0
	return func(kind string) string {
		mu.Lock()
		defer mu.Unlock()
		n++
		h := sha256.Sum256([]byte(fmt.Sprint(kind, n)))
		return strings.ToUpper(kind[:3]) + "-" + hex.EncodeToString(h[:])[:60]
	}
}

// auditStore records, in a new memstore, runs of tenant acme with
// 64-character ids at instants with nanoseconds, bound to a snapshot given
// explicitly (no published policy version: none is in force in the
// period): runs-1 completed runs of one step, then a run stopped at its
// third step by the step limit. It returns an exporter (clock with
// nanoseconds too) and the incident id.
func auditStore(t *testing.T, runs int) (*export.Exporter, string, governance.Store) {
	t.Helper()
	st := memstore.New()
	clock := governance.NewFakeClock(fixture.T0.Add(987654321 * time.Nanosecond))
	r, err := governance.NewRunner(st, governance.WithKinds(fixture.Kinds), governance.WithClock(clock), governance.WithIDGenerator(longIDs()))
	if err != nil {
		t.Fatal(err)
	}
	snap := fixture.Policy(t, "acme", 2, clock.Now())
	for i := 0; i < runs-1; i++ {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		clock.Advance(time.Second + 123457*time.Nanosecond)
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Tokens: 5, CostCents: 0.1}); err != nil {
			t.Fatal(err)
		}
		if _, err := run.Finish(ctx); err != nil {
			t.Fatal(err)
		}
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	var incID string
	for i := 0; i < 3; i++ {
		clock.Advance(time.Second + 123457*time.Nanosecond)
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Tokens: 100, CostCents: 2})
		var v *governance.Violation
		if i == 2 && !errors.As(err, &v) || i < 2 && err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if v != nil {
			incID = v.IncidentID
		}
	}
	exp, err := export.New(st, export.WithClock(governance.NewFakeClock(fixture.T0.Add(time.Hour+123456789*time.Nanosecond))),
		export.WithSigner(fixture.Key("k")), export.WithRenderer(fixture.Renderer(t)))
	if err != nil {
		t.Fatal(err)
	}
	return exp, incID, st
}

// exportPDF exports a PDF, or fails the test.
func exportPDF(t *testing.T, exp *export.Exporter, typ bundle.Type, req export.Request) *export.Artifact {
	t.Helper()
	if req.TenantID == "" {
		req.TenantID = "acme"
	}
	a, err := exp.Export(ctx, typ, req, export.FormatPDF)
	if err != nil {
		t.Fatalf("%s: %v", typ, err)
	}
	if dir := os.Getenv("STOPLINE_PDF_DIR"); dir != "" {
		os.WriteFile(filepath.Join(dir, a.Filename), dataOf(t, a), 0o644)
	}
	return a
}

// nanoTime matches an instant written with more than millisecond
// precision.
var nanoTime = regexp.MustCompile(`\d\d:\d\d:\d\d\.\d{4,}`)

func TestReportsForPeople(t *testing.T) {
	fixture.NeedPDFTools(t)
	const runs = 40 // the population table spans pages
	exp, incID, st := auditStore(t, runs)
	if len(incID) != 64 {
		t.Fatalf("incident id %q is not 64 characters", incID)
	}
	soc2 := exportPDF(t, exp, bundle.TypeSOC2, export.Request{IncidentID: incID, ExportedBy: "alice"})
	debrief := exportPDF(t, exp, bundle.TypeExecutiveDebrief, export.Request{IncidentID: incID, ExportedBy: "alice"})
	evidence := exportPDF(t, exp, bundle.TypeEvidence, export.Request{IncidentID: incID, ExportedBy: "alice"})
	sb := soc2.Sealed.Bundle.(*bundle.SOC2)
	if len(sb.Population) != runs || len(sb.PolicyVersions) != 0 {
		t.Fatalf("fixture: %d runs, %d versions", len(sb.Population), len(sb.PolicyVersions))
	}

	t.Run("headline whole", func(t *testing.T) {
		// The title wraps: every word of it is there, in order, none cut.
		for _, tc := range []struct {
			a     *export.Artifact
			title string
		}{{debrief, "Incident " + incID + ": what happened"}, {evidence, "What happened in run " + sb.RunID}} {
			_, text := fixture.PDFCheck(t, dataOf(t, tc.a))
			if !strings.Contains(squash(text), squash(tc.title)) {
				t.Errorf("%s: title %q not whole in\n%s", tc.a.Sealed.Bundle.Type(), tc.title, text[:min(len(text), 600)])
			}
			if strings.Contains(text[:min(len(text), 400)], "…") {
				t.Errorf("%s: the title block is cut with …", tc.a.Sealed.Bundle.Type())
			}
		}
	})

	t.Run("SOC2 tables keep ids and times whole", func(t *testing.T) {
		pages, text := fixture.PDFCheck(t, dataOf(t, soc2))
		// Every run of the population, and the incident, with its id and
		// its creation time to the nanosecond: an auditor samples from
		// them. A cell wraps onto lines that pdftotext may interleave with
		// the next column's: its pieces come in order.
		for _, r := range sb.Population {
			for _, s := range []string{r.RunID, r.CreatedAt.UTC().Format(time.RFC3339Nano)} {
				if !wholeInOrder(text, s) {
					t.Errorf("population: %q not whole in the text", s)
				}
			}
		}
		for _, inc := range sb.Incidents {
			for _, s := range []string{inc.ID, inc.RunID, inc.CreatedAt.UTC().Format(time.RFC3339Nano)} {
				if !wholeInOrder(between(text, "Incidents in the period", "How to verify"), s) {
					t.Errorf("incidents: %q not whole in the table", s)
				}
			}
		}
		if !nanoTime.MatchString(squash(text)) || !wholeInOrder(text, "2026-03-01T09:00:00.987654321Z") {
			t.Errorf("no time to the nanosecond in the SOC2 tables: the fixture does not test what it should")
		}
		var cut []string
		for _, l := range strings.Split(between(text, "Population:", "How to verify this report"), "\n") {
			if strings.Contains(l, "…") && !strings.HasPrefix(strings.TrimLeft(l, "\f"), "stopline · SOC 2 evidence report") { // the running header is cut
				cut = append(cut, l)
			}
		}
		if cut != nil {
			t.Errorf("population or incident cells cut with …: %q", cut)
		}
		// The population spans pages; its header repeats on each.
		popPages := strings.Split(between(text, "Population:", "Incidents in the period"), "\f")
		if len(popPages) < 2 {
			t.Fatalf("the population of %d runs fits one page (%d pages in all): page breaks are not tested", runs, pages)
		}
		for i, p := range popPages {
			if !strings.Contains(p, "Created (UTC)") {
				t.Errorf("population page %d has no table header", i+1)
			}
		}
	})

	t.Run("versions in force 0 is missing evidence", func(t *testing.T) {
		_, text := fixture.PDFCheck(t, dataOf(t, soc2))
		for _, s := range []string{"0 · missing", "Missing evidence: no published policy version was in force during the compliance period"} {
			if !strings.Contains(squash(text), squash(s)) {
				t.Errorf("text lacks %q", s)
			}
		}
		// Not in green: the OK fill is not used; it is with versions in force.
		ok := []byte("0.820 0.906 0.867 rg")
		if bytes.Contains(uncompressed(t, dataOf(t, soc2)), ok) {
			t.Errorf("the SOC2 report without versions in force uses the OK (green) fill")
		}
		f := fixture.New(t, nil)
		if !bytes.Contains(uncompressed(t, dataOf(t, renderAll(t, f.Exp)[bundle.TypeSOC2])), ok) {
			t.Errorf("the SOC2 report with versions in force does not use the OK fill: this test cannot fail")
		}
	})

	t.Run("sign-off block", func(t *testing.T) {
		for _, a := range []*export.Artifact{soc2, debrief} {
			_, text := fixture.PDFCheck(t, dataOf(t, a))
			pages := strings.Split(strings.TrimRight(text, "\f"), "\f")
			last := pages[len(pages)-1]
			for _, s := range []string{"Reviewer sign-off", "Reviewer name", "Role", "Date", "Signature", a.Sealed.Hash} {
				if !strings.Contains(last, s) {
					t.Errorf("%s: the last page lacks %q", a.Sealed.Bundle.Type(), s)
				}
			}
			if i := strings.LastIndex(last, "Reviewer sign-off"); i < strings.LastIndex(last, "Bundle SHA-256") && !strings.Contains(last[i:], "Signature") {
				t.Errorf("%s: the sign-off block is not whole at the end", a.Sealed.Bundle.Type())
			}
		}
	})

	t.Run("no nanoseconds in prose", func(t *testing.T) {
		for _, a := range []*export.Artifact{debrief, evidence} {
			_, text := fixture.PDFCheck(t, dataOf(t, a))
			if m := nanoTime.FindAllString(text, 3); m != nil {
				t.Errorf("%s: times to the nanosecond: %q", a.Sealed.Bundle.Type(), m)
			}
		}
		_, text := fixture.PDFCheck(t, dataOf(t, soc2))
		// Outside the three tables (versions, population, incidents), which
		// keep full precision.
		for _, part := range []string{text[:strings.Index(text, "Policy version history")], text[strings.Index(text, "How to verify this report"):]} {
			if m := nanoTime.FindAllString(part, 3); m != nil {
				t.Errorf("soc2: times to the nanosecond in prose: %q", m)
			}
		}
		// The prose reads to the millisecond.
		if !strings.Contains(squash(text), squash("generated by stopline on 2026-03-01 10:00:00.123 UTC")) {
			t.Errorf("the attestation does not state its time to the millisecond")
		}
	})

	t.Run("chart drawn", func(t *testing.T) {
		for _, a := range []*export.Artifact{debrief, evidence} {
			checkChart(t, a, 3)
		}
	})

	t.Run("deterministic", func(t *testing.T) {
		again, err := export.New(st, export.WithClock(governance.NewFakeClock(fixture.T0.Add(time.Hour+123456789*time.Nanosecond))),
			export.WithSigner(fixture.Key("k")), export.WithRenderer(fixture.Renderer(t)))
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range []*export.Artifact{soc2, debrief, evidence} {
			b := exportPDF(t, again, a.Sealed.Bundle.Type(), export.Request{IncidentID: incID, ExportedBy: "alice"})
			if !bytes.Equal(dataOf(t, a), dataOf(t, b)) {
				t.Errorf("%s: two renderings differ", a.Sealed.Bundle.Type())
			}
		}
	})
}

// wholeInOrder reports whether s is in text whole, possibly in pieces
// (a wrapped cell's lines) that come in order, others between them.
func wholeInOrder(text, s string) bool {
	tokens := strings.Fields(text)
	for i, t := range tokens {
		if len(t) < 4 || !strings.HasPrefix(s, t) {
			continue
		}
		rest := s[len(t):]
		for j := i + 1; rest != "" && j < len(tokens) && j < i+100; j++ {
			if tj := tokens[j]; len(tj) >= min(3, len(rest)) && strings.HasPrefix(rest, tj) {
				rest = rest[len(tj):]
			}
		}
		if rest == "" {
			return true
		}
	}
	return false
}

// between is the part of s from the first from to the next to after it.
func between(s, from, to string) string {
	i := strings.Index(s, from)
	if i < 0 {
		return ""
	}
	s = s[i:]
	if j := strings.Index(s, to); j >= 0 {
		return s[:j]
	}
	return s
}

// uncompressed is the PDF with its streams uncompressed (qpdf), so that
// its content streams can be read.
func uncompressed(t *testing.T, data []byte) []byte {
	t.Helper()
	in := fixture.WriteTemp(t, data, "in.pdf")
	out := filepath.Join(filepath.Dir(in), "out.pdf")
	if b, err := exec.Command("qpdf", "--qdf", "--object-streams=disable", in, out).CombinedOutput(); err != nil {
		t.Fatalf("qpdf --qdf: %v\n%s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The chart's marker colour (colorMarker) as fpdf writes it, and the
// cost line's.
var (
	markerRGB = [3]uint8{220, 20, 60}
	costRGB   = [3]uint8{13, 71, 161}
)

// lineTo matches a path segment of the chart's lines (fpdf LineTo); table
// rules and frames are written as whole "m … l S" lines instead.
var lineTo = regexp.MustCompile(`(?m)^-?[\d.]+ -?[\d.]+ l$`)

// checkChart checks the chart is drawn in a report: the content streams
// set the marker colour and a dash pattern and draw at most a few hundred
// segments, and the pages, rendered (pdftoppm), show pixels of the
// marker's colour. The chart is on one of the first pages.
func checkChart(t *testing.T, a *export.Artifact, pages int) {
	t.Helper()
	typ := a.Sealed.Bundle.Type()
	raw := uncompressed(t, dataOf(t, a))
	for _, op := range []string{"0.863 0.078 0.235 RG", "0.863 0.078 0.235 rg", "] 0.00 d"} {
		if !bytes.Contains(raw, []byte(op)) {
			t.Errorf("%s: the content streams lack %q", typ, op)
		}
	}
	// Two staircases of at most 2×200+1 segments each.
	if n := len(lineTo.FindAll(raw, -1)); n < 4 || n > 2*(2*200+2) {
		t.Errorf("%s: %d chart segments, want 4 to %d", typ, n, 2*(2*200+2))
	}
	if _, err := exec.LookPath("pdftoppm"); err != nil {
		if os.Getenv("STOPLINE_REQUIRE_PDF_TOOLS") == "1" {
			t.Fatal("pdftoppm not found: install poppler-utils")
		}
		t.Skip("pdftoppm not found: install poppler-utils")
	}
	in := fixture.WriteTemp(t, dataOf(t, a), "doc.pdf")
	prefix := filepath.Join(filepath.Dir(in), "page")
	if b, err := exec.Command("pdftoppm", "-r", "100", "-png", "-f", "1", "-l", fmt.Sprint(pages), in, prefix).CombinedOutput(); err != nil {
		t.Fatalf("pdftoppm: %v\n%s", err, b)
	}
	files, _ := filepath.Glob(prefix + "*.png")
	marker, cost := 0, 0
	for _, f := range files {
		marker += countColour(t, f, markerRGB)
		cost += countColour(t, f, costRGB)
	}
	if marker < 40 || cost < 40 {
		t.Errorf("%s: %d pixels of the marker colour and %d of the cost line's on the first %d pages, want 40 or more each", typ, marker, cost, pages)
	}
}

// countColour counts the pixels of a PNG within 12 of c in each channel.
func countColour(t *testing.T, file string, c [3]uint8) int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	near := func(a uint32, b uint8) bool { d := int(a>>8) - int(b); return d >= -12 && d <= 12 }
	n := 0
	bounds := img.Bounds()
	for y := bounds.Min.Y; y < bounds.Max.Y; y++ {
		for x := bounds.Min.X; x < bounds.Max.X; x++ {
			r, g, b, _ := img.At(x, y).RGBA()
			if near(r, c[0]) && near(g, c[1]) && near(b, c[2]) {
				n++
			}
		}
	}
	return n
}

// TestChartOneStepWithoutLimits: a run of one step, blocked, under a
// policy set with no budget at all: the chart says there is no limit and
// marks the inflection.
func TestChartOneStepWithoutLimits(t *testing.T) {
	fixture.NeedPDFTools(t)
	st := memstore.New()
	clock := governance.NewFakeClock(fixture.T0)
	r, err := governance.NewRunner(st, governance.WithKinds(fixture.Kinds), governance.WithClock(clock), governance.WithIDGenerator(fixture.IDs()))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Parse("policy.json", []byte(`{"tenant_id": "acme", "policies": [{"id": "tools", "kind": "tool_allowlist", "params": {"allow": ["search"]}}]}`), clock.Now(), fixture.Kinds)
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(300 * time.Millisecond)
	var v *governance.Violation
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell", Tokens: 3, CostCents: 0.01}); !errors.As(err, &v) {
		t.Fatalf("got %v, want a violation", err)
	}
	exp, err := export.New(st, export.WithClock(governance.NewFakeClock(fixture.T0.Add(time.Hour))), export.WithRenderer(fixture.Renderer(t)))
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []bundle.Type{bundle.TypeEvidence, bundle.TypeExecutiveDebrief} {
		a := exportPDF(t, exp, typ, export.Request{IncidentID: v.IncidentID})
		_, text := fixture.PDFCheck(t, dataOf(t, a))
		for _, s := range []string{"no cost limit in force", "no token limit in force", "No step limit in force.", "▶ step 0: stopped by policy tools (policy_block)", "0 warnings"} {
			if !strings.Contains(text, s) {
				t.Errorf("%s: chart lacks %q", typ, s)
			}
		}
		checkChart(t, a, 3)
	}
}

// TestChartLongRun: the chart of a run of 1,000 steps draws at most a few
// hundred segments (the steps are grouped into the axis's 200 columns),
// in the evidence report and in the debrief, which reads the steps from
// the chain.
func TestChartLongRun(t *testing.T) {
	fixture.NeedPDFTools(t)
	st := memstore.New()
	_, incID := fixture.LongRun(t, st, 1000)
	f := &fixture.F{Store: st, Key: fixture.Key("k")}
	f.Pub = f.Key.Public().(ed25519.PublicKey)
	exp := f.Exporter(t)
	for _, typ := range []bundle.Type{bundle.TypeEvidence, bundle.TypeExecutiveDebrief} {
		a := exportPDF(t, exp, typ, export.Request{IncidentID: incID})
		_, text := fixture.PDFCheck(t, dataOf(t, a))
		for _, s := range []string{"1,000", "Step limit: max_steps 999 (step-limit).", "▶ step 999: stopped by policy step-limit (budget_exceeded)", "limit 100 ¢: max_cost_cents (cost-budget)"} {
			if !strings.Contains(text, s) {
				t.Errorf("%s: chart lacks %q", typ, s)
			}
		}
		checkChart(t, a, 3)
	}
}

// TestChartNoStep: a run that ended without a step still has its chart,
// which says so.
func TestChartNoStep(t *testing.T) {
	fixture.NeedPDFTools(t)
	st := memstore.New()
	clock := governance.NewFakeClock(fixture.T0)
	r, err := governance.NewRunner(st, governance.WithKinds(fixture.Kinds), governance.WithClock(clock), governance.WithIDGenerator(fixture.IDs()))
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: fixture.Policy(t, "acme", 5, clock.Now())})
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(2 * time.Second)
	if _, err := run.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	exp, err := export.New(st, export.WithClock(governance.NewFakeClock(fixture.T0.Add(time.Hour))), export.WithRenderer(fixture.Renderer(t)))
	if err != nil {
		t.Fatal(err)
	}
	a := exportPDF(t, exp, bundle.TypeEvidence, export.Request{RunID: run.ID()})
	_, text := fixture.PDFCheck(t, dataOf(t, a))
	for _, s := range []string{"The run over time", "No step was recorded.", "no policy stopped the run", "limit 100 ¢: max_cost_cents (cost-budget)", "Step limit: max_steps 5 (step-limit)."} {
		if !strings.Contains(text, s) {
			t.Errorf("chart lacks %q", s)
		}
	}
}
