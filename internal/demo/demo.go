// Package demo records a small, fixed set of governed runs into a store:
// the runs the console's tests and its screenshot show. Only tests and
// the screenshot program import it.
package demo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// T0 is when the demo's runs start.
var T0 = time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)

// approveNext approves the tenant's next pending hold, as a person in the
// console would, at the demo clock's time (governance.Approve answers at
// the system's, long after the demo's deadline).
func approveNext(ctx context.Context, st governance.Store, tenant string, clock *governance.FakeClock) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if hs, err := governance.PendingHolds(ctx, st, tenant); err == nil && len(hs) > 0 {
			_, _ = st.(governance.HoldStore).AnswerHold(ctx, tenant, hs[0].ID, governance.HoldAnswer{
				Status: governance.HoldApproved, By: "alice@acme", Reason: "the filing's URL is the SEC's", At: clock.Now().Add(1500 * time.Millisecond)})
			return
		}
	}
}

// policy is the demo's policy set: budgets on cost and tokens, a tool
// allowlist, a warn-mode cost budget that warns before the blocking one
// stops the run, and an approval before fetching a document.
const policy = `{
  "tenant_id": "TENANT",
  "thresholds": {"max_cost_cents": COST, "max_tokens": 60000, "warn_cost_cents": 60},
  "policies": [
    {"id": "cost-budget", "kind": "budget", "params": {"metric": "cost_cents", "threshold": "max_cost_cents"}},
    {"id": "token-budget", "kind": "budget", "params": {"metric": "tokens", "threshold": "max_tokens"}},
    {"id": "cost-early-warning", "kind": "budget", "params": {"metric": "cost_cents", "threshold": "warn_cost_cents"}, "enforcement": "warn"},
    {"id": "tools", "kind": "tool_allowlist", "params": {"allow": ["search", "fetch", "summarize"]}},
    {"id": "approve-fetch", "kind": "requires_approval", "params": {"tools": ["fetch"], "hold_seconds": 600}}
  ]
}`

// Policy returns the demo's policy set of tenant with a cost budget of
// cost cents.
func Policy(tenant string, cost int, at time.Time) (*snapshot.PolicySnapshot, error) {
	src := strings.NewReplacer("TENANT", tenant, "COST", fmt.Sprint(cost)).Replace(policy)
	return snapshot.Parse("demo.json", []byte(src), at, prevention.Builtin())
}

// Runs are the ids Record gives its runs and incidents.
type Runs struct {
	Blocked, Completed, Other string // Other: tenant globex's blocked run
	Incident, OtherIncident   string
}

// Record publishes two policy versions for tenant acme (a cost budget of
// 150 cents, then 100) and one for globex, and records acme's run
// stopped by the cost budget after a warning, a completed acme run, and a
// blocked globex run.
func Record(ctx context.Context, st governance.Store) (Runs, error) {
	clock := governance.NewFakeClock(T0.Add(-48 * time.Hour))
	var mu sync.Mutex
	n := map[string]int{}
	ids := func(kind string) string {
		mu.Lock()
		defer mu.Unlock()
		n[kind]++
		return fmt.Sprintf("%s-%04d", strings.ToUpper(kind[:3]), n[kind])
	}
	r, err := governance.NewRunner(st, governance.WithClock(clock), governance.WithIDGenerator(ids),
		governance.WithHolds(10*time.Minute, 10*time.Minute, 5*time.Millisecond))
	if err != nil {
		return Runs{}, err
	}
	publish := func(tenant string, cost int, by, note string) error {
		snap, err := Policy(tenant, cost, clock.Now())
		if err != nil {
			return err
		}
		_, err = r.Publish(ctx, snap, by, note)
		return err
	}
	if err := publish("acme", 150, "alice", "initial budgets"); err != nil {
		return Runs{}, err
	}
	clock.Set(T0.Add(-24 * time.Hour))
	if err := publish("acme", 100, "bob", "tighten the cost budget to 1 dollar"); err != nil {
		return Runs{}, err
	}
	if err := publish("globex", 100, "carol", "globex budgets"); err != nil {
		return Runs{}, err
	}
	var out Runs
	clock.Set(T0)
	// The blocked run: cost and tokens climb; a warning at 60 cents; the
	// cost budget stops it past 100 cents.
	steps := []governance.StepInput{
		{Type: prevention.StepLLMResponse, Model: "gpt-4.1", Tokens: 4200, CostCents: 8, Output: "plan: search the filings"},
		{Type: prevention.StepToolCall, Tool: "search", Input: "10-K 2025 revenue"},
		{Type: prevention.StepToolResult, Tool: "search", Output: "12 results"},
		{Type: prevention.StepLLMResponse, Model: "gpt-4.1", Tokens: 9800, CostCents: 21, Output: "fetch the top three"},
		{Type: prevention.StepToolCall, Tool: "fetch", Input: "https://example.com/10k.pdf"},
		{Type: prevention.StepLLMResponse, Model: "gpt-4.1", Tokens: 15800, CostCents: 34, Output: "summarize sections 1-7"},
		{Type: prevention.StepToolCall, Tool: "summarize", Input: "sections 1-7"},
		{Type: prevention.StepLLMResponse, Model: "gpt-4.1", Tokens: 12100, CostCents: 29, Output: "retry the summary with more context"},
		{Type: prevention.StepLLMResponse, Model: "gpt-4.1", Tokens: 9900, CostCents: 24, Output: "retry again"},
	}
	run, err := r.Start(ctx, governance.StartOptions{TenantID: "acme", Labels: map[string]string{"agent": "researcher", "env": "prod"}})
	if err != nil {
		return Runs{}, err
	}
	out.Blocked = run.ID()
	gaps := []time.Duration{0, 2, 3, 4, 2, 6, 3, 5, 4}
	for i, s := range steps {
		clock.Advance(gaps[i]*time.Second + 400*time.Millisecond)
		if s.Tool == "fetch" && s.Type == prevention.StepToolCall {
			go approveNext(ctx, st, "acme", clock) // a person answers the hold
		}
		_, err := run.Step(ctx, s)
		var v *governance.Violation
		if errors.As(err, &v) {
			out.Incident = v.IncidentID
			break
		}
		if err != nil {
			return Runs{}, err
		}
	}
	if out.Incident == "" {
		return Runs{}, errors.New("demo: the blocked run was not stopped")
	}
	clock.Set(T0.Add(10 * time.Minute))
	done, err := r.Start(ctx, governance.StartOptions{TenantID: "acme", Labels: map[string]string{"agent": "triage", "env": "prod"}})
	if err != nil {
		return Runs{}, err
	}
	out.Completed = done.ID()
	for _, s := range steps[:3] {
		clock.Advance(1500 * time.Millisecond)
		if _, err := done.Step(ctx, s); err != nil {
			return Runs{}, err
		}
	}
	if _, err := done.Finish(ctx); err != nil {
		return Runs{}, err
	}
	clock.Set(T0.Add(20 * time.Minute))
	other, err := r.Start(ctx, governance.StartOptions{TenantID: "globex"})
	if err != nil {
		return Runs{}, err
	}
	out.Other = other.ID()
	clock.Advance(time.Second)
	_, err = other.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell", Input: "rm -rf /"})
	var v *governance.Violation
	if !errors.As(err, &v) {
		return Runs{}, fmt.Errorf("demo: globex's run was not stopped: %v", err)
	}
	out.OtherIncident = v.IncidentID
	return out, nil
}
