package main_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/stopline/stopline/export/bundle"
)

// hookReceiver verifies each request with the Standard Webhooks library
// and answers with status (500 until it is set to 200).
type hookReceiver struct {
	*httptest.Server
	status atomic.Int64
	mu     sync.Mutex
	events []string // type of each verified request answered 2xx
	bodies [][]byte // and its body
	bad    int
}

func newHookReceiver(t *testing.T, secret string, status int) *hookReceiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	h := &hookReceiver{}
	h.status.Store(int64(status))
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			h.mu.Lock()
			h.bad++
			h.mu.Unlock()
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		st := int(h.status.Load())
		if st < 300 {
			var p struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal(body, &p)
			h.mu.Lock()
			h.events = append(h.events, p.Type)
			h.bodies = append(h.bodies, body)
			h.mu.Unlock()
		}
		w.WriteHeader(st)
	}))
	t.Cleanup(h.Close)
	return h
}

func webhookSecret(t *testing.T) string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

type outboxRow struct {
	ID       string `json:"delivery_id"`
	Event    string `json:"event"`
	RunID    string `json:"run_id"`
	State    string `json:"state"`
	Attempts int    `json:"attempts"`
}

// run --webhook delivers the stopped run's incident and end, signed;
// outbox list shows them delivered.
func TestRunWebhook(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	secret := webhookSecret(t)
	h := newHookReceiver(t, secret, http.StatusOK)
	secretFile := filepath.Join(c.dir, "hook.secret")
	if err := os.WriteFile(secretFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var res runResult
	c.okJSON(&res, "run", "--policies", policyFile("content"), "--steps", stepsFile("content"),
		"--webhook", h.URL, "--webhook-secret-file", secretFile)
	h.mu.Lock()
	got := strings.Join(h.events, ",")
	bad := h.bad
	h.mu.Unlock()
	if got != "incident.created,run.ended" && got != "run.ended,incident.created" || bad != 0 {
		t.Errorf("receiver got %q (%d refused), want incident.created and run.ended", got, bad)
	}
	var rows []outboxRow
	c.okJSON(&rows, "outbox", "list", "--run", res.RunID)
	if len(rows) != 2 || rows[0].State != "delivered" || rows[1].State != "delivered" {
		t.Errorf("outbox list: %+v", rows)
	}
}

// A receiver that fails: run leaves its deliveries pending and says so;
// serve --webhook delivers them once the receiver answers.
func TestServeDeliversWhatRunLeft(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	secret := webhookSecret(t)
	h := newHookReceiver(t, secret, http.StatusInternalServerError)
	c.env = append(c.env, "STOPLINE_WEBHOOK_SECRET="+secret)
	r := c.run("run", "--policies", policyFile("content"), "--steps", stepsFile("content"), "--json",
		"--webhook", h.URL, "--deliver-wait", "300ms")
	if r.code != 0 || !strings.Contains(r.stderr, "deliveries still pending") {
		t.Fatalf("run: exit %d, stderr:\n%s", r.code, r.stderr)
	}
	var res runResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatal(err)
	}
	var rows []outboxRow
	c.okJSON(&rows, "outbox", "list", "--state", "pending")
	if len(rows) != 2 || rows[0].Attempts < 1 {
		t.Fatalf("pending after run: %+v", rows)
	}
	h.status.Store(http.StatusOK)
	c.ok("keygen", "-o", filepath.Join(c.dir, "export.key"))
	_, _, _, _ = startServe(t, c, "--webhook", h.URL, "--webhook-bundles", "--sign-key", filepath.Join(c.dir, "export.key"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.okJSON(&rows, "outbox", "list", "--run", res.RunID, "--state", "delivered")
		if len(rows) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve delivered %d of 2", len(rows))
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The incident's webhook carries the run's evidence bundle, signed.
	pub, err := bundle.ReadPublicKeyFile(filepath.Join(c.dir, "export.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	found := false
	for _, body := range h.bodies {
		var p struct {
			Type string                     `json:"type"`
			Data map[string]json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		if p.Type != "incident.created" {
			continue
		}
		found = true
		if _, err := bundle.Verify(p.Data["bundle"], pub); err != nil {
			t.Errorf("the bundle in the incident's webhook: %v", err)
		}
	}
	if !found {
		t.Error("no incident webhook")
	}
}

func TestWebhookFlagsRefused(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.fails(2, []string{"STOPLINE_WEBHOOK_SECRET"}, "run", "--policies", policyFile("content"), "--steps", stepsFile("content"),
		"--webhook", "http://127.0.0.1:1/hook")
	c.env = append(c.env, "STOPLINE_WEBHOOK_SECRET=not-a-secret")
	c.fails(1, []string{"whsec_"}, "run", "--policies", policyFile("content"), "--steps", stepsFile("content"),
		"--webhook", "http://127.0.0.1:1/hook")
	c.fails(2, []string{"--state"}, "outbox", "list", "--state", "lost")
}

// With OTEL_LOGS_EXPORTER=console, run's incident and end are log
// records on stderr (stdoutlog's JSON), delivered from the outbox.
func TestRunConsoleLogs(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res, stderr := c.runJSON("OTEL_LOGS_EXPORTER=console")
	type logRecord struct {
		EventName  string `json:"EventName"`
		Severity   int    `json:"Severity"`
		Attributes []struct {
			Key   string `json:"Key"`
			Value struct {
				Value any `json:"Value"`
			} `json:"Value"`
		} `json:"Attributes"`
	}
	recs, other := jsonLines[logRecord](t, stderr)
	if len(other) != 0 {
		t.Errorf("stderr has other lines: %q", other)
	}
	names := map[string]map[string]any{}
	for _, r := range recs {
		a := map[string]any{}
		for _, kv := range r.Attributes {
			a[kv.Key] = kv.Value.Value
		}
		names[r.EventName] = a
	}
	inc, ok := names["stopline.incident.created"]
	if !ok || inc["stopline.incident.id"] != *res.IncidentID || inc["stopline.run.id"] != res.RunID {
		t.Errorf("incident record: %v (records %v)", inc, names)
	}
	if _, ok := names["stopline.run.ended"]; !ok {
		t.Errorf("no run end record: %v", names)
	}
	var rows []outboxRow
	c.okJSON(&rows, "outbox", "list", "--run", res.RunID, "--state", "delivered")
	if len(rows) != 2 {
		t.Errorf("delivered: %+v", rows)
	}
}
