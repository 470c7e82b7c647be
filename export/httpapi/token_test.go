package httpapi_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/export/httpapi"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/governance"
)

type refusal struct {
	status int
	reason error
}

func tokenServer(t *testing.T, f *fixture.F) (*httptest.Server, func() []refusal) {
	t.Helper()
	auth, err := access.NewAuthenticator(f.Store.(governance.TokenStore))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var log []refusal
	srv := httptest.NewServer(httpapi.TokenHandler(f.Exp, auth,
		httpapi.WithRefusalLog(func(r *http.Request, status int, reason error) {
			mu.Lock()
			defer mu.Unlock()
			log = append(log, refusal{status, reason})
		}),
		httpapi.WithErrorLog(func(r *http.Request, err error) { t.Logf("%s %s: %v", r.Method, r.URL, err) })))
	t.Cleanup(srv.Close)
	return srv, func() []refusal {
		mu.Lock()
		defer mu.Unlock()
		out := log
		log = nil
		return out
	}
}

func issue(t *testing.T, f *fixture.F, tenant string, role access.Role, ttl time.Duration) (string, governance.Token) {
	t.Helper()
	secret, tok, err := access.Issue(ctx, f.Store.(governance.TokenStore), access.TokenRequest{TenantID: tenant, Role: role, Name: role.String(), TTL: ttl})
	if err != nil {
		t.Fatal(err)
	}
	return secret, tok
}

func callToken(t *testing.T, srv *httptest.Server, method, path, secret string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	// A tenant header is not how a token server learns the tenant.
	req.Header.Set("X-Stopline-Tenant", "globex")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

// Each role reaches the routes it allows, within its tenant only; a
// refused token, a role too low and another tenant's id are refused the
// same way whatever exists, and each refusal is logged with its reason.
func TestTokenHandlerRoles(t *testing.T) {
	f := fixture.New(t, nil)
	srv, refusals := tokenServer(t, f)
	viewer, _ := issue(t, f, "acme", access.Viewer, time.Hour)
	auditor, _ := issue(t, f, "acme", access.Auditor, time.Hour)
	globexAdmin, _ := issue(t, f, "globex", access.Admin, time.Hour)

	cases := []struct {
		name, method, path, secret string
		want                       int
	}{
		{"viewer reads its run", "GET", "/runs/RUN-0001", viewer, 200},
		{"viewer reads its incident", "GET", "/incidents/INC-0001", viewer, 200},
		{"viewer explains", "GET", "/runs/RUN-0001/explain?at=2026-03-01T09:00:03Z", viewer, 200},
		{"viewer may not export", "POST", "/incidents/INC-0001/export/evidence", viewer, 403},
		{"auditor exports", "POST", "/incidents/INC-0001/export/evidence", auditor, 200},
		{"auditor exports a run", "POST", "/runs/RUN-0003/export/evidence", auditor, 200},
		{"another tenant's run", "GET", "/runs/RUN-0004", viewer, 404},
		{"an absent run", "GET", "/runs/RUN-9999", viewer, 404},
		{"another tenant's incident export", "POST", "/incidents/INC-0003/export/evidence", auditor, 404},
		{"globex admin reads its own", "GET", "/incidents/INC-0003", globexAdmin, 200},
		{"globex admin and acme's run", "GET", "/runs/RUN-0001", globexAdmin, 404},
		{"no token", "GET", "/runs/RUN-0001", "", 401},
		{"garbage", "GET", "/runs/RUN-0001", "hello", 401},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := callToken(t, srv, c.method, c.path, c.secret)
			if got.status != c.want {
				t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, got.status, got.body, c.want)
			}
			logged := refusals()
			if c.want < 400 {
				if len(logged) != 0 {
					t.Errorf("answered request logged as refused: %+v", logged)
				}
				return
			}
			if len(logged) != 1 || logged[0].status != c.want || logged[0].reason == nil {
				t.Errorf("refusal log %+v, want one entry with status %d and a reason", logged, c.want)
			}
		})
	}
	other := callToken(t, srv, "GET", "/runs/RUN-0004", viewer)
	absent := callToken(t, srv, "GET", "/runs/RUN-0005", viewer)
	if strings.ReplaceAll(string(other.body), "RUN-0004", "ID") != strings.ReplaceAll(string(absent.body), "RUN-0005", "ID") {
		t.Errorf("another tenant's run answers %s, an absent one %s: the difference tells it exists", other.body, absent.body)
	}
	refusals()
}

// The caller learns only that a token was refused; the log says why.
func TestTokenHandlerRefusals(t *testing.T) {
	f := fixture.New(t, nil)
	srv, refusals := tokenServer(t, f)
	good, tok := issue(t, f, "acme", access.Admin, time.Hour)
	expired, _ := issue(t, f, "acme", access.Admin, time.Nanosecond)
	revoked, rtok := issue(t, f, "acme", access.Admin, time.Hour)
	if _, err := f.Store.(governance.TokenStore).RevokeToken(ctx, rtok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	wrong := good[:len(good)-4] + "aaaa"
	if wrong == good {
		wrong = good[:len(good)-4] + "bbbb"
	}
	unknown := access.SecretPrefix + "ffffffffffffffff" + good[len(access.SecretPrefix)+16:]
	var bodies []string
	for name, c := range map[string]struct{ secret, reason string }{
		"expired": {expired, access.ReasonExpired},
		"revoked": {revoked, access.ReasonRevoked},
		"wrong":   {wrong, access.ReasonMismatch},
		"unknown": {unknown, access.ReasonUnknown},
		"missing": {"", access.ReasonMissing},
	} {
		got := callToken(t, srv, "GET", "/runs/RUN-0001", c.secret)
		if got.status != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, got.status)
		}
		bodies = append(bodies, string(got.body))
		logged := refusals()
		var re *access.RefusedError
		if len(logged) != 1 || !errors.As(logged[0].reason, &re) || re.Reason != c.reason {
			t.Errorf("%s: logged %+v, want reason %s", name, logged, c.reason)
		}
	}
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Errorf("refusals answer differently: %q and %q", bodies[0], b)
		}
	}
	if got := callToken(t, srv, "GET", "/runs/RUN-0001", good); got.status != 200 {
		t.Errorf("good token %s: %d %s", tok.ID, got.status, got.body)
	}
}

// An admin publishes a policy set for its own tenant; other roles, other
// tenants' files and the trusted-header handler are refused.
func TestPublishPolicy(t *testing.T) {
	f := fixture.New(t, nil)
	auth, _ := access.NewAuthenticator(f.Store.(governance.TokenStore))
	srv := httptest.NewServer(httpapi.TokenHandler(f.Exp, auth, httpapi.WithPublisher(f.Runner)))
	t.Cleanup(srv.Close)
	headerSrv := httptest.NewServer(httpapi.Handler(f.Exp, httpapi.HeaderTenant("X-Stopline-Tenant"), httpapi.WithPublisher(f.Runner)))
	t.Cleanup(headerSrv.Close)
	admin, _ := issue(t, f, "acme", access.Admin, time.Hour)
	operator, _ := issue(t, f, "acme", access.Operator, time.Hour)
	policy := func(tenant string) string {
		return `{"tenant_id": "` + tenant + `", "thresholds": {"max_steps": 7},
		  "policies": [{"id": "steps", "kind": "budget", "params": {"metric": "steps", "threshold": "max_steps"}}]}`
	}
	post := func(url, secret, body string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", url+"/policies?note=seven+steps", strings.NewReader(body))
		if secret != "" {
			req.Header.Set("Authorization", "Bearer "+secret)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	before, _ := f.Store.PolicyVersions(ctx, "acme")
	if code, body := post(srv.URL, operator, policy("acme"), nil); code != 403 {
		t.Errorf("operator publishing: %d %s", code, body)
	}
	if code, body := post(srv.URL, admin, policy("globex"), nil); code != 400 || !strings.Contains(body, `globex`) {
		t.Errorf("admin publishing another tenant's file: %d %s", code, body)
	}
	if code, body := post(srv.URL, admin, `{"tenant_id": "acme", "policies": [{"id": "x", "kind": "nope"}]}`, nil); code != 400 {
		t.Errorf("an invalid file: %d %s", code, body)
	}
	if code, body := post(headerSrv.URL, "", policy("acme"), map[string]string{"X-Stopline-Tenant": "acme"}); code != 403 {
		t.Errorf("publishing through the trusted header: %d %s", code, body)
	}
	code, body := post(srv.URL, admin, policy("acme"), nil)
	if code != 200 {
		t.Fatalf("admin publishing: %d %s", code, body)
	}
	after, _ := f.Store.PolicyVersions(ctx, "acme")
	if len(after) != len(before)+1 {
		t.Fatalf("%d versions after one publish, had %d", len(after), len(before))
	}
	v := after[len(after)-1]
	if !strings.HasPrefix(v.PublishedBy, "token:TOK-") || v.Note != "seven steps" {
		t.Errorf("published %+v", v)
	}
}
