package sink_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/sink"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// lineSink describes the events it receives on a channel.
type lineSink struct{ lines chan string }

func (lineSink) Name() string { return "lines" }

func (s lineSink) Deliver(_ context.Context, e sink.Event) error {
	payload, err := e.Decode()
	if err != nil {
		return err
	}
	s.lines <- fmt.Sprint(e.Type, " ", payload.Data.Run.Status, " ", payload.Data.Run.TerminationReason, " attempt ", e.Attempt)
	return nil
}

// A runner whose runs' ends go to a sink through the store's outbox. The
// run is stopped at its first step; its incident and its end are
// delivered once the stop is committed, by the dispatcher.
func ExampleNewDispatcher() {
	ctx := context.Background()
	store := memstore.New()
	lines := lineSink{lines: make(chan string, 2)}
	d, err := sink.NewDispatcher(store, []sink.Sink{lines}, sink.WithConcurrency(1))
	if err != nil {
		fmt.Println(err)
		return
	}
	runner, err := governance.NewRunner(store, governance.WithOutbox(d))
	if err != nil {
		fmt.Println(err)
		return
	}
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	go d.Run(c)

	snap, _ := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme",
		"policies":[{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`), time.Time{}, runner.Kinds())
	run, _ := runner.Start(ctx, governance.StartOptions{Snapshot: snap})
	_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"})
	fmt.Println("stopped:", err != nil)
	fmt.Println(<-lines.lines)
	fmt.Println(<-lines.lines)
	// Output:
	// stopped: true
	// incident.created failed_policy policy_block attempt 1
	// run.ended failed_policy policy_block attempt 1
}

// A webhook signed as Standard Webhooks: the receiver here prints what it
// gets; a real one verifies webhook-signature with its secret (any
// Standard Webhooks library) and drops a webhook-id it already has.
func ExampleNewWebhook() {
	ctx := context.Background()
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p sink.Payload
		_ = json.NewDecoder(r.Body).Decode(&p)
		got <- fmt.Sprint(p.Type, " ", p.Data.Run.Status, " id:", strings.HasPrefix(r.Header.Get("webhook-id"), "msg_"),
			" signed:", strings.HasPrefix(r.Header.Get("webhook-signature"), "v1,"))
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	secret := "whsec_" + base64.StdEncoding.EncodeToString([]byte("a secret of at least 24 bytes, random in practice"))
	hook, err := sink.NewWebhook(srv.URL, secret) // keep the secret in a file or the environment
	if err != nil {
		fmt.Println(err)
		return
	}
	store := memstore.New()
	d, _ := sink.NewDispatcher(store, []sink.Sink{hook})
	runner, _ := governance.NewRunner(store, governance.WithOutbox(d))
	c, cancel := context.WithCancel(ctx)
	defer cancel()
	go d.Run(c)

	snap, _ := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme",
		"policies":[{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`), time.Time{}, runner.Kinds())
	run, err := runner.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, _ = run.Finish(ctx)
	fmt.Println(<-got)
	// Output:
	// run.ended succeeded id:true signed:true
}
