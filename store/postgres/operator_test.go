package postgres_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/postgres"
)

// The operator's process: TestOperatorProcess, run by the tests below as
// a separate OS process, opens the database itself and approves a hold
// or pulls a kill switch, as `stopline approve` or `stopline kill` on
// another machine would.
const (
	operatorEnv    = "STOPLINE_OPERATOR"     // "approve HOLD" or "kill RUN"
	operatorURLEnv = "STOPLINE_OPERATOR_URL" // the database
)

func TestOperatorProcess(t *testing.T) {
	what := os.Getenv(operatorEnv)
	if what == "" {
		t.Skip("run by TestOperatorAcrossProcesses")
	}
	st, err := postgres.Open(ctx, os.Getenv(operatorURLEnv))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	switch verb, id := what[:4], what[5:]; verb {
	case "appr":
		_, err = governance.Approve(ctx, st, "acme", id[3:], "operator-process", "approved from another process")
	case "kill":
		_, err = governance.Kill(ctx, st, "acme", governance.KillRun, id, "operator-process", "stopped from another process")
	}
	if err != nil {
		t.Fatal(err)
	}
}

// operator runs TestOperatorProcess in a child process.
func operator(t *testing.T, url, what string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestOperatorProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), operatorEnv+"="+what, operatorURLEnv+"="+url)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("operator process %q: %v\n%s", what, err, out)
	}
}

func operatorSnapshot(t testing.TB) *snapshot.PolicySnapshot {
	t.Helper()
	s, err := snapshot.Parse("p.json", []byte(`{"tenant_id": "acme", "thresholds": {"max_steps": 1000000},
	  "policies": [
	    {"id": "steps", "kind": "budget", "params": {"metric": "steps", "threshold": "max_steps"}},
	    {"id": "approve-wire", "kind": "requires_approval", "params": {"tools": ["wire"], "hold_seconds": 60}}]}`), time.Now(), prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestOperatorAcrossProcesses: a step held in this process is released by
// an approval given in another process, and a run here is stopped by a
// kill switch pulled there, with the runner's poll far longer than the
// test's patience: only the store's NOTIFY can deliver them in time.
func TestOperatorAcrossProcesses(t *testing.T) {
	if os.Getenv(operatorEnv) != "" {
		t.Skip("in the operator process")
	}
	url := newDatabase(t)
	st := openStore(t, url)
	r, err := governance.NewRunner(st, governance.WithHolds(0, 0, time.Hour), governance.WithKillSwitch(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: operatorSnapshot(t), Labels: map[string]string{governance.AgentLabel: "payer"}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "wire", Input: "{}"})
		done <- err
	}()
	var h governance.Hold
	for deadline := time.Now().Add(10 * time.Second); h.ID == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		hs, err := governance.PendingHolds(ctx, st, "acme")
		if err != nil {
			t.Fatal(err)
		}
		if len(hs) > 0 {
			h = hs[0]
		}
	}
	if h.ID == "" {
		t.Fatal("no hold")
	}
	operator(t, url, "appr id:"+h.ID)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("approved step: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the approval given in another process did not release the step")
	}

	operator(t, url, "kill "+run.ID())
	var v *governance.Violation
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
		if errors.As(err, &v) {
			break
		}
		if err != nil || time.Now().After(deadline) {
			t.Fatalf("the kill switch pulled in another process did not stop the run: %v", err)
		}
	}
	if v.Reason() != prevention.ReasonUserAbort || v.Decision.Source != prevention.SourceOperator {
		t.Fatalf("violation: %+v", v.Decision)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Fatal(err)
	}
}

// noChanges hides a store's change signals: the runner polls only.
type noChanges struct {
	governance.Store
	governance.KillStore
	governance.HoldStore
}

// BenchmarkKillReachesReplicaPostgres measures how long a kill switch
// pulled through one Store (replica B, its own pool) takes to stop a run
// stepping on a Runner over another (replica A): from Kill's return to
// the return of the first step it blocks. Steps are message steps taken
// back to back, so the figure includes up to one step's time. It
// reports ms/kill (mean), p50-ms and max-ms; goal: max ≤ 1000 ms.
// listen is the default (LISTEN/NOTIFY, poll 250 ms as the fallback);
// poll-250ms hides the notifications, the poll alone.
func BenchmarkKillReachesReplicaPostgres(b *testing.B) {
	url := newDatabase(b)
	replicaB := openStore(b, url)
	for _, mode := range []string{"listen", "poll-250ms"} {
		b.Run(mode, func(b *testing.B) {
			replicaA := openStore(b, url)
			var st governance.Store = replicaA
			if mode != "listen" {
				st = noChanges{replicaA, replicaA, replicaA}
			}
			r, err := governance.NewRunner(st, governance.WithKillSwitch(governance.DefaultKillPoll))
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			snap := operatorSnapshot(b)
			var lat []time.Duration
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := governance.Kill(ctx, replicaB, "acme", governance.KillRun, run.ID(), "bench", "bench"); err != nil {
					b.Fatal(err)
				}
				began := time.Now()
				for {
					_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
					if errors.Is(err, governance.ErrPolicyViolation) {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
				}
				lat = append(lat, time.Since(began))
			}
			b.StopTimer()
			slices.Sort(lat)
			var sum time.Duration
			for _, d := range lat {
				sum += d
			}
			b.ReportMetric(float64(sum.Microseconds())/float64(len(lat))/1000, "ms/kill")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
			if lat[len(lat)-1] > time.Second {
				b.Errorf("a kill took %s to reach the other replica; goal ≤ 1s", lat[len(lat)-1])
			}
		})
	}
}

// BenchmarkApprovalReachesReplicaPostgres: how long an approval given
// through one Store takes to release a step held on a Runner over
// another (its own pool): from Approve's return to Step's.
func BenchmarkApprovalReachesReplicaPostgres(b *testing.B) {
	url := newDatabase(b)
	replicaA, replicaB := openStore(b, url), openStore(b, url)
	r, err := governance.NewRunner(replicaA)
	if err != nil {
		b.Fatal(err)
	}
	snap := operatorSnapshot(b)
	var total time.Duration
	for range b.N {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan time.Time, 1)
		go func() {
			if _, err := run.Step(context.Background(), governance.StepInput{Type: prevention.StepToolCall, Tool: "wire"}); err != nil {
				b.Error(err)
			}
			done <- time.Now()
		}()
		var hs []governance.Hold
		for len(hs) == 0 {
			if hs, err = governance.PendingHolds(ctx, replicaB, "acme"); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := governance.Approve(ctx, replicaB, "acme", hs[0].ID, "bench", "bench"); err != nil {
			b.Fatal(err)
		}
		approved := time.Now()
		total += (<-done).Sub(approved)
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms/approval")
}
