package governance_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

const approvalDoc = `{"tenant_id":"acme","thresholds":{"max_steps":100,"big":500},
 "policies":[
  {"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
  {"id":"approve-wire","kind":"requires_approval","params":{"tools":["wire"],"hold_seconds":60}},
  {"id":"big-spend","kind":"requires_approval","params":{"step_types":["llm_response"],"threshold":"big"}},
  {"id":"no-rm","kind":"tool_denylist","params":{"deny":["rm"]}}
 ]}`

func approvalSnap(t testing.TB, doc string) *snapshot.PolicySnapshot {
	t.Helper()
	s, err := snapshot.Parse("approval.json", []byte(doc), time.Now(), prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// answerWhenHeld answers the first hold of the run with answer.
func answerWhenHeld(t *testing.T, st governance.Store, runID string, approve bool, by, why string) {
	t.Helper()
	go func() {
		for range 2000 {
			hs, _ := governance.PendingHolds(context.Background(), st, "acme")
			for _, h := range hs {
				if h.RunID == runID {
					if approve {
						_, _ = governance.Approve(context.Background(), st, "acme", h.ID, by, why)
					} else {
						_, _ = governance.Deny(context.Background(), st, "acme", h.ID, by, why)
					}
					return
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
}

func TestHoldDecisions(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	r, err := governance.NewRunner(st, governance.WithHolds(0, 0, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: approvalSnap(t, approvalDoc)})
	if err != nil {
		t.Fatal(err)
	}
	// A cost above the threshold on an llm_response is held; approved.
	answerWhenHeld(t, st, run.ID(), true, "cfo", "budgeted")
	res, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, CostCents: 501})
	if err != nil || res.Evaluation.Decision.Action != prevention.Allow || res.Evaluation.Findings[0].Threshold != "big" {
		t.Fatalf("held cost step: %+v, %v", res.Evaluation, err)
	}
	// At the threshold exactly: not held.
	if res, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, CostCents: 500}); err != nil || len(res.Evaluation.Findings) != 0 {
		t.Fatalf("step at the threshold: %+v, %v", res.Evaluation, err)
	}
	// A tool held by name, under another spelling.
	answerWhenHeld(t, st, run.ID(), true, "ops", "ok")
	if res, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "WIRE"}); err != nil || res.Evaluation.Findings[0].PolicyID != "approve-wire" {
		t.Fatalf("WIRE: %+v, %v", res.Evaluation, err)
	}
	// A Block decides even after a hold: the step is not held.
	v := &governance.Violation{}
	_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "rm", CostCents: 0})
	if !errors.As(err, &v) || v.PolicyID() != "no-rm" {
		t.Fatalf("rm: %v", err)
	}
	if hs, _ := governance.PendingHolds(ctx, st, "acme"); len(hs) != 0 {
		t.Fatalf("holds left: %+v", hs)
	}
}

func TestHoldHookAndStore(t *testing.T) {
	ctx := context.Background()
	hold := prevention.NamedHook{ID: "human", Hook: prevention.HookFunc(func(_ context.Context, s *prevention.Step) (prevention.Decision, error) {
		if s.Tool == "deploy" {
			return prevention.Decision{Action: prevention.HoldForApproval, HoldSeconds: 0.05, Message: "deploys need a person"}, nil
		}
		return prevention.Allowed(), nil
	})}
	snap := approvalSnap(t, `{"tenant_id":"acme","thresholds":{"n":10},"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"n"}}]}`)

	// A hook's hold, unanswered, expires: timeout.
	st := memstore.New()
	r, err := governance.NewRunner(st, governance.WithHooks(hold), governance.WithHolds(0, 0, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "deploy"})
	var v *governance.Violation
	if !errors.As(err, &v) || v.Reason() != prevention.ReasonTimeout || v.Decision.Source != prevention.SourceHook || v.Decision.PolicyID != "human" {
		t.Fatalf("expired hook hold: %v", err)
	}

	// A hook's hold of any length is bounded, never overflows.
	huge := prevention.NamedHook{ID: "forever", Hook: prevention.HookFunc(func(context.Context, *prevention.Step) (prevention.Decision, error) {
		return prevention.Decision{Action: prevention.HoldForApproval, HoldSeconds: 1e300}, nil
	})}
	hs := memstore.New()
	rh, _ := governance.NewRunner(hs, governance.WithHooks(huge), governance.WithHolds(10*time.Millisecond, time.Hour, 5*time.Millisecond))
	runh, _ := rh.Start(ctx, governance.StartOptions{Snapshot: snap})
	go func() {
		for {
			if l, _ := governance.PendingHolds(ctx, hs, "acme"); len(l) > 0 {
				if d := l[0].Deadline.Sub(l[0].RequestedAt); d != time.Hour {
					t.Errorf("a hold of 1e300 s waits %s, want the runner's maximum", d)
				}
				_, _ = governance.Approve(ctx, hs, "acme", l[0].ID, "ops", "ok")
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	if _, err := runh.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); err != nil {
		t.Fatalf("huge hold: %v", err)
	}

	// The runner bounds a hold: WithHolds' maximum.
	r2, _ := governance.NewRunner(memstore.New(), governance.WithHolds(10*time.Millisecond, 20*time.Millisecond, 5*time.Millisecond))
	run2, _ := r2.Start(ctx, governance.StartOptions{Snapshot: approvalSnap(t, approvalDoc)})
	began := time.Now()
	if _, err := run2.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "wire"}); !errors.As(err, &v) || v.Reason() != prevention.ReasonTimeout {
		t.Fatalf("bounded hold: %v", err)
	}
	if d := time.Since(began); d > 10*time.Second {
		t.Fatalf("a hold bounded to 20ms waited %s", d)
	}

	// A store without holds: a snapshot that holds is refused at Start, a
	// hook's hold fails closed.
	plain := struct{ governance.Store }{memstore.New()}
	r3, _ := governance.NewRunner(plain, governance.WithHooks(hold))
	if _, err := r3.Start(ctx, governance.StartOptions{Snapshot: approvalSnap(t, approvalDoc)}); !errors.Is(err, governance.ErrNoHoldStore) {
		t.Fatalf("start on a store without holds: %v", err)
	}
	run3, _ := r3.Start(ctx, governance.StartOptions{Snapshot: snap})
	if _, err := run3.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "deploy"}); !errors.Is(err, governance.ErrNoHoldStore) {
		t.Fatalf("hook hold on a store without holds: %v", err)
	}
	if rec := run3.Record(); rec.Status != governance.StatusFailed || rec.TerminationReason != prevention.ReasonSystemFailure {
		t.Fatalf("run = %+v", rec)
	}
	if _, err := governance.NewRunner(plain, governance.WithKillSwitch(0)); !errors.Is(err, governance.ErrNoKillStore) {
		t.Fatalf("kill switch on a store without kills: %v", err)
	}
}

// TestReplayHolds: a recorded answer and an operator's stop are inputs:
// Replay takes them from the record, reproduces the decisions, and says
// so; WhatIf flags steps a candidate would hold.
func TestReplayHolds(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	r, err := governance.NewRunner(st, governance.WithHolds(0, 0, 5*time.Millisecond), governance.WithKillSwitch(5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snap := approvalSnap(t, approvalDoc)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	answerWhenHeld(t, st, run.ID(), true, "ops", "fine")
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "wire"}); err != nil {
		t.Fatal(err)
	}
	answerWhenHeld(t, st, run.ID(), false, "ops", "not twice")
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "wire"}); err == nil {
		t.Fatal("denied step passed")
	}
	rep, err := r.Replay(ctx, "acme", run.ID())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals.Mismatch != 0 || rep.Totals.Partial != 2 {
		t.Fatalf("replay totals %+v: %+v", rep.Totals, rep.Steps)
	}
	for _, s := range rep.Steps {
		if len(s.Gaps) != 1 || s.Gaps[0].Why != governance.GapApproval || !strings.Contains(s.Gaps[0].Detail, "by ops") {
			t.Fatalf("step %d gaps %+v", s.StepIndex, s.Gaps)
		}
	}

	killed, _ := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if _, err := governance.Kill(ctx, st, "acme", governance.KillRun, killed.ID(), "ops", "stop"); err != nil {
		t.Fatal(err)
	}
	for {
		_, err := killed.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
		if err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	rep, err = r.Replay(ctx, "acme", killed.ID())
	if err != nil {
		t.Fatal(err)
	}
	last := rep.Steps[len(rep.Steps)-1]
	if rep.Totals.Mismatch != 0 || last.Outcome != governance.ReplayPartial || last.Gaps[0].Why != governance.GapOperator {
		t.Fatalf("replay of a killed run: %+v / %+v", rep.Totals, last)
	}

	// A candidate that holds steps the recorded run did not wait on.
	plainRun, _ := r.Start(ctx, governance.StartOptions{Snapshot: approvalSnap(t, `{"tenant_id":"acme","thresholds":{"n":10},"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"n"}}]}`)})
	if _, err := plainRun.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "wire"}); err != nil {
		t.Fatal(err)
	}
	if _, err := plainRun.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	wi, err := r.WhatIf(ctx, snap, governance.RunFilter{TenantID: "acme", Status: governance.StatusSucceeded})
	if err != nil {
		t.Fatal(err)
	}
	if len(wi.Runs) != 1 || len(wi.Runs[0].Flags) == 0 || wi.Runs[0].Flags[len(wi.Runs[0].Flags)-1].Why != governance.GapApproval {
		t.Fatalf("what-if: %+v", wi.Runs)
	}
}

func TestExplainHeld(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	r, _ := governance.NewRunner(st, governance.WithHolds(0, 0, 5*time.Millisecond))
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: approvalSnap(t, approvalDoc)})
	answerWhenHeld(t, st, run.ID(), false, "ops", "no")
	time.Sleep(5 * time.Millisecond) // the answer comes after the request
	_, _ = run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "wire"})
	recs, _ := st.Records(ctx, "acme", run.ID())
	a := recs[1].Approval
	if a == nil || a.Answer != trace.AnswerDenied {
		t.Fatalf("record: %+v", recs[1])
	}
	ex, err := governance.Explain(ctx, st, "acme", run.ID(), a.RequestedAt.Add(time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	if ex.State != governance.StateHeld || ex.RunStatus != governance.StatusRunning || ex.Decisive == nil || ex.Decisive.PolicyID != "approve-wire" ||
		!strings.Contains(ex.Why, "waiting for a person's answer") || !strings.Contains(ex.Why, "denied by ops") {
		t.Fatalf("explain while held: %s %s %q", ex.State, ex.RunStatus, ex.Why)
	}
	ex, err = governance.Explain(ctx, st, "acme", run.ID(), a.AnsweredAt.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if ex.State != governance.StateStopped || !strings.Contains(ex.Why, "denied by ops: no") {
		t.Fatalf("explain after: %s %q", ex.State, ex.Why)
	}
}

// TestKillReserveAndStream: a kill switch refuses a reservation (the
// model call is not made) and cuts a stream at its next check.
func TestKillReserveAndStream(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	r, err := governance.NewRunner(st, governance.WithKillSwitch(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snap := approvalSnap(t, `{"tenant_id":"acme","thresholds":{"n":100},"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"n"}}]}`)
	reserved, _ := r.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{governance.AgentLabel: "a"}})
	streamed, _ := r.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{governance.AgentLabel: "a"}})
	if _, err := governance.Kill(ctx, st, "acme", governance.KillAgent, "a", "ops", "stop"); err != nil {
		t.Fatal(err)
	}
	var v *governance.Violation
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		res, err := reserved.Reserve(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", CostCents: 1})
		if errors.As(err, &v) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("reserve under a kill switch: %v", err)
		}
		_ = res.Release(ctx)
	}
	if v.Reason() != prevention.ReasonUserAbort || v.Decision.Source != prevention.SourceOperator {
		t.Fatalf("reserve: %+v", v.Decision)
	}
	ev, err := streamed.Stream().Withhold(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Output: "partial text"},
		governance.StepInput{Type: prevention.StepLLMResponse, Output: "partial"})
	if !errors.As(err, &v) || ev.Decision.Source != prevention.SourceOperator {
		t.Fatalf("stream check under a kill switch: %+v, %v", ev, err)
	}
	if rec := streamed.Record(); rec.Status != governance.StatusCancelled {
		t.Fatalf("streamed run: %s", rec.Status)
	}
}

// A runner over a store that keeps kill switches honours them without
// being told to; only WithoutKillSwitch opts out.
func TestKillSwitchByDefault(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	r, err := governance.NewRunner(st)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	deaf, err := governance.NewRunner(st, governance.WithoutKillSwitch())
	if err != nil {
		t.Fatal(err)
	}
	snap := approvalSnap(t, `{"tenant_id":"acme","thresholds":{"n":100},"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"n"}}]}`)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	other, err := deaf.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := governance.Kill(ctx, st, "acme", governance.KillTenant, "acme", "ops", "stop everything"); err != nil {
		t.Fatal(err)
	}
	var v *governance.Violation
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Model: "m"})
		if errors.As(err, &v) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("step under a kill switch, default runner: %v", err)
		}
	}
	if v.Reason() != prevention.ReasonUserAbort {
		t.Fatalf("reason %s", v.Reason())
	}
	if _, err := r.Start(ctx, governance.StartOptions{Snapshot: snap}); !errors.Is(err, governance.ErrKilled) {
		t.Fatalf("start under a kill switch: %v", err)
	}
	if _, err := other.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Model: "m"}); err != nil {
		t.Fatalf("WithoutKillSwitch: %v", err)
	}
}

// An agent's kill switch reaches its runs whatever the spelling of the
// agent's name in their label (compared as deny lists compare names).
func TestKillAgentNameSpelling(t *testing.T) {
	ctx := context.Background()
	st := memstore.New()
	r, err := governance.NewRunner(st, governance.WithKillSwitch(time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snap := approvalSnap(t, `{"tenant_id":"acme","thresholds":{"n":100},"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"n"}}]}`)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{governance.AgentLabel: "Researcher "}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := governance.Kill(ctx, st, "acme", governance.KillAgent, "researcher", "ops", "runaway"); err != nil {
		t.Fatal(err)
	}
	var v *governance.Violation
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(2 * time.Millisecond) {
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Model: "m"})
		if errors.As(err, &v) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("a run labelled %q under the kill switch of agent %q: %v", "Researcher ", "researcher", err)
		}
	}
	if _, err := r.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{governance.AgentLabel: "RESEARCHER"}}); !errors.Is(err, governance.ErrKilled) {
		t.Fatalf("start of RESEARCHER under the switch: %v", err)
	}
}
