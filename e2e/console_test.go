package e2e_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"image"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/console"
	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/pdf"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/demo"
	"github.com/stopline/stopline/store/sqlite"
)

// browserPath finds Chromium, or skips the test (fails it when
// STOPLINE_REQUIRE_BROWSER=1).
func browserPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("STOPLINE_REQUIRE_BROWSER") == "1" {
		t.Fatal("no Chromium found (chromium, chromium-browser, google-chrome) and STOPLINE_REQUIRE_BROWSER=1")
	}
	t.Skip("no Chromium found; install Debian's chromium package (STOPLINE_REQUIRE_BROWSER=1 makes this a failure)")
	return ""
}

// site is the console over a real SQLite file with the demo's runs.
type site struct {
	url   string
	store *sqlite.Store
	runs  demo.Runs
}

func newSite(t *testing.T) *site {
	t.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "stopline.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	runs, err := demo.Record(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	renderer, err := pdf.New()
	if err != nil {
		t.Fatal(err)
	}
	seed := sha256.Sum256([]byte("stopline e2e"))
	exp, err := export.New(st, export.WithRenderer(renderer), export.WithSigner(ed25519.NewKeyFromSeed(seed[:])))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := access.NewAuthenticator(st)
	if err != nil {
		t.Fatal(err)
	}
	c, err := console.New(exp, console.WithTokens(auth),
		console.WithExtension(console.Approvals(st)), console.WithExtension(console.KillSwitches(st)))
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", c)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &site{url: srv.URL, store: st, runs: runs}
}

func (s *site) token(t *testing.T, role access.Role) string {
	t.Helper()
	secret, _, err := access.Issue(context.Background(), s.store, access.TokenRequest{TenantID: "acme", Role: role, Name: "e2e " + role.String(), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return secret
}

// newBrowser starts headless Chromium for the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browserPath(t)), chromedp.WindowSize(1280, 1000),
		chromedp.Flag("hide-scrollbars", true), chromedp.Flag("force-device-scale-factor", "1"))
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium's sandbox refuses to run as root (CI containers)
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

func signIn(t *testing.T, ctx context.Context, s *site, secret string) {
	t.Helper()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/console/runs"), // signed out: sent to sign in
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), secret),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS("#runs")),
	); err != nil {
		t.Fatalf("signing in: %v", err)
	}
}

// inflectionRGB is console.InflectionColor.
var inflectionRGB = func() [3]uint8 {
	var c [3]uint8
	h := strings.TrimPrefix(console.InflectionColor, "#")
	for i := range 3 {
		var v uint8
		for _, ch := range h[2*i : 2*i+2] {
			v <<= 4
			switch {
			case ch >= '0' && ch <= '9':
				v |= uint8(ch - '0')
			default:
				v |= uint8(ch-'a') + 10
			}
		}
		c[i] = v
	}
	return c
}()

// countColour counts the pixels of img within 6 of rgb in every channel.
func countColour(img image.Image, rgb [3]uint8) int {
	n := 0
	b := img.Bounds()
	near := func(a uint32, want uint8) bool {
		d := int(a>>8) - int(want)
		return d >= -6 && d <= 6
	}
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if near(r, rgb[0]) && near(g, rgb[1]) && near(bl, rgb[2]) {
				n++
			}
		}
	}
	return n
}

// TestRunPageShowsInflection: signed in as a viewer, the blocked run's
// page draws the timeline with the inflection marker visible; its
// screenshot is a PNG holding the marker's colour, which a completed run's
// page does not hold; clicking the marker explains the run at that
// instant.
func TestRunPageShowsInflection(t *testing.T) {
	s := newSite(t)
	ctx := newBrowser(t)
	signIn(t, ctx, s, s.token(t, access.Viewer))

	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/console/runs/"+s.runs.Blocked),
		chromedp.WaitVisible(chromedp.CSS("#timeline")),
		chromedp.WaitVisible(chromedp.CSS("#inflection-marker")),
	); err != nil {
		t.Fatal(err)
	}
	box, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]float64](`(() => {
		const r = document.querySelector('#inflection-marker').getBoundingClientRect();
		return {w: r.width, h: r.height, x: r.x, y: r.y};
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	if box["w"] < 10 || box["h"] < 10 {
		t.Fatalf("inflection marker is %gx%g px, want a visible marker", box["w"], box["h"])
	}
	shot, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("#timeline")))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatalf("timeline screenshot is not a PNG: %v", err)
	}
	if n := countColour(img, inflectionRGB); n < 100 {
		t.Errorf("timeline screenshot holds %d pixels of the inflection colour %s, want the marker's (at least 100)", n, console.InflectionColor)
	}
	page, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(page)); err != nil {
		t.Fatalf("page screenshot is not a PNG: %v", err)
	}
	if os.Getenv("STOPLINE_WRITE_SCREENSHOT") == "1" {
		if err := os.WriteFile(filepath.Join("..", "docs", "console.png"), page, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Log("wrote ../docs/console.png")
	}

	// The completed run has no inflection: no marker, none of its colour.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/console/runs/"+s.runs.Completed),
		chromedp.WaitVisible(chromedp.CSS("#timeline")),
	); err != nil {
		t.Fatal(err)
	}
	shot, err = chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS("#timeline")))
	if err != nil {
		t.Fatal(err)
	}
	img, err = png.Decode(bytes.NewReader(shot))
	if err != nil {
		t.Fatal(err)
	}
	if n := countColour(img, inflectionRGB); n > 0 {
		t.Errorf("a completed run's timeline holds %d pixels of the inflection colour", n)
	}

	// Clicking the marker explains the run at the inflection point.
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/console/runs/"+s.runs.Blocked),
		chromedp.WaitVisible(chromedp.CSS("#inflection-marker")),
		chromedp.Click(chromedp.CSS("#inflection-marker")),
		chromedp.WaitVisible(chromedp.CSS("#explain")),
	); err != nil {
		t.Fatal(err)
	}
	why, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#explain")))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(why, "cost-budget") {
		t.Errorf("explanation at the inflection does not name the cost budget:\n%s", why)
	}
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	if !strings.Contains(loc, "at=") {
		t.Errorf("explaining did not put the instant in the address: %s", loc)
	}
}

// TestIncidentAcknowledgeAndExport: an operator acknowledges the incident
// through the form (its CSRF token included), the store records it with
// the token as the actor, and the evidence PDF downloads.
func TestIncidentAcknowledgeAndExport(t *testing.T) {
	s := newSite(t)
	ctx := newBrowser(t)
	signIn(t, ctx, s, s.token(t, access.Operator))

	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/console/incidents/"+s.runs.Incident),
		chromedp.WaitVisible(chromedp.CSS("#acknowledge")),
		chromedp.Click(chromedp.CSS("#acknowledge")),
		chromedp.WaitVisible(chromedp.CSS("#acknowledged")),
	); err != nil {
		t.Fatal(err)
	}
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("#incident-status")))
	if err != nil || status != "acknowledged" {
		t.Errorf("status shown: %q %v", status, err)
	}
	inc, err := s.store.Incident(context.Background(), "acme", s.runs.Incident)
	if err != nil || inc.Status != "acknowledged" || !strings.HasPrefix(inc.AcknowledgedBy, "token:TOK-") {
		t.Errorf("stored: %s by %q, %v", inc.Status, inc.AcknowledgedBy, err)
	}

	dir := t.TempDir()
	progress := chromedp.BrowserEvents(ctx, browser.DownloadProgress)
	if err := chromedp.Do(ctx,
		chromedp.Func(func(ctx context.Context, _ *chromedp.Target) error {
			yes := true
			_, err := chromedp.CallBrowser(ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
				Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &yes})
			return err
		}),
		chromedp.Click(chromedp.CSS("#export-evidence")),
	); err != nil && !strings.Contains(err.Error(), "net::ERR_ABORTED") {
		t.Fatal(err)
	}
	var file string
	for ev, err := range progress {
		if err != nil {
			t.Fatal(err)
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			t.Fatal("the download was cancelled")
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			file = filepath.Join(dir, ev.GUID)
			break
		}
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("%PDF-")) {
		t.Errorf("downloaded evidence is not a PDF: %.40q", b)
	}
	log, err := s.store.Exports(context.Background(), governance.ExportFilter{TenantID: "acme"})
	if err != nil || len(log) != 1 || log[0].Format != "pdf" || !strings.HasPrefix(log[0].ExportedBy, "token:") {
		t.Errorf("export log: %+v %v", log, err)
	}
}

// TestViewerSeesNoActions: a viewer's incident page offers neither
// acknowledge nor exports, and another tenant's run is not found.
func TestViewerSeesNoActions(t *testing.T) {
	s := newSite(t)
	ctx := newBrowser(t)
	signIn(t, ctx, s, s.token(t, access.Viewer))
	if err := chromedp.Do(ctx,
		chromedp.Navigate(s.url+"/console/incidents/"+s.runs.Incident),
		chromedp.WaitVisible(chromedp.CSS("#incident-status")),
	); err != nil {
		t.Fatal(err)
	}
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('#acknowledge, #resolve, .exports').length`))
	if err != nil || n != 0 {
		t.Errorf("a viewer sees %d action elements (%v)", n, err)
	}
	resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(s.url+"/console/runs/"+s.runs.Other))
	if err != nil && !errors.Is(err, context.Canceled) {
		t.Fatal(err)
	}
	if resp == nil || resp.Status != http.StatusNotFound {
		t.Errorf("another tenant's run: %+v", resp)
	}
}
