package sink_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/sink"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/sqlite"
)

// The child processes of TestOutboxSurvivesSIGKILL, selected by
// environment variables.
const (
	childEnv  = "STOPLINE_SINK_CHILD" // commit, commit-and-send, deliver
	dbEnv     = "STOPLINE_SINK_DB"
	urlEnv    = "STOPLINE_SINK_URL"
	secretEnv = "STOPLINE_SINK_SECRET"
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		if err := child(mode); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// child is a process that governs a run over a SQLite file with a
// webhook sink. commit: it stops a run (committing its end and its
// deliveries) and waits, delivering nothing. commit-and-send: the same,
// with its dispatcher running. deliver: it runs a dispatcher until every
// delivery is delivered.
func child(mode string) error {
	c := context.Background()
	st, err := sqlite.Open(c, os.Getenv(dbEnv))
	if err != nil {
		return err
	}
	defer st.Close()
	hook, err := sink.NewWebhook(os.Getenv(urlEnv), os.Getenv(secretEnv))
	if err != nil {
		return err
	}
	d, err := sink.NewDispatcher(st, []sink.Sink{hook}, sink.WithOwner("child-"+mode+"-"+fmt.Sprint(os.Getpid())),
		sink.WithTimeout(1500*time.Millisecond), sink.WithLease(2*time.Second), sink.WithPoll(20*time.Millisecond),
		sink.WithRetries(5, 10*time.Millisecond, 100*time.Millisecond))
	if err != nil {
		return err
	}
	switch mode {
	case "commit", "commit-and-send":
		if mode == "commit-and-send" {
			go d.Run(c)
		}
		r, err := governance.NewRunner(st, governance.WithOutbox(d))
		if err != nil {
			return err
		}
		snap, err := snapshot.Parse("policy.json", []byte(policy), time.Time{}, prevention.Builtin())
		if err != nil {
			return err
		}
		run, err := r.Start(c, governance.StartOptions{Snapshot: snap})
		if err != nil {
			return err
		}
		if _, err := run.Step(c, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"}); !errors.Is(err, governance.ErrPolicyViolation) {
			return fmt.Errorf("the blocked step returned %v", err)
		}
		fmt.Printf("committed %s %s\n", run.ID(), run.Record().IncidentID)
		select {} // until killed
	case "deliver":
		c, cancel := context.WithCancel(c)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- d.Run(c) }()
		for {
			ds, err := st.Deliveries(c, governance.DeliveryFilter{TenantID: "acme", State: governance.DeliveryPending})
			if err != nil {
				return err
			}
			if len(ds) == 0 {
				cancel()
				return <-done
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return fmt.Errorf("unknown mode %q", mode)
}

// A process that committed a stopped run is killed (SIGKILL) before it
// delivers, or while it delivers; a new process delivers everything. No
// delivery is lost, and one delivered twice carries the same
// idempotency key and body both times.
func TestOutboxSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	for _, mode := range []string{"commit", "commit-and-send"} {
		t.Run(mode, func(t *testing.T) { testKill(t, mode) })
	}
}

func testKill(t *testing.T, mode string) {
	path := filepath.Join(t.TempDir(), "stopline.db")
	secret := newSecret(t)
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu       sync.Mutex
		answer   bool // phase 2: answer 200
		held     []request
		answered []request
		arrived  = make(chan struct{}, 10)
		release  = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("a request the verifier refuses: %v", err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		req := request{header: r.Header.Clone(), body: body, at: time.Now()}
		mu.Lock()
		phase2 := answer
		if phase2 {
			answered = append(answered, req)
		} else {
			held = append(held, req)
		}
		mu.Unlock()
		if !phase2 {
			arrived <- struct{}{}
			select { // never answered: the sender is killed meanwhile
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	defer close(release)
	env := append(os.Environ(), dbEnv+"="+path, urlEnv+"="+srv.URL, secretEnv+"="+secret)

	// The first process commits the stop and is killed.
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(env, childEnv+"="+mode)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("the child said %q: %v", line, err)
	}
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "committed" {
		t.Fatalf("the child said %q", line)
	}
	runID, incID := f[1], f[2]
	if mode == "commit-and-send" {
		select {
		case <-arrived: // it is sending: kill it now
		case <-time.After(20 * time.Second):
			t.Fatal("the child sent nothing")
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	mu.Lock()
	answer = true
	firstTry := append([]request(nil), held...)
	mu.Unlock()
	if mode == "commit" && len(firstTry) != 0 {
		t.Fatalf("the child delivered %d events without a dispatcher", len(firstTry))
	}
	if mode == "commit-and-send" && len(firstTry) == 0 {
		t.Fatal("no request was held")
	}

	// A new process delivers everything that was committed.
	cmd = exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(env, childEnv+"=deliver")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the delivering process: %v", err)
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatal("the delivering process did not finish")
	}

	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ds, err := st.Deliveries(ctx, governance.DeliveryFilter{TenantID: "acme", RunID: runID})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("%d deliveries stored for %s, want 2 (its incident, its end)", len(ds), runID)
	}
	mu.Lock()
	defer mu.Unlock()
	byID := map[string][]request{}
	for _, r := range answered {
		byID[r.header.Get("webhook-id")] = append(byID[r.header.Get("webhook-id")], r)
	}
	for _, dl := range ds {
		if dl.State() != governance.DeliveryDelivered {
			t.Errorf("delivery %s (%s) is %s", dl.ID, dl.Event, dl.State())
		}
		if len(byID[dl.ID]) == 0 {
			t.Errorf("delivery %s (%s) never answered by the receiver", dl.ID, dl.Event)
		}
		if dl.Event == string(sink.EventIncidentCreated) && dl.IncidentID != incID {
			t.Errorf("incident delivery names %s, want %s", dl.IncidentID, incID)
		}
	}
	// A request the killed process sent is sent again, the same.
	for _, first := range firstTry {
		id := first.header.Get("webhook-id")
		again := byID[id]
		if len(again) == 0 {
			t.Errorf("%s was sent by the killed process and never again", id)
			continue
		}
		if string(again[0].body) != string(first.body) {
			t.Errorf("%s was sent again with another body", id)
		}
	}
}
