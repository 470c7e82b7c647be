package main_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/sqlite"
)

// TestApprovalsApproveDeny holds steps of runs governed in this process
// on a SQLite file, and answers them with the command, another process.
func TestApprovalsApproveDeny(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCLI(t)
	st, err := sqlite.Open(ctx, c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := governance.NewRunner(st, governance.WithHolds(0, 0, 20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Parse("p.json", []byte(`{"tenant_id": "acme", "thresholds": {},
		"policies": [{"id": "approve-wire", "kind": "requires_approval", "params": {"tools": ["wire"], "hold_seconds": 60}}]}`), time.Now(), r.Kinds())
	if err != nil {
		t.Fatal(err)
	}
	held := func() (*governance.Run, chan error) {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "wire", Input: "{}"})
			done <- err
		}()
		return run, done
	}
	run1, done1 := held()
	run2, done2 := held()
	var holds []governance.Hold
	for deadline := time.Now().Add(10 * time.Second); len(holds) < 2 && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		holds = nil
		c.okJSON(&holds, "approvals", "--tenant", "acme")
	}
	if len(holds) != 2 {
		t.Fatalf("approvals lists %d holds, want 2", len(holds))
	}
	byRun := map[string]string{holds[0].RunID: holds[0].ID, holds[1].RunID: holds[1].ID}
	if out := c.ok("approvals"); !strings.Contains(out, byRun[run1.ID()]) || !strings.Contains(out, "approve-wire") {
		t.Errorf("approvals:\n%s", out)
	}
	c.fails(2, []string{"--by and --reason are required"}, "approve", byRun[run1.ID()])
	c.fails(1, []string{"not found"}, "approve", "HOLD-nope", "--by", "alice", "--reason", "x")
	if out := c.ok("approve", byRun[run1.ID()], "--by", "alice", "--reason", "ticket 4411"); !strings.Contains(out, "approved by alice") {
		t.Errorf("approve: %s", out)
	}
	if err := <-done1; err != nil {
		t.Fatalf("approved step: %v", err)
	}
	c.ok("deny", byRun[run2.ID()], "--by", "bob", "--reason", "wrong account")
	var v *governance.Violation
	if err := <-done2; !errors.As(err, &v) || v.Reason() != prevention.ReasonPolicyBlock {
		t.Fatalf("denied step: %v", err)
	}
	c.fails(1, []string{"already answered"}, "deny", byRun[run1.ID()], "--by", "bob", "--reason", "late")
	// The held step's evidence exports and verifies offline, with the
	// answer in its record; PDFs of it render.
	inc := v.IncidentID
	c.ok("keygen", "-o", "k.key")
	c.ok("export", "evidence", inc, "--sign-key", "k.key", "-o", "ev.json")
	if out := c.ok("verify-bundle", "ev.json", "--pubkey", "k.key.pub"); !strings.Contains(strings.ToLower(out), "ok") && !strings.Contains(out, "valid") {
		t.Errorf("verify-bundle:\n%s", out)
	}
	c.ok("export", "evidence", inc, "-o", "ev.pdf")
	c.ok("verify", run2.ID())
	if out := c.ok("replay", run2.ID()); !strings.Contains(out, "approval") {
		t.Errorf("replay does not say the answer is an input:\n%s", out)
	}
	if out := c.ok("approvals"); !strings.Contains(out, "No step is waiting") {
		t.Errorf("approvals after the answers:\n%s", out)
	}
}

// TestKillRelease pulls and releases kill switches with the command and
// checks that a runner watching the file stops the run.
func TestKillRelease(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c := newCLI(t)
	st, err := sqlite.Open(ctx, c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := governance.NewRunner(st, governance.WithKillSwitch(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snap, err := snapshot.Parse("p.json", []byte(`{"tenant_id": "acme", "thresholds": {"max_steps": 1000},
		"policies": [{"id": "steps", "kind": "budget", "params": {"metric": "steps", "threshold": "max_steps"}}]}`), time.Now(), r.Kinds())
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{governance.AgentLabel: "mailer"}})
	if err != nil {
		t.Fatal(err)
	}
	c.fails(2, []string{"give --tenant"}, "kill", "agent", "mailer", "--by", "alice", "--reason", "spam")
	c.fails(2, []string{"want run, agent or tenant"}, "kill", "fleet", "x", "--by", "alice", "--reason", "spam")
	c.ok("kill", "agent", "mailer", "--tenant", "acme", "--by", "alice", "--reason", "sends spam")
	var ks []governance.KillSwitch
	c.okJSON(&ks, "kills")
	if len(ks) != 1 || ks[0].Scope != governance.KillAgent || ks[0].By != "alice" {
		t.Fatalf("kills = %+v", ks)
	}
	var v *governance.Violation
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
		if errors.As(err, &v) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("step under the kill switch: %v", err)
		}
	}
	if v.Reason() != prevention.ReasonUserAbort || !strings.Contains(v.Decision.Message, "alice") {
		t.Fatalf("violation = %+v", v.Decision)
	}
	if _, err := r.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{governance.AgentLabel: "mailer"}}); !errors.Is(err, governance.ErrKilled) {
		t.Fatalf("start under the switch: %v", err)
	}
	c.ok("release", "agent", "mailer", "--tenant", "acme", "--by", "alice")
	c.fails(1, []string{"not found"}, "release", "agent", "mailer", "--tenant", "acme", "--by", "alice")
	if _, err := r.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{governance.AgentLabel: "mailer"}}); err != nil {
		t.Fatalf("start after the release: %v", err)
	}
	c.ok("kill", "tenant", "acme", "--by", "oncall", "--reason", "incident 42")
	if out := c.ok("kills", "--tenant", "acme"); !strings.Contains(out, "incident 42") {
		t.Errorf("kills:\n%s", out)
	}
}
