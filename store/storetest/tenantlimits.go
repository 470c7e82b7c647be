package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// Limits that span runs, through a real governance.Runner: the
// tenant_budget and tenant_rate_limit kinds, reserve-then-settle
// (Run.Reserve), and concurrent runs at the edge of a budget.

// TenantSnapshot returns a snapshot of tenant with the given thresholds
// (a JSON object) and policies (JSON array elements).
func TenantSnapshot(t testing.TB, tenant, thresholds, policies string) *snapshot.PolicySnapshot {
	t.Helper()
	doc := fmt.Sprintf(`{"tenant_id": %q, "thresholds": %s, "policies": [%s]}`, tenant, thresholds, policies)
	s, err := snapshot.Parse("tenant.json", []byte(doc), T0, prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const dailyCostPolicy = `{"id": "daily-cost", "kind": "tenant_budget", "params": {"metric": "cost_cents", "threshold": "daily_cost", "period": "day"}}`

func costStep(cents float64) governance.StepInput {
	return governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Tokens: 10, CostCents: cents}
}

func wantViolation(t *testing.T, err error, reason prevention.RunTerminationReason, threshold string, observed float64) *governance.Violation {
	t.Helper()
	var v *governance.Violation
	if !errors.As(err, &v) {
		t.Fatalf("got %v, want a *Violation", err)
	}
	d := v.Decision
	if d.Reason != reason || d.Threshold != threshold || d.Observed != observed {
		t.Fatalf("violation %s: want reason %s, threshold %s, observed %v", d, reason, threshold, observed)
	}
	return v
}

func usage(t *testing.T, l prevention.Ledger, c prevention.Counter, at time.Time) int64 {
	t.Helper()
	u, err := l.Usage(ctx, c, at)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// testTenantBudget: a daily cost budget shared by a tenant's runs, exact
// at the limit, per tenant, per UTC day.
func testTenantBudget(t *testing.T, open Opener) {
	st := open(t)
	l := ledgerOf(t, st)
	r, clock := newRunner(t, st)
	snap := TenantSnapshot(t, "acme", `{"daily_cost": 100}`, dailyCostPolicy)
	start := func(s *snapshot.PolicySnapshot) *governance.Run {
		t.Helper()
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: s})
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	run1, run2 := start(snap), start(snap)
	for _, run := range []*governance.Run{run1, run2} {
		if _, err := run.Step(ctx, costStep(40)); err != nil {
			t.Fatal(err)
		}
	}
	// 120 > 100: run1 stops, and nothing of its step is counted.
	_, err := run1.Step(ctx, costStep(40))
	v := wantViolation(t, err, prevention.ReasonBudgetExceeded, "daily_cost", 120)
	if v.Decision.Limit != 100 || v.PolicyID() != "daily-cost" {
		t.Errorf("violation %+v", v.Decision)
	}
	if got := usage(t, l, dayCost, clock.Now()); got != 80*prevention.CostUnitsPerCent {
		t.Errorf("usage after the block: %d, want 80 cents", got)
	}
	// run2 may spend exactly the rest, and not a millionth of a cent more.
	if _, err := run2.Step(ctx, costStep(20)); err != nil {
		t.Fatalf("step to exactly the limit: %v", err)
	}
	_, err = run2.Step(ctx, costStep(0.000001))
	wantViolation(t, err, prevention.ReasonBudgetExceeded, "daily_cost", 100.000001)
	// Zero-cost steps of a new run pass: they spend nothing.
	run3 := start(snap)
	if _, err := run3.Step(ctx, costStep(0)); err != nil {
		t.Errorf("zero-cost step at a spent budget: %v", err)
	}
	// Another tenant has its own counter.
	if _, err := start(TenantSnapshot(t, "globex", `{"daily_cost": 100}`, dailyCostPolicy)).Step(ctx, costStep(100)); err != nil {
		t.Errorf("another tenant: %v", err)
	}
	// The next UTC day starts from zero.
	clock.Set(time.Date(T0.Year(), T0.Month(), T0.Day()+1, 0, 0, 1, 0, time.UTC))
	if _, err := run3.Step(ctx, costStep(100)); err != nil {
		t.Errorf("next day: %v", err)
	}
	for _, run := range []*governance.Run{run1, run2, run3} {
		if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
			t.Errorf("VerifyRun %s: %v", run.ID(), err)
		}
	}
}

// testTenantRunsAndRate: runs started per day, and steps per minute
// across all of a tenant's runs.
func testTenantRunsAndRate(t *testing.T, open Opener) {
	st := open(t)
	ledgerOf(t, st)
	r, clock := newRunner(t, st)
	snap := TenantSnapshot(t, "acme", `{"daily_runs": 2, "tenant_steps": 3}`,
		`{"id": "runs", "kind": "tenant_budget", "params": {"metric": "runs", "threshold": "daily_runs", "period": "day"}},
		 {"id": "pace", "kind": "tenant_rate_limit", "params": {"threshold": "tenant_steps", "window_seconds": 60}}`)
	var runs []*governance.Run
	for range 3 {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run)
	}
	step := governance.StepInput{Type: prevention.StepToolCall, Tool: "search"}
	for _, run := range runs[:2] {
		if _, err := run.Step(ctx, step); err != nil {
			t.Fatal(err)
		}
	}
	// The third run's first step is the third run of the day.
	_, err := runs[2].Step(ctx, step)
	wantViolation(t, err, prevention.ReasonBudgetExceeded, "daily_runs", 3)
	// Its refused step took no step of the minute's three.
	clock.Advance(time.Second)
	if _, err := runs[0].Step(ctx, step); err != nil {
		t.Fatalf("third step of the minute: %v", err)
	}
	_, err = runs[1].Step(ctx, step)
	wantViolation(t, err, prevention.ReasonRateLimited, "tenant_steps", 4)
	// A minute after the first steps, run 0 may go on.
	clock.Advance(60 * time.Second)
	if _, err := runs[0].Step(ctx, step); err != nil {
		t.Errorf("a minute later: %v", err)
	}
}

// testReserveSettle: a worst case reserved before a step happens holds
// the budget against other runs, and is settled to the actual amount,
// released, or refused when the actual does not fit.
func testReserveSettle(t *testing.T, open Opener) {
	st := open(t)
	l := ledgerOf(t, st)
	r, clock := newRunner(t, st)
	snap := TenantSnapshot(t, "acme", `{"daily_cost": 100}`, dailyCostPolicy)
	start := func() *governance.Run {
		t.Helper()
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		return run
	}
	cents := func() float64 { return float64(usage(t, l, dayCost, clock.Now())) / prevention.CostUnitsPerCent }

	run1 := start()
	res, err := run1.Reserve(ctx, costStep(80))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Holds()) != 1 || cents() != 80 {
		t.Fatalf("after reserving 80: holds %+v, usage %v", res.Holds(), cents())
	}
	// Another run's worst case does not fit beside it: that run stops
	// before spending, and holds nothing.
	run2 := start()
	_, err = run2.Reserve(ctx, costStep(30))
	v := wantViolation(t, err, prevention.ReasonBudgetExceeded, "daily_cost", 110)
	if cents() != 80 {
		t.Errorf("a refused reservation counted: usage %v", cents())
	}
	recs, _ := st.Records(ctx, "acme", run2.ID())
	if inf, ok := trace.InflectionOf(recs); !ok || inf.Hash != v.RecordHash || recs[1].CostCents != 0 {
		t.Errorf("refused reservation recorded as %+v (cost %v)", inf, recs[1].CostCents)
	}
	// The step cost less than its worst case: the rest is freed.
	clock.Advance(time.Second)
	if _, err := res.Step(ctx, costStep(25)); err != nil {
		t.Fatal(err)
	}
	if cents() != 25 {
		t.Errorf("after settling to 25: usage %v", cents())
	}
	if _, err := res.Step(ctx, costStep(25)); !errors.Is(err, governance.ErrReservationDone) {
		t.Errorf("settling twice: got %v, want ErrReservationDone", err)
	}
	// A reservation released gives everything back.
	run3 := start()
	res3, err := run3.Reserve(ctx, costStep(75))
	if err != nil || cents() != 100 {
		t.Fatalf("reserving the rest: %v, usage %v", err, cents())
	}
	if err := res3.Release(ctx); err != nil || cents() != 25 {
		t.Errorf("after release: %v, usage %v", err, cents())
	}
	if err := res3.Release(ctx); err != nil {
		t.Errorf("second release: %v", err)
	}
	// A step that went over its own worst case and over the budget is
	// blocked, and holds nothing.
	res3, err = run3.Reserve(ctx, costStep(50))
	if err != nil {
		t.Fatal(err)
	}
	_, err = res3.Step(ctx, costStep(90))
	wantViolation(t, err, prevention.ReasonBudgetExceeded, "daily_cost", 115)
	if cents() != 25 {
		t.Errorf("after a blocked settle: usage %v", cents())
	}
	// Check only reads.
	run4 := start()
	if ev, err := run4.Check(ctx, costStep(75)); err != nil || ev.Decision.Action != prevention.Allow {
		t.Errorf("Check within the budget: %+v %v", ev, err)
	}
	if ev, err := run4.Check(ctx, costStep(76)); err != nil || ev.Decision.Action != prevention.Block || ev.Decision.Observed != 101 {
		t.Errorf("Check over the budget: %+v %v", ev, err)
	}
	if cents() != 25 || run4.Ended() {
		t.Errorf("Check counted or stopped: usage %v, ended %v", cents(), run4.Ended())
	}
	for _, run := range []*governance.Run{run1, run2, run3} {
		if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
			t.Errorf("VerifyRun %s: %v", run.ID(), err)
		}
	}
}

// testTenantLimitModes: a warn-mode limit that fires still lets the step
// count, once, on a counter a block-mode limit also reads.
func testTenantLimitModes(t *testing.T, open Opener) {
	st := open(t)
	l := ledgerOf(t, st)
	r, clock := newRunner(t, st)
	snap := TenantSnapshot(t, "acme", `{"soft": 50, "hard": 100, "tiny": 1}`,
		`{"id": "soft", "kind": "tenant_budget", "params": {"metric": "cost_cents", "threshold": "soft", "period": "day"}, "enforcement": "warn"},
		 {"id": "hard", "kind": "tenant_budget", "params": {"metric": "cost_cents", "threshold": "hard", "period": "day"}},
		 {"id": "watch", "kind": "tenant_budget", "params": {"metric": "tokens", "threshold": "tiny", "period": "month"}, "enforcement": "monitor"}`)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	res, err := run.Step(ctx, costStep(60))
	if err != nil || res.Status != trace.StatusWarning {
		t.Fatalf("step over the soft limit: %+v %v", res, err)
	}
	if got := usage(t, l, dayCost, clock.Now()); got != 60*prevention.CostUnitsPerCent {
		t.Errorf("cost counted %d, want 60 cents once", got)
	}
	tokens := prevention.Counter{TenantID: "acme", Metric: prevention.MetricTokens, Window: prevention.Window{Period: prevention.PeriodMonth}}
	if got := usage(t, l, tokens, clock.Now()); got != 10 {
		t.Errorf("tokens counted %d under a monitor-mode limit, want 10", got)
	}
	_, err = run.Step(ctx, costStep(41))
	wantViolation(t, err, prevention.ReasonBudgetExceeded, "hard", 101)
	if got := usage(t, l, dayCost, clock.Now()); got != 60*prevention.CostUnitsPerCent {
		t.Errorf("after the block: %d, want 60 cents", got)
	}
}

// testTenantBudgetRace: many runs reserve their worst case at once at the
// edge of a daily budget, as an LLM gateway does before each call. The
// steps admitted, summed from the stored records, never exceed the
// budget, and the ledger counts exactly them.
func testTenantBudgetRace(t *testing.T, open Opener) {
	st := open(t)
	l := ledgerOf(t, st)
	r, err := governance.NewRunner(st, governance.WithClock(governance.NewFakeClock(T0)))
	if err != nil {
		t.Fatal(err)
	}
	const runs, steps, worst = 24, 6, 7.0
	snap := TenantSnapshot(t, "acme", `{"daily_cost": 250}`, dailyCostPolicy)
	ids := make([]string, runs)
	errs := make(chan error, runs)
	var wg sync.WaitGroup
	for i := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = run.ID()
			for s := range steps {
				res, err := run.Reserve(ctx, costStep(worst))
				if errors.Is(err, governance.ErrPolicyViolation) {
					return
				}
				if err != nil {
					errs <- err
					return
				}
				actual := worst - float64((i+s)%4) // 4 to 7 cents
				if _, err := res.Step(ctx, costStep(actual)); err != nil {
					errs <- fmt.Errorf("settling %v: %w", actual, err)
					return
				}
			}
			if _, err := run.Finish(ctx); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var spent float64
	for _, id := range ids {
		recs, err := st.Records(ctx, "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			if rec.Kind == trace.KindStep && rec.Status != trace.StatusViolation {
				spent += rec.CostCents
			}
		}
		if _, err := governance.VerifyRun(ctx, st, "acme", id); err != nil {
			t.Error(err)
		}
	}
	counted := float64(usage(t, l, dayCost, T0)) / prevention.CostUnitsPerCent
	if spent > 250 || counted != spent {
		t.Errorf("admitted %v cents against a budget of 250 (overshoot %v); ledger counts %v", spent, max(spent-250, 0), counted)
	}
	if spent == 0 {
		t.Error("no step was admitted")
	}
}

// testReservationInFlight: while a run holds a reservation that fills the
// tenant's budget exactly, checks made through the reservation (a stream
// in progress) do not count it twice, a genuine overshoot still blocks,
// and a blocking Withhold gives the hold back exactly once.
func testReservationInFlight(t *testing.T, open Opener) {
	st := open(t)
	l := ledgerOf(t, st)
	r, clock := newRunner(t, st)
	snap := TenantSnapshot(t, "acme", `{"daily_cost": 100}`, dailyCostPolicy)
	cents := func() float64 { return float64(usage(t, l, dayCost, clock.Now())) / prevention.CostUnitsPerCent }
	run1, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run1.Step(ctx, costStep(40)); err != nil {
		t.Fatal(err)
	}
	run2, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	res, err := run2.Reserve(ctx, costStep(60))
	if err != nil || cents() != 100 {
		t.Fatalf("reserving the rest of the budget: %v, usage %v", err, cents())
	}
	if ev, err := run2.Check(ctx, costStep(60)); err != nil || ev.Decision.Action != prevention.Block {
		t.Errorf("Run.Check counts the run's own reservation: want Block, got %+v %v", ev, err)
	}
	if ev, err := res.Check(ctx, costStep(60)); err != nil || ev.Decision.Action != prevention.Allow {
		t.Errorf("Reservation.Check of the reserved step: want Allow, got %+v %v", ev, err)
	}
	if ev, err := res.Check(ctx, costStep(60.5)); err != nil || ev.Decision.Action != prevention.Block {
		t.Errorf("Reservation.Check over the budget: want Block, got %+v %v", ev, err)
	}
	if _, err := res.Withhold(ctx, costStep(30), costStep(30)); err != nil || cents() != 100 || run2.Ended() {
		t.Fatalf("Withhold within the reservation: %v, usage %v, ended %v", err, cents(), run2.Ended())
	}
	_, err = res.Withhold(ctx, costStep(61), costStep(20))
	wantViolation(t, err, prevention.ReasonBudgetExceeded, "daily_cost", 101)
	if cents() != 40 {
		t.Errorf("after a blocking Withhold the hold must be given back once: usage %v, want 40", cents())
	}
	if _, err := res.Check(ctx, costStep(1)); !errors.Is(err, governance.ErrReservationDone) {
		t.Errorf("Check after the reservation is done: got %v, want ErrReservationDone", err)
	}
	if err := res.Release(ctx); err != nil || cents() != 40 {
		t.Errorf("Release after a blocking Withhold: %v, usage %v", err, cents())
	}
	for _, run := range []*governance.Run{run1, run2} {
		if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
			t.Errorf("VerifyRun %s: %v", run.ID(), err)
		}
	}
}
