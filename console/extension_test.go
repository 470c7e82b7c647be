package console_test

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/console"
	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/internal/demo"
	"github.com/stopline/stopline/store/memstore"
)

// switches is a stand-in for the kill switch: an Extension that operators
// act on and that marks a run's timeline.
type switches struct {
	mu     sync.Mutex
	pulled []string // "tenant/run by actor"
}

func (s *switches) Section() console.Section {
	return console.Section{Path: "kill-switch", Title: "Kill switch", View: access.Read, Act: access.Operate}
}

func (s *switches) Page(ctx context.Context, v console.Viewer, q url.Values) (template.HTML, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, `<p id="pulled">%d pulled</p>`, len(s.pulled))
	if v.Allows(access.Operate) {
		fmt.Fprintf(&b, `<form method="post" action="%s">%s<input name="run"><button id="pull">Pull</button></form>`,
			template.HTMLEscapeString(v.ActionURL("kill-switch", "pull")), v.CSRFField)
	}
	return template.HTML(b.String()), nil
}

func (s *switches) Act(ctx context.Context, v console.Viewer, action string, form url.Values) (string, error) {
	if action != "pull" {
		return "", fmt.Errorf("no action %q: %w", action, errNoAction)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pulled = append(s.pulled, v.TenantID+"/"+form.Get("run")+" by "+v.Actor)
	return "Pulled.", nil
}

func (s *switches) Markers(ctx context.Context, tenant, run string) ([]console.Marker, error) {
	return []console.Marker{{At: demo.T0.Add(20 * 1e9), Kind: "kill", Label: "kill switch"}}, nil
}

var errNoAction = errors.New("no such action")

func TestExtension(t *testing.T) {
	ks := &switches{}
	f := newFixture(t, console.WithExtension(ks))
	viewer, op := f.client(t, "acme", access.Viewer), f.client(t, "acme", access.Operator)

	_, runs := get(t, viewer, f.srv.URL+"/console/runs")
	if !strings.Contains(runs, `href="/console/x/kill-switch"`) {
		t.Error("the extension is not in the navigation")
	}
	_, run := get(t, viewer, f.srv.URL+"/console/runs/"+f.runs.Blocked)
	if !strings.Contains(run, `class="marker marker-kill"`) {
		t.Error("the extension's marker is not on the timeline")
	}
	status, page := get(t, viewer, f.srv.URL+"/console/x/kill-switch")
	if status != 200 || !strings.Contains(page, `id="pulled"`) || strings.Contains(page, `id="pull"`) {
		t.Errorf("viewer's extension page: %d, pull button shown: %t", status, strings.Contains(page, `id="pull"`))
	}
	resp, _ := viewer.PostForm(f.srv.URL+"/console/x/kill-switch/pull", url.Values{"csrf": {csrfOf(t, page)}, "run": {"RUN-0001"}})
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("viewer pulling: %d, want 403", resp.StatusCode)
	}
	_, page = get(t, op, f.srv.URL+"/console/x/kill-switch")
	resp, _ = op.PostForm(f.srv.URL+"/console/x/kill-switch/pull", url.Values{"run": {"RUN-0001"}})
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("pulling without the CSRF token: %d, want 403", resp.StatusCode)
	}
	resp, err := op.PostForm(f.srv.URL+"/console/x/kill-switch/pull", url.Values{"csrf": {csrfOf(t, page)}, "run": {"RUN-0001"}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "Pulled.") || !strings.Contains(string(body), `1 pulled`) {
		t.Errorf("operator pulling: %d\n%s", resp.StatusCode, body)
	}
	if len(ks.pulled) != 1 || !strings.HasPrefix(ks.pulled[0], "acme/RUN-0001 by token:TOK-") {
		t.Errorf("extension saw %q", ks.pulled)
	}
}

func TestTrustedHeaders(t *testing.T) {
	st := memstore.New()
	runs, err := demo.Record(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	exp, _ := export.New(st)
	c, err := console.New(exp, console.WithTrustedHeaders("X-Tenant", "X-Role", "X-Actor"))
	if err != nil {
		t.Fatal(err)
	}
	do := func(tenant, role, path string) int {
		req, _ := http.NewRequest("GET", path, nil)
		for k, v := range map[string]string{"X-Tenant": tenant, "X-Role": role, "X-Actor": "alice"} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		c.ServeHTTP(rec, req)
		return rec.Code
	}
	cases := []struct {
		tenant, role, path string
		want               int
	}{
		{"acme", "viewer", "/console/runs/" + runs.Blocked, 200},
		{"acme", "", "/console/runs/" + runs.Blocked, 401},
		{"acme", "root", "/console/runs/" + runs.Blocked, 401},
		{"", "admin", "/console/runs/" + runs.Blocked, 401},
		{"globex", "admin", "/console/runs/" + runs.Blocked, 404},
		{"acme", "viewer", "/console/login", 303},
	}
	for _, tc := range cases {
		if got := do(tc.tenant, tc.role, tc.path); got != tc.want {
			t.Errorf("%s as %q %q: %d, want %d", tc.path, tc.tenant, tc.role, got, tc.want)
		}
	}
}
