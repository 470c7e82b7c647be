package main_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestServe(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res := c.runSteps("content", "content")

	cmd := exec.Command(bin, "serve", "--db", c.db, "--addr", "127.0.0.1:0")
	cmd.Dir = c.dir
	cmd.Env = cleanEnv()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	lines := bufio.NewScanner(stderr)
	if !lines.Scan() {
		cmd.Process.Kill()
		t.Fatalf("serve printed nothing: %v", lines.Err())
	}
	first := lines.Text()
	var rest strings.Builder
	go func() {
		for lines.Scan() {
			rest.WriteString(lines.Text() + "\n")
		}
		done <- cmd.Wait()
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	_, addr, ok := strings.Cut(first, "listening on ")
	addr, _, _ = strings.Cut(addr, " ")
	if !ok || !strings.Contains(first, "X-Stopline-Tenant") {
		t.Fatalf("serve's first line: %q", first)
	}

	get := func(path, tenant string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, addr+path, nil)
		if tenant != "" {
			req.Header.Set("X-Stopline-Tenant", tenant)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	code, body := get("/runs/"+res.RunID, "acme")
	var run map[string]any
	if code != http.StatusOK || json.Unmarshal(body, &run) != nil {
		t.Errorf("GET /runs/%s: %d %s", res.RunID, code, body)
	}
	if code, body := get("/runs/"+res.RunID, ""); code != http.StatusUnauthorized {
		t.Errorf("without the tenant header: %d %s", code, body)
	}
	if code, body := get("/runs/"+res.RunID, "other"); code != http.StatusNotFound {
		t.Errorf("another tenant: %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodPost, addr+"/incidents/"+*res.IncidentID+"/export/evidence", nil)
	req.Header.Set("X-Stopline-Tenant", "acme")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("X-Stopline-Bundle-Hash") == "" {
		t.Errorf("export over HTTP: %d, headers %v", resp.StatusCode, resp.Header)
	}

	// SIGTERM (and SIGINT) shut it down gracefully: exit 0.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v\n%s", err, rest.String())
		}
		if !strings.Contains(rest.String(), "shutting down") {
			t.Errorf("serve's stderr after SIGTERM: %q", rest.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop within 20 s of SIGTERM")
	}
}

func TestServeAddressInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c := newCLI(t)
	c.fails(1, []string{"stopline serve:", ln.Addr().String()}, "serve", "--addr", ln.Addr().String())
}
