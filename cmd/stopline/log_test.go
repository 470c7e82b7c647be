package main_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunLogLevel: --log-level (before or after the command) or
// STOPLINE_LOG_LEVEL makes run log what the runner does on stderr;
// stdout stays the result; a bad level is a usage error.
func TestRunLogLevel(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	args := []string{"run", "--policies", policyFile("budget_steps"), "--steps", stepsFile("budget_steps"), "--json"}
	want := map[string][]string{
		"info":  {`level=WARN msg="run stopped at a step"`, `level=INFO msg="run ended"`},
		"debug": {`level=DEBUG msg="run started"`, `level=DEBUG msg="step allowed"`, `level=WARN msg="run stopped at a step"`, `level=INFO msg="run ended"`},
	}
	for _, tc := range []struct {
		name  string
		args  []string
		env   string
		level string
	}{
		{"flag after", append(append([]string{}, args...), "--log-level", "info"), "", "info"},
		{"flag before", append([]string{"--log-level", "debug"}, args...), "", "debug"},
		{"environment", args, "STOPLINE_LOG_LEVEL=info", "info"},
		{"flag over environment", append(append([]string{}, args...), "--log-level", "debug"), "STOPLINE_LOG_LEVEL=error", "debug"},
	} {
		if tc.env != "" {
			c.env = []string{tc.env}
		}
		r := c.run(tc.args...)
		c.env = nil
		var res runResult
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &res) != nil || res.Status != "failed_policy" {
			t.Fatalf("%s: exit %d\n%s\n%s", tc.name, r.code, r.stdout, r.stderr)
		}
		for _, w := range want[tc.level] {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: stderr does not have %s:\n%s", tc.name, w, r.stderr)
			}
		}
		if strings.Contains(r.stderr, "hello") {
			t.Errorf("%s: the step's text was logged", tc.name)
		}
	}
	// Warn (the default) and error log nothing the output does not say.
	c.ok(append(args, "--log-level", "error")...)
	c.fails(2, []string{"--log-level", "loud", "debug, info, warn or error"}, append(args, "--log-level", "loud")...)
	c.env = []string{"STOPLINE_LOG_LEVEL=verbose"}
	c.fails(2, []string{"STOPLINE_LOG_LEVEL", "verbose"}, args...)
	c.env = nil
}

// TestServeLogsRequests: serve logs each request it refuses with its
// method, path and status, at info (its default level), and each one
// answered only at debug.
func TestServeLogsRequests(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res := c.runSteps("content", "content")
	addr, cmd, done, rest := startServe(t, c)
	for _, tenant := range []string{"acme", "other", ""} {
		req, _ := http.NewRequest(http.MethodGet, addr+"/runs/"+res.RunID, nil)
		if tenant != "" {
			req.Header.Set("X-Stopline-Tenant", tenant)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v\n%s", err, rest)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	lines := strings.Split(strings.TrimSpace(rest.String()), "\n")
	var refused []string
	for _, l := range lines {
		if !strings.Contains(l, "level=INFO") {
			t.Errorf("line %q", l)
		}
		if strings.Contains(l, `msg="request refused"`) {
			if !strings.Contains(l, "method=GET") || !strings.Contains(l, "path=/runs/"+res.RunID) {
				t.Errorf("refusal without method or path: %q", l)
			}
			_, status, _ := strings.Cut(l, "status=")
			status, _, _ = strings.Cut(status, " ")
			refused = append(refused, status)
		}
		if strings.Contains(l, "request answered") {
			t.Errorf("a request answered logged at info: %q", l)
		}
	}
	if strings.Join(refused, ",") != "404,401" {
		t.Errorf("refusals logged with status %v, want 404 then 401:\n%s", refused, rest)
	}
}
