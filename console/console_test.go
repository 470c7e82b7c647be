package console_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/console"
	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/demo"
	"github.com/stopline/stopline/store/memstore"
)

var ctx = context.Background()

type fixture struct {
	srv   *httptest.Server
	store *memstore.Store
	runs  demo.Runs
	logs  *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFixture(t *testing.T, opts ...console.Option) *fixture {
	t.Helper()
	return newFixtureWith(t, func(governance.Store) []console.Option { return opts })
}

// newFixtureWith is newFixture with options made from its store.
func newFixtureWith(t *testing.T, optsOf func(governance.Store) []console.Option) *fixture {
	t.Helper()
	st := memstore.New()
	opts := optsOf(st)
	runs, err := demo.Record(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := export.New(st, export.WithClock(governance.NewFakeClock(demo.T0.Add(time.Hour))))
	if err != nil {
		t.Fatal(err)
	}
	auth, err := access.NewAuthenticator(st, access.WithClock(func() time.Time { return demo.T0.Add(time.Hour) }))
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	c, err := console.New(exp, append([]console.Option{console.WithTokens(auth), console.WithLogger(slog.New(slog.NewTextHandler(logs, nil)))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, store: st, runs: runs, logs: logs}
}

// client signs in with a new token of tenant and role and returns a
// client that keeps the session cookie.
func (f *fixture) client(t *testing.T, tenant string, role access.Role) *http.Client {
	t.Helper()
	secret, _, err := access.Issue(ctx, f.store, access.TokenRequest{TenantID: tenant, Role: role, Name: role.String(), TTL: 24 * time.Hour, Now: demo.T0})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	resp, err := cl.PostForm(f.srv.URL+"/console/login", url.Values{"token": {secret}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "<h1>Runs</h1>") {
		t.Fatalf("sign-in as %s %s: %d\n%s", tenant, role, resp.StatusCode, body)
	}
	return cl
}

func get(t *testing.T, cl *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := cl.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("no CSRF field on the page")
	}
	return m[1]
}

func TestRunPageTimeline(t *testing.T) {
	f := newFixture(t)
	cl := f.client(t, "acme", access.Viewer)
	status, page := get(t, cl, f.srv.URL+"/console/runs/"+f.runs.Blocked)
	if status != 200 {
		t.Fatalf("run page: %d\n%s", status, page)
	}
	for _, want := range []string{
		`<svg id="timeline"`, `id="inflection"`, `id="inflection-marker"`, `fill="` + console.InflectionColor + `"`,
		`class="step step-warning"`, `class="series series-cost"`, `class="series series-tokens"`,
		`cost limit 100 cents`, `tokens limit 60000 tokens`, `stopped at step 8`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("run page lacks %s", want)
		}
	}
	if strings.Count(page, console.InflectionColor) != 1 {
		t.Errorf("the inflection colour appears %d times, want only on the marker", strings.Count(page, console.InflectionColor))
	}
	if strings.Contains(page, "export/evidence") {
		t.Error("a viewer's run page offers exports")
	}
	// Explain at an instant: the link the timeline gives for step 5.
	m := regexp.MustCompile(`href="\?at=([^"#]+)#explain"`).FindAllStringSubmatch(page, -1)
	if len(m) < 10 {
		t.Fatalf("%d explain links on the timeline", len(m))
	}
	status, ex := get(t, cl, f.srv.URL+"/console/runs/"+f.runs.Blocked+"?at="+m[len(m)-1][1])
	if status != 200 || !strings.Contains(ex, `id="explain"`) || !strings.Contains(ex, "cost-budget") {
		t.Errorf("explain at the inflection %s: %d, explain section or policy missing\n%.300s", m[len(m)-1][1], status, ex)
	}
	status, ex = get(t, cl, f.srv.URL+"/console/runs/"+f.runs.Blocked+"?at="+url.QueryEscape(demo.T0.Add(3*time.Second).Format(time.RFC3339)))
	if status != 200 || !strings.Contains(ex, `id="explain"`) || !strings.Contains(ex, "continuing") && !strings.Contains(ex, "running") {
		t.Errorf("explain early in the run: %d", status)
	}
}

func TestTenantIsolationAndRoles(t *testing.T) {
	f := newFixture(t)
	viewer := f.client(t, "acme", access.Viewer)
	for _, p := range []string{"/console/runs/" + f.runs.Other, "/console/runs/RUN-9999", "/console/incidents/" + f.runs.OtherIncident, "/console/incidents/INC-9999"} {
		status, body := get(t, viewer, f.srv.URL+p)
		if status != 404 || strings.Contains(body, "globex") {
			t.Errorf("GET %s as acme: %d %q, want the same 404 for absent and another tenant's", p, status, body)
		}
	}
	_, runs := get(t, viewer, f.srv.URL+"/console/runs")
	if strings.Contains(runs, f.runs.Other) || !strings.Contains(runs, f.runs.Blocked) {
		t.Error("runs list shows another tenant's run or misses its own")
	}
	_, inc := get(t, viewer, f.srv.URL+"/console/incidents/"+f.runs.Incident)
	if strings.Contains(inc, `id="acknowledge"`) || strings.Contains(inc, "export/soc2") {
		t.Error("a viewer's incident page offers acknowledge or exports")
	}
	// A viewer's POST is refused even with its own CSRF token.
	resp, err := viewer.PostForm(f.srv.URL+"/console/incidents/"+f.runs.Incident+"/acknowledge", url.Values{"csrf": {csrfOf(t, inc)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("viewer acknowledging: %d, want 403", resp.StatusCode)
	}
	if status, _ := get(t, viewer, f.srv.URL+"/console/tokens"); status != 403 {
		t.Errorf("viewer on the tokens page: %d, want 403", status)
	}
	anon := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = anon.Get(f.srv.URL + "/console/runs")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/console/login" {
		t.Errorf("signed-out GET: %d to %q, want a redirect to sign in", resp.StatusCode, resp.Header.Get("Location"))
	}
	logs := f.logs.String()
	for _, want := range []string{"status=404", "status=403", "reason=\"access: token refused: missing\""} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %s:\n%s", want, logs)
		}
	}
}

func TestIncidentActionsNeedCSRF(t *testing.T) {
	f := newFixture(t)
	op := f.client(t, "acme", access.Operator)
	_, page := get(t, op, f.srv.URL+"/console/incidents/"+f.runs.Incident)
	if !strings.Contains(page, `id="acknowledge"`) {
		t.Fatal("an operator's incident page has no acknowledge button")
	}
	ack := f.srv.URL + "/console/incidents/" + f.runs.Incident + "/acknowledge"
	for name, form := range map[string]url.Values{"no token": {}, "wrong token": {"csrf": {strings.Repeat("0", 64)}}} {
		resp, err := op.PostForm(ack, form)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 {
			t.Errorf("%s: %d, want 403", name, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("POST", ack, strings.NewReader(url.Values{"csrf": {csrfOf(t, page)}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := op.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("cross-origin POST: %d, want 403", resp.StatusCode)
	}
	inc, _ := f.store.Incident(ctx, "acme", f.runs.Incident)
	if inc.Status != "open" {
		t.Fatalf("refused posts changed the incident to %s", inc.Status)
	}
	resp, err = op.PostForm(ack, url.Values{"csrf": {csrfOf(t, page)}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `id="incident-status" class="status status-acknowledged"`) {
		t.Fatalf("acknowledge: %d\n%s", resp.StatusCode, body)
	}
	inc, _ = f.store.Incident(ctx, "acme", f.runs.Incident)
	if inc.Status != "acknowledged" || !strings.HasPrefix(inc.AcknowledgedBy, "token:TOK-") {
		t.Errorf("stored incident %s by %q", inc.Status, inc.AcknowledgedBy)
	}
}

func TestExportDownload(t *testing.T) {
	f := newFixture(t)
	aud := f.client(t, "acme", access.Auditor)
	_, page := get(t, aud, f.srv.URL+"/console/incidents/"+f.runs.Incident)
	resp, err := aud.PostForm(f.srv.URL+"/console/incidents/"+f.runs.Incident+"/export/evidence", url.Values{"csrf": {csrfOf(t, page)}, "format": {"json"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Disposition"), `attachment; filename="evidence-`+f.runs.Incident) || !bytes.Contains(body, []byte("payloadType")) {
		t.Fatalf("evidence download: %d %q %.200s", resp.StatusCode, resp.Header.Get("Content-Disposition"), body)
	}
	log, err := f.store.Exports(ctx, governance.ExportFilter{TenantID: "acme"})
	if err != nil || len(log) != 1 || !strings.HasPrefix(log[0].ExportedBy, "token:") {
		t.Errorf("export log %+v %v", log, err)
	}
}

func TestPolicyDiff(t *testing.T) {
	f := newFixture(t)
	cl := f.client(t, "acme", access.Viewer)
	status, page := get(t, cl, f.srv.URL+"/console/policies?a=1&b=2")
	if status != 200 {
		t.Fatalf("diff: %d", status)
	}
	if !strings.Contains(page, `<span class="d del">-   &#34;max_cost_cents&#34;: 150,</span>`) ||
		!strings.Contains(page, `<span class="d add">&#43;   &#34;max_cost_cents&#34;: 100,</span>`) {
		t.Errorf("diff does not show the budget change:\n%s", page)
	}
	if status, _ := get(t, cl, f.srv.URL+"/console/policies?a=1&b=9"); status != 404 {
		t.Errorf("diff with an unknown version: %d, want 404", status)
	}
}

func TestNewRefusesAmbiguousAuth(t *testing.T) {
	st := memstore.New()
	exp, _ := export.New(st)
	auth, _ := access.NewAuthenticator(st)
	for name, opts := range map[string][]console.Option{
		"neither": nil,
		"both":    {console.WithTokens(auth), console.WithTrustedHeaders("X-T", "X-R", "X-A")},
		"bad key": {console.WithTokens(auth), console.WithCSRFKey([]byte("short"))},
	} {
		if _, err := console.New(exp, opts...); err == nil {
			t.Errorf("%s: built", name)
		}
	}
}

// A long run's page stays bounded: allowed steps are not drawn as dots
// past a thousand, nor listed past a thousand rows; warnings and the
// inflection point still are.
func TestLongRunPage(t *testing.T) {
	f := newFixture(t)
	clock := governance.NewFakeClock(demo.T0.Add(time.Hour))
	r, err := governance.NewRunner(f.store, governance.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1500 {
		clock.Advance(time.Second)
		if _, err := run.Step(ctx, governance.StepInput{Type: "llm_response", Tokens: 10, CostCents: 0.01}); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if _, err := run.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	status, page := get(t, f.client(t, "acme", access.Viewer), f.srv.URL+"/console/runs/"+run.ID())
	if status != 200 {
		t.Fatalf("%d", status)
	}
	if n := strings.Count(page, `class="step step-`); n != 0 {
		t.Errorf("%d dots drawn for a run of 1500 allowed steps", n)
	}
	if n := strings.Count(page, `<tr class="step-row`); n != 1000 {
		t.Errorf("%d step rows, want 1000", n)
	}
	if !strings.Contains(page, "500 more steps are not listed") || !strings.Contains(page, "1500 allowed steps not drawn") {
		t.Error("the page does not say what it left out")
	}
}

// An admin lists the tenant's tokens (never their secrets) and revokes
// one; another tenant's token is not found.
func TestAdminRevokesToken(t *testing.T) {
	f := newFixture(t)
	admin := f.client(t, "acme", access.Admin)
	victim, tok, _ := access.Issue(ctx, f.store, access.TokenRequest{TenantID: "acme", Role: access.Viewer, Name: "laptop", TTL: time.Hour, Now: demo.T0})
	_, other, _ := access.Issue(ctx, f.store, access.TokenRequest{TenantID: "globex", Role: access.Viewer, TTL: time.Hour, Now: demo.T0})
	status, page := get(t, admin, f.srv.URL+"/console/tokens")
	if status != 200 || !strings.Contains(page, tok.ID) || strings.Contains(page, other.ID) || strings.Contains(page, victim) {
		t.Fatalf("tokens page: %d; lists own %t, other tenant's %t, a secret %t", status,
			strings.Contains(page, tok.ID), strings.Contains(page, other.ID), strings.Contains(page, victim))
	}
	csrf := csrfOf(t, page)
	resp, err := admin.PostForm(f.srv.URL+"/console/tokens/"+other.ID+"/revoke", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("revoking another tenant's token: %d, want 404", resp.StatusCode)
	}
	if got, _ := f.store.Token(ctx, other.ID); got.RevokedAt != nil {
		t.Error("another tenant's token was revoked")
	}
	resp, err = admin.PostForm(f.srv.URL+"/console/tokens/"+tok.ID+"/revoke", url.Values{"csrf": {csrf}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, _ := f.store.Token(ctx, tok.ID); resp.StatusCode != 200 || got.RevokedAt == nil {
		t.Errorf("revoking: %d, revoked %v", resp.StatusCode, got.RevokedAt)
	}
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar}
	resp, err = cl.PostForm(f.srv.URL+"/console/login", url.Values{"token": {victim}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("signing in with a revoked token: %d, want 401", resp.StatusCode)
	}
}

// An admin publishes a policy version from the policies page; a viewer
// is shown no form and refused the route.
func TestPublishFromConsole(t *testing.T) {
	st := memstore.New()
	if _, err := demo.Record(ctx, st); err != nil {
		t.Fatal(err)
	}
	runner, err := governance.NewRunner(st)
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := export.New(st)
	c, err := console.New(exp, console.WithTrustedHeaders("X-Tenant", "X-Role", "X-Actor"), console.WithPublisher(runner))
	if err != nil {
		t.Fatal(err)
	}
	do := func(method, role string, form url.Values) *httptest.ResponseRecorder {
		path := "/console/policies"
		var body io.Reader
		if method == "POST" {
			path += "/publish"
			body = strings.NewReader(form.Encode())
		}
		req := httptest.NewRequest(method, path, body)
		req.Header.Set("X-Tenant", "acme")
		req.Header.Set("X-Role", role)
		req.Header.Set("X-Actor", "alice")
		if method == "POST" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		return rec
	}
	if rec := do("GET", "viewer", nil); strings.Contains(rec.Body.String(), `id="publish-form"`) {
		t.Error("a viewer is shown the publish form")
	}
	page := do("GET", "admin", nil).Body.String()
	if !strings.Contains(page, `id="publish-form"`) {
		t.Fatal("an admin is not shown the publish form")
	}
	csrf := csrfOf(t, page)
	src := `{"tenant_id": "acme", "thresholds": {"max_steps": 9}, "policies": [{"id": "steps", "kind": "budget", "params": {"metric": "steps", "threshold": "max_steps"}}]}`
	if rec := do("POST", "viewer", url.Values{"csrf": {csrfOf(t, do("GET", "viewer", nil).Body.String())}, "policy": {src}}); rec.Code != 403 {
		t.Errorf("viewer publishing: %d", rec.Code)
	}
	if rec := do("POST", "admin", url.Values{"csrf": {csrf}, "policy": {strings.Replace(src, "acme", "globex", 1)}}); rec.Code != 400 {
		t.Errorf("publishing another tenant's file: %d", rec.Code)
	}
	rec := do("POST", "admin", url.Values{"csrf": {csrf}, "policy": {src}, "note": {"nine steps"}})
	if rec.Code != 303 || !strings.Contains(rec.Header().Get("Location"), "Published+version+3") {
		t.Fatalf("admin publishing: %d %s %s", rec.Code, rec.Header().Get("Location"), rec.Body)
	}
	vs, _ := st.PolicyVersions(ctx, "acme")
	if v := vs[len(vs)-1]; v.Version != 3 || v.PublishedBy != "alice" || v.Note != "nine steps" {
		t.Errorf("stored version %+v", v)
	}
}
