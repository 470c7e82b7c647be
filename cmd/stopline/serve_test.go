package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// startServe starts `stopline serve` on c's database and returns its
// address (http://HOST:PORT), the command, a channel that gets its exit,
// and what it wrote to stderr after its first line.
// It trusts the tenant header, as behind an authenticating proxy.
func startServe(t *testing.T, c *cli, args ...string) (string, *exec.Cmd, chan error, *strings.Builder) {
	t.Helper()
	return startServeAuth(t, c, "tenant_header=X-Stopline-Tenant", append([]string{"--trust-tenant-header"}, args...)...)
}

// startServeAuth is startServe whose first line must hold want.
func startServeAuth(t *testing.T, c *cli, want string, args ...string) (string, *exec.Cmd, chan error, *strings.Builder) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"serve", "--db", c.db, "--addr", "127.0.0.1:0"}, args...)...)
	cmd.Dir = c.dir
	cmd.Env = append(cleanEnv(), c.env...)
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
	// time=… level=INFO msg="serve: listening" url=http://HOST:PORT tenant_header=X-Stopline-Tenant
	_, addr, ok := strings.Cut(first, " url=")
	addr, _, _ = strings.Cut(addr, " ")
	if !ok || !strings.Contains(first, `msg="serve: listening"`) || !strings.Contains(first, want) {
		t.Fatalf("serve's first line: %q", first)
	}
	return addr, cmd, done, &rest
}

func TestServe(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res := c.runSteps("content", "content")
	addr, cmd, done, rest := startServe(t, c)

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

// TestServeBoundsRequests: a client that trickles its request is cut off
// at --read-timeout; a tenant header given twice is refused; a body over
// the limit is refused; the actor header is who the bundle says exported.
func TestServeBoundsRequests(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res := c.runSteps("content", "content")
	addr, _, _, _ := startServe(t, c, "--read-timeout", "1s")
	host := strings.TrimPrefix(addr, "http://")

	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	fmt.Fprintf(conn, "POST /incidents/%s/export/evidence HTTP/1.1\r\nHost: x\r\nX-Stopline-Tenant: acme\r\nContent-Length: 1000\r\n\r\n", *res.IncidentID)
	closed := make(chan time.Duration, 1)
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := conn.Read(buf); err != nil {
				closed <- time.Since(start)
				return
			}
		}
	}()
	trickle := time.NewTicker(200 * time.Millisecond)
	defer trickle.Stop()
wait:
	for {
		select {
		case d := <-closed:
			if d > 10*time.Second {
				t.Errorf("connection closed after %v", d)
			}
			break wait
		case <-trickle.C:
			conn.Write([]byte("x")) // a byte at a time, never the whole body
		case <-time.After(15 * time.Second):
			t.Fatal("a trickled request held its connection open for 15 s (read timeout 1 s)")
		}
	}

	post := func(h http.Header, body io.Reader) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, addr+"/incidents/"+*res.IncidentID+"/export/evidence", body)
		for k, vs := range h {
			for _, v := range vs {
				req.Header.Add(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	if resp := post(http.Header{"X-Stopline-Tenant": {"acme", "other"}}, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("two tenant headers: %d, want 401", resp.StatusCode)
	}
	if resp := post(http.Header{"X-Stopline-Tenant": {"acme"}}, strings.NewReader(strings.Repeat("x", 65<<10))); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("a 65 KiB body: %d, want 413", resp.StatusCode)
	}
	resp := post(http.Header{"X-Stopline-Tenant": {"acme"}, "X-Stopline-Actor": {"alice@example.com"}}, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export: %d", resp.StatusCode)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	_, payload := readEnvelope(t, body)
	var b struct {
		ExportedBy string `json:"exported_by"`
	}
	if err := json.Unmarshal(payload, &b); err != nil || b.ExportedBy != "alice@example.com" {
		t.Errorf("exported_by %q (%v), want the actor header", b.ExportedBy, err)
	}
}
