package export_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/kinds/cel"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// testKinds are the built-in policy kinds and CEL expressions.
var testKinds = func() *prevention.Kinds {
	k, err := prevention.NewKinds(cel.Kind())
	if err != nil {
		panic(err)
	}
	return k
}()

var ctx = context.Background()

// T0 is when the fixture's clock starts.
var T0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// policyJSON is the fixture's policy set: a step limit, a cost budget, a
// tool allowlist with Cyrillic and CJK tool names, and a warn-mode
// expression that flags long outputs.
const policyJSON = `{
  "tenant_id": "TENANT",
  "thresholds": {"max_steps": MAXSTEPS, "max_cost_cents": 100},
  "policies": [
    {"id": "step-limit", "kind": "budget", "params": {"metric": "steps", "threshold": "max_steps"}},
    {"id": "cost-budget", "kind": "budget", "params": {"metric": "cost_cents", "threshold": "max_cost_cents"}},
    {"id": "tools", "kind": "tool_allowlist", "params": {"allow": ["search", "поиск", "検索"]}},
    {"id": "long-output", "kind": "expression", "params": {"expr": "size(step.output) > 40"}, "enforcement": "warn"}
  ]
}`

func policy(t testing.TB, tenant string, maxSteps int, at time.Time) *snapshot.PolicySnapshot {
	t.Helper()
	src := strings.NewReplacer("TENANT", tenant, "MAXSTEPS", strconv.Itoa(maxSteps)).Replace(policyJSON)
	s, err := snapshot.Parse("policy.json", []byte(src), at, testKinds)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// seqIDs makes RUN-0001, TRC-0001, INC-0001, ...
type seqIDs struct {
	mu sync.Mutex
	n  map[string]int
}

func (g *seqIDs) next(kind string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == nil {
		g.n = map[string]int{}
	}
	g.n[kind]++
	return fmt.Sprintf("%s-%04d", strings.ToUpper(kind[:3]), g.n[kind])
}

// fixture is a store with governed runs of two tenants:
//
//	acme RUN-0001: stopped at step 3 by "tools" (tool_call "shell"): INC-0001
//	acme RUN-0002: stopped at step 1 by "cost-budget": INC-0002
//	acme RUN-0003: completed, 2 steps
//	globex RUN-0004: stopped at step 3 by "tools": INC-0003
type fixture struct {
	store  governance.Store
	runner *governance.Runner
	clock  *governance.FakeClock
	key    ed25519.PrivateKey
	pub    ed25519.PublicKey
	exp    *export.Exporter
}

// testKey is a fixed key, so that golden files and examples are stable.
func testKey(seed string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(s[:])
}

func newFixture(t testing.TB, st governance.Store) *fixture {
	t.Helper()
	if st == nil {
		st = memstore.New()
	}
	f := &fixture{store: st, clock: governance.NewFakeClock(T0.Add(-60 * 24 * time.Hour)), key: testKey("stopline export test key")}
	f.pub = f.key.Public().(ed25519.PublicKey)
	r, err := governance.NewRunner(st, governance.WithKinds(testKinds), governance.WithClock(f.clock), governance.WithIDGenerator((&seqIDs{}).next))
	if err != nil {
		t.Fatal(err)
	}
	f.runner = r
	// Two policy versions for acme: v1 long ago, v2 (the one runs take) a day before T0.
	if _, err := r.Publish(ctx, policy(t, "acme", 100, f.clock.Now()), "alice", "initial policy set"); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(T0.Add(-24 * time.Hour))
	if _, err := r.Publish(ctx, policy(t, "acme", 50, f.clock.Now()), "bob", "tighten the step limit to 50"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Publish(ctx, policy(t, "globex", 50, f.clock.Now()), "carol", "globex policies"); err != nil {
		t.Fatal(err)
	}
	f.clock.Set(T0)
	f.stoppedRun(t, "acme")
	f.budgetRun(t)
	f.completedRun(t)
	f.stoppedRun(t, "globex")
	f.exp = f.exporter(t)
	return f
}

func (f *fixture) exporter(t testing.TB, opts ...export.Option) *export.Exporter {
	t.Helper()
	clock := governance.NewFakeClock(T0.Add(time.Hour))
	e, err := export.New(f.store, append([]export.Option{export.WithClock(clock), export.WithSigner(f.key)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (f *fixture) step(t testing.TB, run *governance.Run, in governance.StepInput) error {
	t.Helper()
	f.clock.Advance(1500 * time.Millisecond)
	_, err := run.Step(ctx, in)
	return err
}

// stoppedRun: an LLM response (Greek model name), a tool call to "поиск",
// a tool result of "検索" with a long output (a warning), then a tool call
// to "shell", which the allowlist blocks.
func (f *fixture) stoppedRun(t testing.TB, tenant string) {
	t.Helper()
	run, err := f.runner.Start(ctx, governance.StartOptions{TenantID: tenant, Labels: map[string]string{"agent": "researcher"}})
	if err != nil {
		t.Fatal(err)
	}
	steps := []governance.StepInput{
		{Type: prevention.StepLLMResponse, Model: "μοντέλο-4", Input: "Найди отчёт", Output: "Ищу отчёт", Tokens: 120, CostCents: 1.5},
		{Type: prevention.StepToolCall, Tool: "поиск", Input: "квартальный отчёт", Tokens: 10, CostCents: 0.25},
		{Type: prevention.StepToolResult, Tool: "検索", Output: "検索結果: 四半期報告書が見つかりました — quarterly report found in the archive", Tokens: 300, CostCents: 2},
		{Type: prevention.StepToolCall, Tool: "shell", Input: "rm -rf /tmp/reports", Tokens: 15, CostCents: 0.5},
	}
	for i, s := range steps {
		err := f.step(t, run, s)
		if i < len(steps)-1 && err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if i == len(steps)-1 && !errors.Is(err, governance.ErrPolicyViolation) {
			t.Fatalf("step %d: got %v, want a violation", i, err)
		}
	}
}

func (f *fixture) budgetRun(t testing.TB) {
	t.Helper()
	run, err := f.runner.Start(ctx, governance.StartOptions{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.step(t, run, governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Tokens: 1000, CostCents: 60}); err != nil {
		t.Fatal(err)
	}
	if err := f.step(t, run, governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Tokens: 1000, CostCents: 60}); !errors.Is(err, governance.ErrPolicyViolation) {
		t.Fatalf("budget step: got %v, want a violation", err)
	}
}

func (f *fixture) completedRun(t testing.TB) {
	t.Helper()
	run, err := f.runner.Start(ctx, governance.StartOptions{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if err := f.step(t, run, governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Tokens: 5, CostCents: 0.1}); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Advance(time.Second)
	if _, err := run.Finish(ctx); err != nil {
		t.Fatal(err)
	}
}

// longRun records a run of n steps whose last step is blocked by the
// step limit, and returns the run and incident ids.
func longRun(t testing.TB, st governance.Store, n int) (runID, incidentID string) {
	t.Helper()
	clock := governance.NewFakeClock(T0)
	r, err := governance.NewRunner(st, governance.WithKinds(testKinds), governance.WithClock(clock), governance.WithIDGenerator((&seqIDs{}).next))
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: policy(t, "acme", n-1, T0)})
	if err != nil {
		t.Fatal(err)
	}
	tools := []string{"search", "поиск", "検索"}
	for i := 0; i < n; i++ {
		clock.Advance(250 * time.Millisecond)
		in := governance.StepInput{Type: prevention.StepToolCall, Tool: tools[i%3], Input: "q", Tokens: 7, CostCents: 0.001}
		if i%2 == 1 {
			in = governance.StepInput{Type: prevention.StepLLMResponse, Model: "μοντέλο-4", Output: "ok", Tokens: 40, CostCents: 0.002}
		}
		_, err := run.Step(ctx, in)
		var v *governance.Violation
		switch {
		case i < n-1 && err != nil:
			t.Fatalf("step %d: %v", i, err)
		case i == n-1 && !errors.As(err, &v):
			t.Fatalf("step %d: got %v, want a violation", i, err)
		case i == n-1:
			return run.ID(), v.IncidentID
		}
	}
	return "", ""
}

// --- PDF tools: an independent parser (poppler, qpdf) checks the PDFs ---

// needPDFTools skips the test when poppler-utils or qpdf are missing,
// unless STOPLINE_REQUIRE_PDF_TOOLS=1 (as in CI), when it fails it.
func needPDFTools(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"pdftotext", "pdfinfo", "qpdf"} {
		if _, err := exec.LookPath(tool); err != nil {
			msg := fmt.Sprintf("%s not found: install poppler-utils and qpdf (apt-get install -y poppler-utils qpdf) to check PDFs with an independent parser", tool)
			if os.Getenv("STOPLINE_REQUIRE_PDF_TOOLS") == "1" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
}

func writeTemp(t testing.TB, data []byte, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// pdfCheck runs qpdf --check and returns the page count (pdfinfo) and
// the text (pdftotext).
func pdfCheck(t testing.TB, data []byte) (pages int, text string) {
	t.Helper()
	p := writeTemp(t, data, "doc.pdf")
	if out, err := exec.Command("qpdf", "--check", p).CombinedOutput(); err != nil {
		t.Fatalf("qpdf --check: %v\n%s", err, out)
	}
	info, err := exec.Command("pdfinfo", p).CombinedOutput()
	if err != nil {
		t.Fatalf("pdfinfo: %v\n%s", err, info)
	}
	m := regexp.MustCompile(`(?m)^Pages:\s+(\d+)$`).FindSubmatch(info)
	if m == nil {
		t.Fatalf("pdfinfo: no page count in\n%s", info)
	}
	pages, _ = strconv.Atoi(string(m[1]))
	txt, err := exec.Command("pdftotext", "-enc", "UTF-8", p, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext: %v\n%s", err, txt)
	}
	return pages, string(txt)
}

// pdfLayoutText is the text of a PDF with its layout kept (pdftotext
// -layout): a table row is one line.
func pdfLayoutText(t testing.TB, data []byte) string {
	t.Helper()
	p := writeTemp(t, data, "doc.pdf")
	txt, err := exec.Command("pdftotext", "-layout", "-enc", "UTF-8", p, "-").CombinedOutput()
	if err != nil {
		t.Fatalf("pdftotext -layout: %v\n%s", err, txt)
	}
	return string(txt)
}

// fallbackFont returns a CJK TrueType font installed on the machine
// (Debian's fonts-droid-fallback), or nil.
func fallbackFont(t testing.TB) []byte {
	t.Helper()
	for _, p := range []string{
		"/usr/share/fonts-droid-fallback/truetype/DroidSansFallback.ttf",
		"/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
	} {
		if b, err := os.ReadFile(p); err == nil {
			return b
		}
	}
	return nil
}
