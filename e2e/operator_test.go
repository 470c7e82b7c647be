package e2e_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// TestApproveInBrowser: a step held by a requires_approval policy waits
// in its runner until an operator approves it in the console; the answer
// is recorded with the step, by the operator's token.
func TestApproveInBrowser(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	r, err := governance.NewRunner(s.store, governance.WithHolds(time.Minute, time.Minute, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Parse("approve.json", []byte(`{"tenant_id": "acme", "thresholds": {},
	  "policies": [{"id": "approve-wire", "kind": "requires_approval", "params": {"tools": ["wire_transfer"], "hold_seconds": 60}}]}`), time.Now(), r.Kinds())
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		res governance.StepResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "wire_transfer", Input: `{"amount": 9000}`})
		done <- result{res, err}
	}()
	var holdID string
	for deadline := time.Now().Add(10 * time.Second); holdID == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if hs, _ := governance.PendingHolds(ctx, s.store, "acme"); len(hs) == 1 {
			holdID = hs[0].ID
		}
	}
	if holdID == "" {
		t.Fatal("the step was not held")
	}

	b := newBrowser(t)
	signIn(t, b, s, s.token(t, access.Operator))
	row := "#hold-" + holdID
	if err := chromedp.Do(b,
		chromedp.Navigate(s.url+"/console/x/approvals"),
		chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.SendKeys(chromedp.CSS(row+" form:first-of-type input[name=reason]"), "ticket 4411"),
		chromedp.Click(chromedp.CSS("#approve-"+holdID)),
		chromedp.WaitVisible(chromedp.CSS(row+".hold-approved")),
	); err != nil {
		t.Fatal(err)
	}
	select {
	case got := <-done:
		if got.err != nil || got.res.Evaluation.Decision.Action != prevention.Allow {
			t.Fatalf("held step after approval: %+v %v", got.res.Evaluation.Decision, got.err)
		}
		recs, err := s.store.Records(ctx, "acme", run.ID())
		if err != nil {
			t.Fatal(err)
		}
		a := recs[got.res.Index+1].Approval
		if a == nil || a.Answer != "approved" || !strings.HasPrefix(a.By, "token:TOK-") || a.Reason != "ticket 4411" {
			t.Errorf("recorded approval %+v", a)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the held step did not return after the approval")
	}
	// The hold is on the run's timeline.
	if err := chromedp.Do(b,
		chromedp.Navigate(s.url+"/console/runs/"+run.ID()),
		chromedp.WaitVisible(chromedp.CSS(".marker-hold")),
	); err != nil {
		t.Fatal(err)
	}
}

// TestKillInBrowser: an operator pulls the kill switch over an agent in
// the console; the agent's running run is stopped at its next step with
// user_abort, new runs are refused until the operator releases it.
func TestKillInBrowser(t *testing.T) {
	s := newSite(t)
	ctx := context.Background()
	r, err := governance.NewRunner(s.store, governance.WithKillSwitch(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	opts := governance.StartOptions{TenantID: "acme", Labels: map[string]string{governance.AgentLabel: "mailer"}}
	run, err := r.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t)
	signIn(t, b, s, s.token(t, access.Operator))
	if err := chromedp.Do(b,
		chromedp.Navigate(s.url+"/console/x/kill-switch"),
		chromedp.WaitVisible(chromedp.CSS("#pull")),
		chromedp.SetValue(chromedp.CSS("#kill-scope"), "agent"),
		chromedp.SendKeys(chromedp.CSS("#kill-target"), "mailer"),
		chromedp.SendKeys(chromedp.CSS("#kill-reason"), "sending spam"),
		chromedp.Click(chromedp.CSS("#pull")),
		chromedp.WaitVisible(chromedp.CSS("#kills .release")),
	); err != nil {
		t.Fatal(err)
	}
	var v *governance.Violation
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err = run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 10}); errors.As(err, &v) {
			break
		}
	}
	if v == nil || v.Reason() != prevention.ReasonUserAbort {
		t.Fatalf("the run was not stopped by the kill switch: %v", err)
	}
	inc, err := s.store.Incident(ctx, "acme", v.IncidentID)
	if err != nil || !strings.Contains(inc.Message, "token:TOK-") {
		t.Errorf("incident %+v %v: does not name who pulled it", inc, err)
	}
	if _, err := r.Start(ctx, opts); !errors.Is(err, governance.ErrKilled) {
		t.Errorf("a new run of the agent while the switch is pulled: %v", err)
	}
	if err := chromedp.Do(b,
		chromedp.Click(chromedp.CSS("#kills .release")),
		chromedp.WaitVisible(chromedp.CSS("#kills .empty")),
	); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Start(ctx, opts); err != nil {
		t.Errorf("a new run after the release: %v", err)
	}
}
