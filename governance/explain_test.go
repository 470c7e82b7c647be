package governance_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

const headroomDoc = `{"tenant_id":"acme","thresholds":{"max_tokens":5000,"max_cost_cents":150,"max_steps":3,"per_min":30,"max_s":600,
  "day_cents":1000,"watch_cents":20},
 "policies":[
  {"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}},
  {"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}},
  {"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"},"enforcement":"monitor"},
  {"id":"pace","kind":"rate_limit","params":{"threshold":"per_min","window_seconds":60}},
  {"id":"clock","kind":"timeout","params":{"threshold":"max_s"}},
  {"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}},
  {"id":"spend","kind":"tenant_budget","params":{"metric":"cost_cents","threshold":"day_cents","period":"day"}},
  {"id":"spend-watch","kind":"tenant_budget","params":{"metric":"cost_cents","threshold":"watch_cents","window_seconds":3600},"enforcement":"warn"}
 ]}`

func f64(v float64) *float64 { return &v }

// TestExplainHeadroom: at an instant where the run went on, Explain gives
// each threshold policy's observed value against its limit at the last
// step, the policy closest to stopping the run, what a warn or monitor
// policy recorded, and for limits across the tenant's runs the totals
// their recorded decisions state.
func TestExplainHeadroom(t *testing.T) {
	st := memstore.New()
	r, clock := newRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, headroomDoc)})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []scripted{
		at(10*time.Second, llm(1200, 12, "")),
		at(300*time.Second, tool("search")),
		at(2*time.Second, llm(2000, 108, "")), // 120 cents in all: over spend-watch's 20
		at(10*time.Second, llm(100, 1, "")),   // the 4th step: over the monitor's 3
	} {
		clock.Advance(s.after)
		if _, err := run.Step(ctx, s.in); err != nil {
			t.Fatal(err)
		}
	}

	ex, err := governance.Explain(ctx, st, "acme", run.ID(), t0.Add(315*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if ex.LastStep == nil || ex.LastStep.Index != 2 {
		t.Fatalf("last step %+v", ex.LastStep)
	}
	watch := ex.LastStep.Findings[0]
	want := []governance.Headroom{
		{PolicyID: "tokens", Kind: "budget", Threshold: "max_tokens", Limit: 5000, Observed: f64(3200), Unit: "tokens", Fraction: f64(0.64),
			Enforcement: snapshot.EnforceBlock, Text: "tokens 3200 of 5000 (64%)"},
		{PolicyID: "cost", Kind: "budget", Threshold: "max_cost_cents", Limit: 150, Observed: f64(120), Unit: "cost_cents", Fraction: f64(0.8),
			Enforcement: snapshot.EnforceBlock, Text: "cost_cents 120 of 150 (80%)"},
		{PolicyID: "steps", Kind: "budget", Threshold: "max_steps", Limit: 3, Observed: f64(3), Unit: "steps", Fraction: f64(1),
			Enforcement: snapshot.EnforceMonitor, Text: "steps 3 of 3 (100%)"},
		{PolicyID: "pace", Kind: "rate_limit", Threshold: "per_min", Limit: 30, Observed: f64(2), Unit: "steps", WindowSeconds: 60, Fraction: f64(2.0 / 30),
			Enforcement: snapshot.EnforceBlock, Text: "steps in the last 60 s: 2 of 30 (7%)"},
		{PolicyID: "clock", Kind: "timeout", Threshold: "max_s", Limit: 600, Observed: f64(312), Unit: "seconds", Fraction: f64(0.52),
			Enforcement: snapshot.EnforceBlock, Text: "elapsed 312 of 600 (52%)"},
		{PolicyID: "spend", Kind: "tenant_budget", Threshold: "day_cents", Limit: 1000, Unit: "cost_cents", Period: "day",
			Enforcement: snapshot.EnforceBlock, TenantWide: true,
			Text: "tenant cost_cents per day (UTC): limit 1000; the tenant's total across its runs is not in this run's records"},
		{PolicyID: "spend-watch", Kind: "tenant_budget", Threshold: "watch_cents", Limit: 20, Observed: f64(120), Unit: "cost_cents", WindowSeconds: 3600,
			Fraction: f64(6), Enforcement: snapshot.EnforceWarn, TenantWide: true, Finding: &watch,
			Text: "tenant cost_cents in 3600 s: 120 of 20 (600%, as recorded)"},
	}
	if diff := cmp.Diff(want, ex.Headroom); diff != "" {
		t.Errorf("headroom (-want +got):\n%s", diff)
	}
	if ex.Closest != "cost" || !strings.Contains(ex.Why, "closest to stopping it was cost: cost_cents 120 of 150 (80%)") {
		t.Errorf("closest %q, why %q", ex.Closest, ex.Why)
	}
	if watch.PolicyID != "spend-watch" || watch.Action != prevention.Block || watch.Enforcement != snapshot.EnforceWarn {
		t.Errorf("the warn policy's finding: %+v", watch)
	}

	// The monitor's would-block at step 3 is its finding there.
	ex, _ = governance.Explain(ctx, st, "acme", run.ID(), t0.Add(time.Hour))
	for _, h := range ex.Headroom {
		if h.PolicyID == "steps" && (h.Finding == nil || h.Finding.Action != prevention.Block || *h.Observed != 4 || *h.Fraction <= 1) {
			t.Errorf("monitor policy after step 3: %+v", h)
		}
	}
	if ex.Closest != "cost" {
		t.Errorf("closest %q: a monitor-mode policy never stops the run", ex.Closest)
	}

	// Before any step: nothing to measure.
	ex, _ = governance.Explain(ctx, st, "acme", run.ID(), t0)
	if len(ex.Headroom) != 0 || ex.Closest != "" || ex.Why != "The run had started under snapshot "+ex.SnapshotID+" (8 policies) and no step had been reported yet." {
		t.Errorf("at the start: %+v, %q", ex.Headroom, ex.Why)
	}
}

// TestExplainHeadroomOfAStop: at the stop, the blocking policy is past its
// limit and the closest; a policy with a limit of 0 is past it at once.
func TestExplainHeadroomOfAStop(t *testing.T) {
	st := memstore.New()
	r, clock := newRunner(t, st)
	id := runScript(t, r, clock, governance.StartOptions{Snapshot: parse(t, `{"tenant_id":"acme","thresholds":{"max_tokens":100,"none":0},"policies":[
		{"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}},
		{"id":"zero","kind":"budget","params":{"metric":"cost_cents","threshold":"none"},"enforcement":"monitor"}]}`)},
		[]scripted{llm(60, 0, ""), llm(60, 1, "")})
	ex, err := governance.Explain(ctx, st, "acme", id, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if ex.State != governance.StateStopped || ex.Closest != "tokens" || len(ex.Headroom) != 2 {
		t.Fatalf("%+v", ex)
	}
	tok, zero := ex.Headroom[0], ex.Headroom[1]
	if *tok.Observed != 120 || *tok.Fraction != 1.2 || tok.Finding == nil || tok.Text != "tokens 120 of 100 (120%)" {
		t.Errorf("tokens %+v", tok)
	}
	if *zero.Observed != 1 || zero.Fraction != nil || zero.Text != "cost_cents 1 of 0 (past a limit of 0)" {
		t.Errorf("zero %+v", zero)
	}
	ex, _ = governance.Explain(ctx, st, "acme", id, t0.Add(time.Second))
	if zero := ex.Headroom[1]; *zero.Observed != 0 || *zero.Fraction != 1 {
		t.Errorf("zero of zero: %+v", zero)
	}
}

// TestExplainWording: a queued run is described as queued, counts are
// spelled for one and many, and Go hooks the records show are counted
// with the policies.
func TestExplainWording(t *testing.T) {
	st := memstore.New()
	audit := prevention.NamedHook{ID: "audit", Enforcement: snapshot.EnforceWarn, Hook: prevention.HookFunc(func(_ context.Context, s *prevention.Step) (prevention.Decision, error) {
		if s.Type == prevention.StepToolCall {
			return prevention.Decision{Action: prevention.Warn, Message: "tool call"}, nil
		}
		return prevention.Allowed(), nil
	})}
	r, clock := newRunner(t, st, governance.WithHooks(audit))
	one := parse(t, allowAllDoc)
	queued, err := r.Enqueue(ctx, governance.StartOptions{Snapshot: one})
	if err != nil {
		t.Fatal(err)
	}
	ex, _ := governance.Explain(ctx, st, "acme", queued.ID(), t0)
	if want := "The run was queued under snapshot " + one.ID() + " (1 policy) and no step had been reported yet."; ex.State != governance.StateQueued || ex.Why != want {
		t.Errorf("queued: %s %q", ex.State, ex.Why)
	}

	id := runScript(t, r, clock, governance.StartOptions{Snapshot: one}, []scripted{llm(1, 0, ""), tool("search")})
	ex, _ = governance.Explain(ctx, st, "acme", id, t0.Add(time.Hour))
	if !strings.HasPrefix(ex.Why, "Step 1 (tool_call search) was allowed with 1 warning(s); first: warn by audit") {
		t.Errorf("why %q", ex.Why)
	}
	// The hooks are those the records up to the instant show deciding:
	// the audit hook first decided at step 1.
	start, _ := st.Run(ctx, "acme", id)
	ex, _ = governance.Explain(ctx, st, "acme", id, start.CreatedAt.Add(1500*time.Millisecond))
	if !strings.HasPrefix(ex.Why, "Step 0 (llm_response) was allowed: its one policy did not object.") || len(ex.Hooks) != 0 {
		t.Errorf("why %q, hooks %v", ex.Why, ex.Hooks)
	}
	id = runScript(t, r, clock, governance.StartOptions{Snapshot: one}, []scripted{tool("search"), llm(1, 0, "")})
	start, _ = st.Run(ctx, "acme", id)
	ex, _ = governance.Explain(ctx, st, "acme", id, start.CreatedAt.Add(2500*time.Millisecond))
	if !strings.HasPrefix(ex.Why, "Step 1 (llm_response) was allowed: neither its policy nor its Go hook objected.") || len(ex.Hooks) != 1 || ex.Hooks[0] != "audit" {
		t.Errorf("why %q, hooks %v", ex.Why, ex.Hooks)
	}

	many := parse(t, everyKindDoc)
	id = runScript(t, r, clock, governance.StartOptions{Snapshot: many}, []scripted{tool("search"), llm(1, 0, "")})
	start, _ = st.Run(ctx, "acme", id)
	ex, _ = governance.Explain(ctx, st, "acme", id, start.CreatedAt.Add(2500*time.Millisecond))
	if !strings.HasPrefix(ex.Why, "Step 1 (llm_response) was allowed: none of its 15 policies and 1 Go hook objected.") {
		t.Errorf("why %q", ex.Why)
	}
	plain, clock2 := newRunner(t, st)
	id = runScript(t, plain, clock2, governance.StartOptions{Snapshot: many}, []scripted{llm(1, 0, "")})
	ex, _ = governance.Explain(ctx, st, "acme", id, t0.Add(1500*time.Millisecond))
	if !strings.HasPrefix(ex.Why, "Step 0 (llm_response) was allowed: none of its 15 policies objected.") || len(ex.Hooks) != 0 {
		t.Errorf("why %q", ex.Why)
	}
}
