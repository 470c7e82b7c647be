package governance_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

const exampleStart = "2026-01-20T09:00:00Z"

func exampleClock() *governance.FakeClock {
	t, _ := time.Parse(time.RFC3339, exampleStart)
	return governance.NewFakeClock(t)
}

// A runner with a fake clock and readable ids, the built-in policy kinds,
// and a store; Start and Step, reported by hand instead of Runner.Run.
func ExampleNewRunner() {
	ctx := context.Background()
	n := 0
	runner, err := governance.NewRunner(memstore.New(),
		governance.WithClock(exampleClock()),
		governance.WithIDGenerator(func(kind string) string { n++; return fmt.Sprintf("%s-%d", strings.ToUpper(kind), n) }),
		governance.WithStepTimeout(2*time.Second),
	)
	if err != nil {
		fmt.Println(err) // an invalid option is refused here, not on first use
		return
	}
	snap, _ := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme","thresholds":{"max_steps":10},
		"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}]}`), time.Time{}, runner.Kinds())
	run, _ := runner.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{"agent": "researcher"}})
	res, _ := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Model: "gpt-4o", Tokens: 120, CostCents: 0.4})
	fmt.Println(run.ID(), res.Index, res.Status, res.Recorded)
	rec, _ := run.Finish(ctx)
	fmt.Println(rec.Status, rec.TerminationReason, rec.StepCount, rec.TotalTokens)
	// Output:
	// RUN-1 0 ok true
	// succeeded completed 1 120
}

// A Go hook beside the snapshot's policies: it blocks a tool call whose
// input names a production host. Its decision is recorded under its id,
// with source "hook".
func ExampleWithHooks() {
	ctx := context.Background()
	noProd := prevention.HookFunc(func(_ context.Context, s *prevention.Step) (prevention.Decision, error) {
		if s.Type == prevention.StepToolCall && strings.Contains(s.Input, "prod.") {
			return prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonPolicyBlock, Message: "production host"}, nil
		}
		return prevention.Allowed(), nil
	})
	runner, _ := governance.NewRunner(memstore.New(), governance.WithClock(exampleClock()),
		governance.WithHooks(prevention.NamedHook{ID: "no-prod", Hook: noProd}))
	snap, _ := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme","thresholds":{},
		"policies":[{"id":"tools","kind":"tool_allowlist","params":{"allow":["ssh","search"]}}]}`), time.Time{}, runner.Kinds())
	_, err := runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "ssh", Input: `{"host":"dev.example.com"}`}); err != nil {
			return err
		}
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "ssh", Input: `{"host":"prod.example.com"}`})
		return err
	})
	var v *governance.Violation
	if errors.As(err, &v) {
		fmt.Println(v.StepIndex, v.PolicyID(), v.Decision.Source, v.Decision.Message)
	}
	// Output:
	// 1 no-prod hook production host
}

// Reserve a model call's worst case before making it, so that the call
// is refused without spend when the budget cannot take it, and settle the
// reservation with what the call really cost.
func ExampleRun_Reserve() {
	ctx := context.Background()
	runner, _ := governance.NewRunner(memstore.New(), governance.WithClock(exampleClock()))
	snap, _ := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme","thresholds":{"max_cost_cents":10},
		"policies":[{"id":"budget","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}}]}`), time.Time{}, runner.Kinds())
	run, _ := runner.Start(ctx, governance.StartOptions{Snapshot: snap})

	worst := governance.StepInput{Type: prevention.StepLLMResponse, Model: "gpt-4o", Tokens: 4096, CostCents: 9}
	res, err := run.Reserve(ctx, worst)
	if err != nil {
		fmt.Println("not sent:", err)
		return
	}
	// ... make the call; it used fewer tokens than its worst case ...
	actual := governance.StepInput{Type: prevention.StepLLMResponse, Model: "gpt-4o", Tokens: 900, CostCents: 1.75}
	step, _ := res.Step(ctx, actual)
	fmt.Println("recorded step", step.Index, step.Status)

	// A second call whose worst case would take the run over its budget is
	// refused before it is made: the run stops there.
	_, err = run.Reserve(ctx, worst)
	var v *governance.Violation
	if errors.As(err, &v) {
		fmt.Println("refused:", v.PolicyID(), v.Reason(), v.Decision.Observed, "of", v.Decision.Limit)
	}
	// Output:
	// recorded step 0 ok
	// refused: budget budget_exceeded 10.75 of 10
}

// A Go tool governed wherever it is called from: the run travels in the
// context. The call is a tool_call step before the tool runs, its result a
// tool_result step before it is returned.
func ExampleWrapTool() {
	ctx := context.Background()
	runner, _ := governance.NewRunner(memstore.New(), governance.WithClock(exampleClock()))
	snap, _ := snapshot.Parse("policies.json", []byte(`{"tenant_id":"acme","thresholds":{},
		"policies":[{"id":"tools","kind":"tool_denylist","params":{"deny":["delete_repo"]}}]}`), time.Time{}, runner.Kinds())

	weather, _ := governance.WrapTool("weather", func(_ context.Context, city string) (string, error) {
		return "sunny in " + city, nil
	})
	deleteRepo, _ := governance.WrapTool("delete_repo", func(_ context.Context, repo string) (bool, error) {
		fmt.Println("deleting", repo) // never reached
		return true, nil
	})

	_, err := runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		ctx = governance.ContextWithRun(ctx, run)
		w, err := weather(ctx, "Lyon")
		if err != nil {
			return err
		}
		fmt.Println(w)
		_, err = deleteRepo(ctx, "acme/prod")
		return err
	})
	var v *governance.Violation
	fmt.Println(errors.As(err, &v), v.StepIndex, v.PolicyID())
	// Output:
	// sunny in Lyon
	// true 2 tools
}
