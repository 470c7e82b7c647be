package main_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"
)

type tokenJSON struct {
	ID         string     `json:"token_id"`
	TenantID   string     `json:"tenant_id"`
	Role       string     `json:"role"`
	Name       string     `json:"name"`
	Secret     string     `json:"secret"`
	SecretHash string     `json:"secret_hash"`
	Status     string     `json:"status"`
	ExpiresAt  time.Time  `json:"expires_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
}

// TestTokenCommands: create prints the secret once, list never shows
// it, revoke keeps the token listed as revoked; bad flags are refused.
func TestTokenCommands(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	var tok tokenJSON
	c.okJSON(&tok, "token", "create", "--tenant", "acme", "--role", "auditor", "--name", "ci", "--expires", "30d")
	if !strings.HasPrefix(tok.Secret, "stl_") || tok.Role != "auditor" || tok.Status != "active" || time.Until(tok.ExpiresAt) < 29*24*time.Hour {
		t.Fatalf("token create: %+v", tok)
	}
	list := c.ok("token", "list")
	if !strings.Contains(list, tok.ID) || strings.Contains(list, tok.Secret) || strings.Contains(list, tok.Secret[len(tok.Secret)-20:]) {
		t.Errorf("token list:\n%s", list)
	}
	var listed []tokenJSON
	c.okJSON(&listed, "token", "list", "--tenant", "acme")
	if len(listed) != 1 || listed[0].Secret != "" {
		t.Errorf("token list --json: %+v", listed)
	}
	c.okJSON(&listed, "token", "list", "--tenant", "globex")
	if len(listed) != 0 {
		t.Errorf("globex lists %d tokens", len(listed))
	}
	if out := c.ok("token", "revoke", tok.ID); !strings.HasPrefix(out, "revoked "+tok.ID) {
		t.Errorf("token revoke: %q", out)
	}
	c.okJSON(&listed, "token", "list")
	if len(listed) != 1 || listed[0].Status != "revoked" || listed[0].RevokedAt == nil {
		t.Errorf("after revoke: %+v", listed)
	}
	c.fails(1, []string{"no token TOK-0000000000000000"}, "token", "revoke", "TOK-0000000000000000")
	c.fails(2, []string{"--role", "root"}, "token", "create", "--tenant", "acme", "--role", "root")
	c.fails(2, []string{"--tenant is required"}, "token", "create", "--role", "viewer")
	c.fails(2, []string{"--expires"}, "token", "create", "--tenant", "acme", "--role", "viewer", "--expires", "-1h")
}

// TestServeRequiresToken: by default serve refuses the tenant header
// and takes tenant and role from a token; refusals are logged with the
// reason; the console signs in with the token.
func TestServeRequiresToken(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res := c.runSteps("content", "content")
	var viewer, auditor tokenJSON
	c.okJSON(&viewer, "token", "create", "--tenant", "acme", "--role", "viewer")
	c.okJSON(&auditor, "token", "create", "--tenant", "acme", "--role", "auditor")
	addr, cmd, done, rest := startServeAuth(t, c, "auth=token")

	do := func(method, path, secret string, hdr map[string]string) int {
		t.Helper()
		req, _ := http.NewRequest(method, addr+path, nil)
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
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	run := "/runs/" + res.RunID
	export := "/incidents/" + *res.IncidentID + "/export/evidence"
	for _, c := range []struct {
		name, method, path, secret string
		hdr                        map[string]string
		want                       int
	}{
		{"tenant header alone", "GET", run, "", map[string]string{"X-Stopline-Tenant": "acme"}, 401},
		{"viewer reads", "GET", run, viewer.Secret, nil, 200},
		{"viewer exports", "POST", export, viewer.Secret, nil, 403},
		{"auditor exports", "POST", export, auditor.Secret, nil, 200},
	} {
		if got := do(c.method, c.path, c.secret, c.hdr); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	// The console: signed out, its pages send to the sign-in page.
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.PostForm(addr+"/console/login", url.Values{"token": {viewer.Secret}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly {
		t.Errorf("console sign-in: %d, cookies %v", resp.StatusCode, resp.Cookies())
	}
	req, _ := http.NewRequest("GET", addr+"/console/runs/"+res.RunID, nil)
	req.AddCookie(resp.Cookies()[0])
	page, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 200 || !strings.Contains(string(body), `<svg id="timeline"`) {
		t.Errorf("console run page: %d", page.StatusCode)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
	logs := rest.String()
	for _, want := range []string{`reason="unauthorized: access: token refused: missing"`, `status=403`, `reason="forbidden: token ` + viewer.ID} {
		if !strings.Contains(logs, want) {
			t.Errorf("serve's log lacks %s:\n%s", want, logs)
		}
	}

}
