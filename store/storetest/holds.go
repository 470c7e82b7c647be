package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// RunOperator runs the tests of approval holds and kill switches: the
// store's governance.HoldStore and governance.KillStore methods, and a
// real Runner that waits on holds answered through the store and stops
// runs under a kill switch. A store that implements neither skips them.
func RunOperator(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"HoldStore", testHoldStore},
		{"KillStore", testKillStore},
		{"HoldApproved", testHoldApproved},
		{"HoldDenied", testHoldDenied},
		{"HoldExpired", testHoldExpired},
		{"HoldCancelled", testHoldCancelled},
		{"HoldAnswerRace", testHoldAnswerRace},
		{"HoldSurvivesRestart", testHoldRestart},
		{"HoldRecovered", testHoldRecovered},
		{"KillScopes", testKillScopes},
		{"KillDuringHold", testKillDuringHold},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

func holdStore(t *testing.T, open Opener) (governance.Store, governance.HoldStore) {
	t.Helper()
	st := open(t)
	hs, ok := st.(governance.HoldStore)
	if !ok {
		t.Skip("the store does not implement governance.HoldStore")
	}
	return st, hs
}

func killStore(t *testing.T, open Opener) (governance.Store, governance.KillStore) {
	t.Helper()
	st := open(t)
	ks, ok := st.(governance.KillStore)
	if !ok {
		t.Skip("the store does not implement governance.KillStore")
	}
	return st, ks
}

func testHoldStore(t *testing.T, open Opener) {
	st, hs := holdStore(t, open)
	startRun(t, st, "acme", "run-1")
	now := T0.Add(time.Minute)
	h := governance.Hold{ID: "HOLD-1", TenantID: "acme", RunID: "run-1", StepIndex: 0, StepType: prevention.StepToolCall,
		Tool: "wire", CostCents: 2.5, PolicyID: "approve-wire", Source: prevention.SourcePolicy, Message: "needs approval",
		RequestedAt: now, Deadline: now.Add(time.Hour), Status: governance.HoldPending, Step: []byte(`{"x":1}`)}
	if err := hs.PutHold(ctx, h); err != nil {
		t.Fatal(err)
	}
	if err := hs.PutHold(ctx, h); !errors.Is(err, governance.ErrHoldExists) {
		t.Fatalf("PutHold of the same id: %v, want ErrHoldExists", err)
	}
	h2 := h
	h2.ID, h2.RequestedAt = "HOLD-2", now.Add(time.Second)
	if err := hs.PutHold(ctx, h2); err != nil {
		t.Fatal(err)
	}
	got, err := hs.Hold(ctx, "acme", "HOLD-1")
	if err != nil {
		t.Fatal(err)
	}
	if got.Tool != "wire" || got.CostCents != 2.5 || !got.RequestedAt.Equal(now) || !got.Deadline.Equal(now.Add(time.Hour)) ||
		got.Status != governance.HoldPending || string(got.Step) != `{"x":1}` || got.PolicyID != "approve-wire" || got.Source != prevention.SourcePolicy {
		t.Fatalf("Hold = %+v", got)
	}
	if _, err := hs.Hold(ctx, "other", "HOLD-1"); !errors.Is(err, governance.ErrNotFound) {
		t.Fatalf("another tenant's hold: %v, want ErrNotFound", err)
	}
	if l, err := hs.Holds(ctx, governance.HoldFilter{TenantID: "other"}); err != nil || len(l) != 0 {
		t.Fatalf("another tenant lists %d holds (%v)", len(l), err)
	}
	ans := governance.HoldAnswer{Status: governance.HoldApproved, By: "ops@acme", Reason: "expected", At: now.Add(time.Minute)}
	a, err := hs.AnswerHold(ctx, "acme", "HOLD-1", ans)
	if err != nil {
		t.Fatal(err)
	}
	if a.Status != governance.HoldApproved || a.AnsweredBy != "ops@acme" || a.AnswerReason != "expected" || a.AnsweredAt == nil || !a.AnsweredAt.Equal(ans.At) {
		t.Fatalf("answered = %+v", a)
	}
	if _, err := hs.AnswerHold(ctx, "acme", "HOLD-1", governance.HoldAnswer{Status: governance.HoldDenied, By: "x", At: now}); !errors.Is(err, governance.ErrHoldAnswered) {
		t.Fatalf("second answer: %v, want ErrHoldAnswered", err)
	}
	if _, err := hs.AnswerHold(ctx, "other", "HOLD-2", ans); !errors.Is(err, governance.ErrNotFound) {
		t.Fatalf("answer through another tenant: %v, want ErrNotFound", err)
	}
	pending, err := hs.Holds(ctx, governance.HoldFilter{TenantID: "acme", Status: governance.HoldPending})
	if err != nil || len(pending) != 1 || pending[0].ID != "HOLD-2" {
		t.Fatalf("pending = %+v (%v)", pending, err)
	}
	all, err := hs.Holds(ctx, governance.HoldFilter{TenantID: "acme", RunID: "run-1"})
	if err != nil || len(all) != 2 || all[0].ID != "HOLD-1" || all[1].ID != "HOLD-2" {
		t.Fatalf("holds of the run, oldest first = %+v (%v)", all, err)
	}
	if l, _ := hs.Holds(ctx, governance.HoldFilter{TenantID: "acme", Limit: 1}); len(l) != 1 {
		t.Fatalf("limit 1 gave %d", len(l))
	}
}

// startRun starts a run of the suite's snapshot with an explicit id.
func startRun(t *testing.T, st governance.Store, tenant, id string) {
	t.Helper()
	r, _ := newRunner(t, st)
	if _, err := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, tenant), RunID: id}); err != nil {
		t.Fatal(err)
	}
}

func testKillStore(t *testing.T, open Opener) {
	_, ks := killStore(t, open)
	k := governance.KillSwitch{ID: "KILL-1", TenantID: "acme", Scope: governance.KillAgent, Target: "mailer", By: "ops", Reason: "spam", PulledAt: T0}
	if err := ks.PutKill(ctx, k); err != nil {
		t.Fatal(err)
	}
	k2 := k
	k2.ID = "KILL-2"
	if err := ks.PutKill(ctx, k2); !errors.Is(err, governance.ErrKillActive) {
		t.Fatalf("a second switch over the same scope: %v, want ErrKillActive", err)
	}
	other := governance.KillSwitch{ID: "KILL-3", TenantID: "other", Scope: governance.KillTenant, Target: "other", By: "ops", Reason: "r", PulledAt: T0.Add(time.Second)}
	if err := ks.PutKill(ctx, other); err != nil {
		t.Fatal(err)
	}
	if l, err := ks.ActiveKills(ctx, "acme"); err != nil || len(l) != 1 || l[0].ID != "KILL-1" || l[0].By != "ops" || l[0].Reason != "spam" || !l[0].PulledAt.Equal(T0) {
		t.Fatalf("active kills of acme = %+v (%v)", l, err)
	}
	if l, err := ks.ActiveKills(ctx, ""); err != nil || len(l) != 2 {
		t.Fatalf("active kills of every tenant = %+v (%v)", l, err)
	}
	if _, err := ks.ReleaseKill(ctx, "other", governance.KillAgent, "mailer", "ops", T0); !errors.Is(err, governance.ErrNotFound) {
		t.Fatalf("release through another tenant: %v, want ErrNotFound", err)
	}
	rel, err := ks.ReleaseKill(ctx, "acme", governance.KillAgent, "mailer", "lead", T0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if rel.ID != "KILL-1" || rel.ReleasedBy != "lead" || rel.ReleasedAt == nil || !rel.ReleasedAt.Equal(T0.Add(time.Hour)) {
		t.Fatalf("released = %+v", rel)
	}
	if _, err := ks.ReleaseKill(ctx, "acme", governance.KillAgent, "mailer", "lead", T0); !errors.Is(err, governance.ErrNotFound) {
		t.Fatalf("second release: %v, want ErrNotFound", err)
	}
	if l, _ := ks.ActiveKills(ctx, "acme"); len(l) != 0 {
		t.Fatalf("active after release: %+v", l)
	}
	if err := ks.PutKill(ctx, k2); err != nil {
		t.Fatalf("pulling again after a release: %v", err)
	}
}

// approvalSnapshot holds tool_call steps of the tool "wire" for
// holdSeconds.
func approvalSnapshot(t testing.TB, tenant string, holdSeconds float64) *snapshot.PolicySnapshot {
	t.Helper()
	doc := fmt.Sprintf(`{"tenant_id": %q, "thresholds": {"max_steps": 100000},
	  "policies": [
	    {"id": "steps", "kind": "budget", "params": {"metric": "steps", "threshold": "max_steps"}},
	    {"id": "approve-wire", "kind": "requires_approval", "params": {"tools": ["wire"], "hold_seconds": %v}}
	  ]}`, tenant, holdSeconds)
	s, err := snapshot.Parse("approval.json", []byte(doc), T0, prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func holdRunner(t *testing.T, st governance.Store, opts ...governance.Option) *governance.Runner {
	t.Helper()
	opts = append([]governance.Option{governance.WithHolds(0, 0, 10*time.Millisecond)}, opts...)
	r, err := governance.NewRunner(st, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// waitPending waits for the run's hold to be stored, and returns it.
func waitPending(t *testing.T, st governance.Store, tenant, runID string) governance.Hold {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		hs, err := governance.PendingHolds(ctx, st, tenant)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range hs {
			if h.RunID == runID {
				return h
			}
		}
	}
	t.Fatalf("no pending hold for run %s", runID)
	return governance.Hold{}
}

type stepOutcome struct {
	res governance.StepResult
	err error
}

func stepAsync(ctx context.Context, run *governance.Run, in governance.StepInput) <-chan stepOutcome {
	out := make(chan stepOutcome, 1)
	go func() {
		res, err := run.Step(ctx, in)
		out <- stepOutcome{res, err}
	}()
	return out
}

func wire() governance.StepInput {
	return governance.StepInput{Type: prevention.StepToolCall, Tool: "wire", Input: `{"amount": 900}`, CostCents: 0.5}
}

func outcome(t *testing.T, ch <-chan stepOutcome) stepOutcome {
	t.Helper()
	select {
	case o := <-ch:
		return o
	case <-time.After(20 * time.Second):
		t.Fatal("the held step did not return")
	}
	return stepOutcome{}
}

// heldRecord returns the record of the run's step idx, and checks the
// run's chain.
func heldRecord(t *testing.T, st governance.Store, tenant, runID string, idx int) trace.Record {
	t.Helper()
	if _, err := governance.VerifyRun(ctx, st, tenant, runID); err != nil {
		t.Fatalf("VerifyRun: %v", err)
	}
	recs, err := st.Records(ctx, tenant, runID)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.Kind == trace.KindStep && r.StepIndex == idx {
			if r.Approval == nil {
				t.Fatalf("step %d has no approval: %+v", idx, r)
			}
			return r
		}
	}
	t.Fatalf("no record of step %d", idx)
	return trace.Record{}
}

func testHoldApproved(t *testing.T, open Opener) {
	st, _ := holdStore(t, open)
	r := holdRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: approvalSnapshot(t, "acme", 60)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search"}); err != nil {
		t.Fatal(err)
	}
	ch := stepAsync(ctx, run, wire())
	h := waitPending(t, st, "acme", run.ID())
	if h.StepIndex != 1 || h.Tool != "wire" || h.PolicyID != "approve-wire" || h.Deadline.Sub(h.RequestedAt) != time.Minute {
		t.Fatalf("hold = %+v", h)
	}
	select {
	case o := <-ch:
		t.Fatalf("the step returned before any answer: %+v %v", o.res, o.err)
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := governance.Approve(ctx, st, "acme", h.ID, "", "ok"); err == nil {
		t.Fatal("an approval without who approves was accepted")
	}
	if _, err := governance.Approve(ctx, st, "other", h.ID, "ops", "ok"); !errors.Is(err, governance.ErrNotFound) {
		t.Fatalf("approval through another tenant: %v, want ErrNotFound", err)
	}
	if _, err := governance.Approve(ctx, st, "acme", h.ID, "ops@acme", "customer confirmed"); err != nil {
		t.Fatal(err)
	}
	o := outcome(t, ch)
	if o.err != nil || o.res.Evaluation.Decision.Action != prevention.Allow || !o.res.Recorded {
		t.Fatalf("approved step: %+v, %v", o.res, o.err)
	}
	if _, err := governance.Deny(ctx, st, "acme", h.ID, "late", "no"); !errors.Is(err, governance.ErrHoldAnswered) {
		t.Fatalf("a second answer: %v, want ErrHoldAnswered", err)
	}
	rec := heldRecord(t, st, "acme", run.ID(), 1)
	a := rec.Approval
	if a.Answer != trace.AnswerApproved || a.By != "ops@acme" || a.Reason != "customer confirmed" || a.HoldID != h.ID || a.AnsweredAt.Before(a.RequestedAt) {
		t.Fatalf("approval recorded = %+v", a)
	}
	if len(rec.Findings) != 1 || rec.Findings[0].Action != prevention.HoldForApproval || rec.Findings[0].PolicyID != "approve-wire" {
		t.Fatalf("findings = %+v", rec.Findings)
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolResult, Tool: "wire", Output: "done"}); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Fatal(err)
	}
	// Explain at an instant while the step was held says so.
	ex, err := governance.Explain(ctx, st, "acme", run.ID(), a.RequestedAt)
	if err != nil {
		t.Fatal(err)
	}
	if ex.LastStep == nil || ex.LastStep.Approval == nil || !strings.Contains(ex.Why, "held for approval") {
		t.Fatalf("Explain while held: %+v / %q", ex.LastStep, ex.Why)
	}
}

func blockedBy(t *testing.T, o stepOutcome, reason prevention.RunTerminationReason) *governance.Violation {
	t.Helper()
	var v *governance.Violation
	if !errors.As(o.err, &v) || v.Reason() != reason {
		t.Fatalf("held step: %v, want a *Violation with reason %s", o.err, reason)
	}
	return v
}

func testHoldDenied(t *testing.T, open Opener) {
	st, _ := holdStore(t, open)
	r := holdRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: approvalSnapshot(t, "acme", 60)})
	if err != nil {
		t.Fatal(err)
	}
	ch := stepAsync(ctx, run, wire())
	h := waitPending(t, st, "acme", run.ID())
	if _, err := governance.Deny(ctx, st, "acme", h.ID, "ops", ""); err == nil {
		t.Fatal("a denial without a reason was accepted")
	}
	if _, err := governance.Deny(ctx, st, "acme", h.ID, "ops", "not this account"); err != nil {
		t.Fatal(err)
	}
	v := blockedBy(t, outcome(t, ch), prevention.ReasonPolicyBlock)
	if v.Decision.PolicyID != "approve-wire" || !strings.Contains(v.Decision.Message, "denied by ops: not this account") {
		t.Fatalf("violation = %+v", v.Decision)
	}
	rec := heldRecord(t, st, "acme", run.ID(), 0)
	if !rec.Inflection || rec.Approval.Answer != trace.AnswerDenied || rec.Approval.By != "ops" {
		t.Fatalf("record = %+v", rec)
	}
	rr, _ := st.Run(ctx, "acme", run.ID())
	if rr.Status != governance.StatusFailedPolicy || rr.IncidentID == "" {
		t.Fatalf("run = %+v", rr)
	}
}

func testHoldExpired(t *testing.T, open Opener) {
	st, _ := holdStore(t, open)
	r := holdRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: approvalSnapshot(t, "acme", 0.2)})
	if err != nil {
		t.Fatal(err)
	}
	v := blockedBy(t, outcome(t, stepAsync(ctx, run, wire())), prevention.ReasonTimeout)
	rec := heldRecord(t, st, "acme", v.RunID, 0)
	if rec.Approval.Answer != trace.AnswerExpired || rec.Approval.By != "" {
		t.Fatalf("approval = %+v", rec.Approval)
	}
	hs := st.(governance.HoldStore)
	h, err := hs.Hold(ctx, "acme", rec.Approval.HoldID)
	if err != nil || h.Status != governance.HoldExpired {
		t.Fatalf("hold = %+v (%v)", h, err)
	}
	if _, err := governance.Approve(ctx, st, "acme", h.ID, "ops", "late"); !errors.Is(err, governance.ErrHoldAnswered) {
		t.Fatalf("approving an expired hold: %v, want ErrHoldAnswered", err)
	}
}

func testHoldCancelled(t *testing.T, open Opener) {
	st, _ := holdStore(t, open)
	r := holdRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: approvalSnapshot(t, "acme", 60)})
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	ch := stepAsync(cctx, run, wire())
	waitPending(t, st, "acme", run.ID())
	cancel()
	blockedBy(t, outcome(t, ch), prevention.ReasonUserAbort)
	rec := heldRecord(t, st, "acme", run.ID(), 0)
	if rec.Approval.Answer != trace.AnswerCancelled {
		t.Fatalf("approval = %+v", rec.Approval)
	}
	if rr, _ := st.Run(ctx, "acme", run.ID()); rr.Status != governance.StatusCancelled {
		t.Fatalf("run status %s, want cancelled", rr.Status)
	}
}

// testHoldAnswerRace answers one hold from many goroutines at once: one
// answer is stored, every other is ErrHoldAnswered.
func testHoldAnswerRace(t *testing.T, open Opener) {
	st, hs := holdStore(t, open)
	startRun(t, st, "acme", "run-1")
	if err := hs.PutHold(ctx, governance.Hold{ID: "HOLD-R", TenantID: "acme", RunID: "run-1", StepType: prevention.StepToolCall,
		PolicyID: "p", Source: prevention.SourcePolicy, RequestedAt: T0, Deadline: T0.Add(time.Hour), Status: governance.HoldPending}); err != nil {
		t.Fatal(err)
	}
	const n = 8
	var won atomic.Int32
	errs := make(chan error, n)
	for i := range n {
		go func() {
			st := governance.HoldApproved
			if i%2 == 1 {
				st = governance.HoldDenied
			}
			_, err := hs.AnswerHold(ctx, "acme", "HOLD-R", governance.HoldAnswer{Status: st, By: fmt.Sprint("op", i), At: T0})
			if err == nil {
				won.Add(1)
			} else if !errors.Is(err, governance.ErrHoldAnswered) {
				errs <- err
				return
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if won.Load() != 1 {
		t.Fatalf("%d answers stored, want 1", won.Load())
	}
}

// frozen is a store whose writes fail once frozen: the process that
// used it is dead, and the store shows what it left.
type frozen struct {
	governance.Store
	hs     governance.HoldStore
	frozen atomic.Bool
}

var errFrozen = errors.New("storetest: the process is gone")

func (f *frozen) AppendStep(ctx context.Context, w governance.StepWrite) error {
	if f.frozen.Load() {
		return errFrozen
	}
	return f.Store.AppendStep(ctx, w)
}

func (f *frozen) CloseRun(ctx context.Context, c governance.Close) error {
	if f.frozen.Load() {
		return errFrozen
	}
	return f.Store.CloseRun(ctx, c)
}

func (f *frozen) PutHold(ctx context.Context, h governance.Hold) error { return f.hs.PutHold(ctx, h) }
func (f *frozen) Hold(ctx context.Context, tenantID, id string) (governance.Hold, error) {
	return f.hs.Hold(ctx, tenantID, id)
}
func (f *frozen) Holds(ctx context.Context, hf governance.HoldFilter) ([]governance.Hold, error) {
	return f.hs.Holds(ctx, hf)
}
func (f *frozen) AnswerHold(ctx context.Context, tenantID, id string, a governance.HoldAnswer) (governance.Hold, error) {
	if f.frozen.Load() {
		return governance.Hold{}, errFrozen
	}
	return f.hs.AnswerHold(ctx, tenantID, id, a)
}

// crashWhileHeld leaves, in st, a run whose step 1 is held: the process
// that ran it is gone without answering the hold or ending the run.
func crashWhileHeld(t *testing.T, st governance.Store, hs governance.HoldStore, holdSeconds float64) (runID string, h governance.Hold) {
	t.Helper()
	f := &frozen{Store: st, hs: hs}
	r := holdRunner(t, f)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: approvalSnapshot(t, "acme", holdSeconds), Labels: map[string]string{governance.AgentLabel: "payer"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 5, CostCents: 1}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	ch := stepAsync(cctx, run, wire())
	h = waitPending(t, st, "acme", run.ID())
	f.frozen.Store(true)
	cancel()
	if o := outcome(t, ch); o.err == nil {
		t.Fatal("the step of a process that died returned no error")
	}
	if rr, _ := st.Run(ctx, "acme", run.ID()); rr.Status != governance.StatusRunning {
		t.Fatalf("after the crash the store shows the run %s", rr.Status)
	}
	if got, _ := hs.Hold(ctx, "acme", h.ID); got.Status != governance.HoldPending {
		t.Fatalf("after the crash the hold is %s", got.Status)
	}
	return run.ID(), h
}

func testHoldRestart(t *testing.T, open Opener) {
	st, hs := holdStore(t, open)
	runID, h := crashWhileHeld(t, st, hs, 60)
	// A new process takes the run over: it waits on the same hold.
	r := holdRunner(t, st)
	type resumed struct {
		run *governance.Run
		err error
	}
	ch := make(chan resumed, 1)
	go func() {
		run, err := r.Resume(ctx, "acme", runID)
		ch <- resumed{run, err}
	}()
	select {
	case got := <-ch:
		t.Fatalf("Resume returned before the hold was answered: %v", got.err)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := governance.Approve(ctx, st, "acme", h.ID, "ops", "after the restart"); err != nil {
		t.Fatal(err)
	}
	var got resumed
	select {
	case got = <-ch:
	case <-time.After(20 * time.Second):
		t.Fatal("Resume did not return after the approval")
	}
	if got.err != nil {
		t.Fatal(got.err)
	}
	rec := heldRecord(t, st, "acme", runID, 1)
	if rec.Approval.Answer != trace.AnswerApproved || rec.Approval.By != "ops" || rec.Decision.Action != prevention.Allow {
		t.Fatalf("record = %+v", rec)
	}
	res, err := got.run.Step(ctx, governance.StepInput{Type: prevention.StepToolResult, Tool: "wire", Output: "ok", Tokens: 1})
	if err != nil || res.Index != 2 {
		t.Fatalf("the step after: %+v, %v", res, err)
	}
	if rr, err := got.run.Finish(ctx); err != nil || rr.StepCount != 3 || rr.TotalTokens != 6 {
		t.Fatalf("finish: %+v, %v", rr, err)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", runID); err != nil {
		t.Fatal(err)
	}
}

func testHoldRecovered(t *testing.T, open Opener) {
	st, hs := holdStore(t, open)
	runID, h := crashWhileHeld(t, st, hs, 60)
	if _, err := governance.RecoverRun(ctx, st, "acme", runID, "", time.Now()); err != nil {
		t.Fatal(err)
	}
	got, err := hs.Hold(ctx, "acme", h.ID)
	if err != nil || got.Status != governance.HoldCancelled {
		t.Fatalf("hold after RecoverRun = %+v (%v), want cancelled", got, err)
	}
	if _, err := governance.Approve(ctx, st, "acme", h.ID, "ops", "too late"); !errors.Is(err, governance.ErrHoldAnswered) {
		t.Fatalf("approving the hold of a recovered run: %v", err)
	}
	// And a run whose hold's deadline passes while nobody waits on it is
	// blocked when it is resumed, never let pass.
	st2, hs2 := holdStore(t, open)
	runID2, _ := crashWhileHeld(t, st2, hs2, 0.3)
	time.Sleep(400 * time.Millisecond)
	r := holdRunner(t, st2)
	_, err = r.Resume(ctx, "acme", runID2)
	var v *governance.Violation
	if !errors.As(err, &v) || v.Reason() != prevention.ReasonTimeout {
		t.Fatalf("resuming after the deadline: %v, want a timeout *Violation", err)
	}
	if rec := heldRecord(t, st2, "acme", runID2, 1); rec.Approval.Answer != trace.AnswerExpired || !rec.Inflection {
		t.Fatalf("record = %+v", rec)
	}
}

func killRunner(t *testing.T, st governance.Store) *governance.Runner {
	t.Helper()
	return holdRunner(t, st, governance.WithKillSwitch(5*time.Millisecond))
}

// waitKilled steps run until the kill switch reaches it (the runner's
// view is refreshed by its watcher) and returns the violation.
func waitKilled(t *testing.T, run *governance.Run) *governance.Violation {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
		var v *governance.Violation
		if errors.As(err, &v) {
			return v
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Fatal("the kill switch never reached the run")
	return nil
}

func testKillScopes(t *testing.T, open Opener) {
	st, _ := killStore(t, open)
	if _, ok := st.(governance.HoldStore); !ok {
		t.Skip("no HoldStore")
	}
	r := killRunner(t, st)
	snap := approvalSnapshot(t, "acme", 60)
	start := func(agent string) *governance.Run {
		t.Helper()
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{governance.AgentLabel: agent}})
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	mailer1, mailer2, other, single := start("mailer"), start("mailer"), start("search"), start("search")

	// One run.
	k, err := governance.Kill(ctx, st, "acme", governance.KillRun, single.ID(), "ops", "looping")
	if err != nil {
		t.Fatal(err)
	}
	v := waitKilled(t, single)
	if v.Decision.Source != prevention.SourceOperator || v.Decision.PolicyID != k.ID || !strings.Contains(v.Decision.Message, "pulled by ops") {
		t.Fatalf("violation = %+v", v.Decision)
	}
	rr, _ := st.Run(ctx, "acme", single.ID())
	if rr.Status != governance.StatusCancelled || rr.TerminationReason != prevention.ReasonUserAbort || rr.IncidentID == "" {
		t.Fatalf("killed run = %+v", rr)
	}
	inc, err := st.Incident(ctx, "acme", rr.IncidentID)
	if err != nil || !strings.Contains(inc.Message, "pulled by ops") {
		t.Fatalf("incident = %+v (%v)", inc, err)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", single.ID()); err != nil {
		t.Fatal(err)
	}

	// An agent: both of its runs, not the other agent's.
	if _, err := governance.Kill(ctx, st, "acme", governance.KillAgent, "mailer", "ops", "sends spam"); err != nil {
		t.Fatal(err)
	}
	if _, err := governance.Kill(ctx, st, "acme", governance.KillAgent, "mailer", "ops2", "again"); !errors.Is(err, governance.ErrKillActive) {
		t.Fatalf("pulling twice: %v, want ErrKillActive", err)
	}
	waitKilled(t, mailer1)
	waitKilled(t, mailer2)
	if _, err := other.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); err != nil {
		t.Fatalf("a run of another agent was stopped: %v", err)
	}
	_, err = r.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{governance.AgentLabel: "mailer"}})
	var ke *governance.KillError
	if !errors.Is(err, governance.ErrKilled) || !errors.As(err, &ke) || ke.Switch.Scope != governance.KillAgent {
		t.Fatalf("a new run of a killed agent: %v, want ErrKilled", err)
	}
	if l, err := governance.ActiveKills(ctx, st, "acme"); err != nil || len(l) != 2 {
		t.Fatalf("active kills = %+v (%v)", l, err)
	}
	if _, err := governance.Release(ctx, st, "acme", governance.KillAgent, "mailer", "lead"); err != nil {
		t.Fatal(err)
	}
	start("mailer") // starts again

	// A tenant: every run, and no new one, until released; another
	// tenant's runs go on.
	elsewhere, err := r.Start(ctx, governance.StartOptions{Snapshot: approvalSnapshot(t, "beta", 60)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := governance.Kill(ctx, st, "acme", governance.KillTenant, "beta", "ops", "wrong tenant"); err == nil {
		t.Fatal("a tenant switch naming another tenant was accepted")
	}
	if _, err := governance.Kill(ctx, st, "acme", governance.KillTenant, "acme", "ops", "incident 42"); err != nil {
		t.Fatal(err)
	}
	waitKilled(t, other)
	if _, err := r.Start(ctx, governance.StartOptions{Snapshot: snap}); !errors.Is(err, governance.ErrKilled) {
		t.Fatalf("a new run of a killed tenant: %v, want ErrKilled", err)
	}
	if _, err := elsewhere.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); err != nil {
		t.Fatalf("another tenant's run was stopped: %v", err)
	}
	if _, err := governance.Release(ctx, st, "acme", governance.KillTenant, "acme", "lead"); err != nil {
		t.Fatal(err)
	}
	if _, err := governance.Release(ctx, st, "acme", governance.KillTenant, "acme", "lead"); !errors.Is(err, governance.ErrNotFound) {
		t.Fatalf("releasing twice: %v, want ErrNotFound", err)
	}
	start("search")
}

func testKillDuringHold(t *testing.T, open Opener) {
	st, _ := killStore(t, open)
	if _, ok := st.(governance.HoldStore); !ok {
		t.Skip("no HoldStore")
	}
	r := killRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: approvalSnapshot(t, "acme", 60)})
	if err != nil {
		t.Fatal(err)
	}
	ch := stepAsync(ctx, run, wire())
	h := waitPending(t, st, "acme", run.ID())
	k, err := governance.Kill(ctx, st, "acme", governance.KillRun, run.ID(), "ops", "stop now")
	if err != nil {
		t.Fatal(err)
	}
	v := blockedBy(t, outcome(t, ch), prevention.ReasonUserAbort)
	if v.Decision.PolicyID != k.ID || v.Decision.Source != prevention.SourceOperator {
		t.Fatalf("violation = %+v", v.Decision)
	}
	rec := heldRecord(t, st, "acme", run.ID(), 0)
	if rec.Approval.Answer != trace.AnswerCancelled || rec.Approval.By != "ops" || rec.Approval.HoldID != h.ID {
		t.Fatalf("approval = %+v", rec.Approval)
	}
}
