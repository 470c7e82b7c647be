package governance_test

import (
	"errors"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
)

const tenantBudgetDoc = `{"tenant_id":"acme","thresholds":{"daily_cost":100},"policies":[
	{"id":"daily","kind":"tenant_budget","params":{"metric":"cost_cents","threshold":"daily_cost","period":"day"}}]}`

// noLedger is a store that keeps no ledger: embedding the interface hides
// memstore's Ledger method.
type noLedger struct{ governance.Store }

func TestStartRefusesTenantLimitsWithoutLedger(t *testing.T) {
	r, _ := newRunner(t, noLedger{memstore.New()})
	snap := parse(t, tenantBudgetDoc)
	for name, start := range map[string]func() (*governance.Run, error){
		"Start":   func() (*governance.Run, error) { return r.Start(ctx, governance.StartOptions{Snapshot: snap}) },
		"Enqueue": func() (*governance.Run, error) { return r.Enqueue(ctx, governance.StartOptions{Snapshot: snap}) },
	} {
		_, err := start()
		if !errors.Is(err, governance.ErrLedgerUnsupported) || !strings.Contains(err.Error(), `policy "daily"`) {
			t.Errorf("%s: got %v, want ErrLedgerUnsupported naming the policy", name, err)
		}
	}
	// Snapshots without tenant-wide limits still run on it.
	if _, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)}); err != nil {
		t.Errorf("plain snapshot on a store without ledger: %v", err)
	}
}

// A reservation whose run ended before it was settled gives its holds
// back.
func TestReservationOfEndedRunIsReleased(t *testing.T) {
	st := memstore.New()
	r, clock := newRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, tenantBudgetDoc)})
	if err != nil {
		t.Fatal(err)
	}
	day := prevention.Counter{TenantID: "acme", Metric: prevention.MetricCostCents, Window: prevention.Window{Period: prevention.PeriodDay}}
	used := func() int64 {
		u, err := st.Ledger().Usage(ctx, day, clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	res, err := run.Reserve(ctx, governance.StepInput{Type: prevention.StepLLMResponse, CostCents: 60})
	if err != nil {
		t.Fatal(err)
	}
	if used() != 60*prevention.CostUnitsPerCent {
		t.Fatalf("reserved: %d", used())
	}
	if _, err := run.Abort(ctx, prevention.ReasonUserAbort, "bye"); err != nil {
		t.Fatal(err)
	}
	if _, err := res.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, CostCents: 60}); !errors.Is(err, governance.ErrRunStopped) {
		t.Fatalf("settling on an ended run: %v", err)
	}
	if used() != 0 {
		t.Errorf("holds of the ended run's reservation still counted: %d", used())
	}
	if err := res.Release(ctx); err != nil {
		t.Errorf("Release after Step: %v", err)
	}
}

const reserveEdgeDoc = `{"tenant_id":"acme","thresholds":{"daily_cost":100,"tenant_steps":2},"policies":[
	{"id":"daily","kind":"tenant_budget","params":{"metric":"cost_cents","threshold":"daily_cost","period":"day"}},
	{"id":"pace","kind":"tenant_rate_limit","params":{"threshold":"tenant_steps","window_seconds":60}},
	{"id":"no-ssn","kind":"content","params":{"fields":["output"],"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}}]}`

var (
	dayCost = prevention.Counter{TenantID: "acme", Metric: prevention.MetricCostCents, Window: prevention.Window{Period: prevention.PeriodDay}}
	pace    = prevention.Counter{TenantID: "acme", Metric: prevention.MetricSteps, Window: prevention.Window{Rolling: time.Minute}}
)

// edgeEnv is a tenant whose first run has spent 40 cents and one step
// (committed), and a second run holding a reservation of the remaining
// 60 cents and the last step of the minute: both limits exactly reached.
type edgeEnv struct {
	st       *memstore.Store
	clock    *governance.FakeClock
	run      *governance.Run
	res      *governance.Reservation
	reserved governance.StepInput
}

func newEdgeEnv(t *testing.T) *edgeEnv {
	t.Helper()
	st := memstore.New()
	r, clock := newRunner(t, st)
	snap := parse(t, reserveEdgeDoc)
	first, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, CostCents: 40}); err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	reserved := governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Tokens: 100, CostCents: 60}
	res, err := run.Reserve(ctx, reserved)
	if err != nil {
		t.Fatal(err)
	}
	e := &edgeEnv{st: st, clock: clock, run: run, res: res, reserved: reserved}
	if got := e.used(t, dayCost); got != 100*prevention.CostUnitsPerCent {
		t.Fatalf("reserved: %d cost units", got)
	}
	if got := e.used(t, pace); got != 2 {
		t.Fatalf("reserved: %d steps", got)
	}
	return e
}

func (e *edgeEnv) used(t *testing.T, c prevention.Counter) int64 {
	t.Helper()
	u, err := e.st.Ledger().Usage(ctx, c, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// push counts amount on c beside the runs, as another replica's step
// would: the limits are then genuinely exceeded.
func (e *edgeEnv) push(t *testing.T, c prevention.Counter, amount int64) {
	t.Helper()
	if _, _, _, err := e.st.Ledger().Reserve(ctx, c, e.clock.Now(), amount, math.MaxInt64); err != nil {
		t.Fatal(err)
	}
}

// A step checked under its own reservation is not counted twice: at the
// exact edge of a tenant budget and of a tenant rate limit,
// Reservation.Check passes the step Run.Check blocks, and blocks a
// genuine overshoot.
func TestReservationCheckLeavesItsHoldsOut(t *testing.T) {
	e := newEdgeEnv(t)
	ev, err := e.run.Check(ctx, e.reserved)
	if err != nil || ev.Decision.Action != prevention.Block {
		t.Fatalf("Run.Check of the reserved step: %v, %v; want a Block (counted twice)", ev.Decision, err)
	}
	ev, err = e.res.Check(ctx, e.reserved)
	if err != nil || ev.Decision.Action != prevention.Allow {
		t.Fatalf("Reservation.Check of the reserved step: %v, %v; want Allow", ev.Decision, err)
	}
	// Less than reserved, as a stream half way.
	half := e.reserved
	half.CostCents, half.Tokens = 30, 50
	if ev, err := e.res.Check(ctx, half); err != nil || ev.Decision.Action != prevention.Allow {
		t.Errorf("Reservation.Check of part of the step: %v, %v", ev.Decision, err)
	}
	// More than reserved, past the budget.
	over := e.reserved
	over.CostCents = 60.5
	if ev, err := e.res.Check(ctx, over); err != nil || ev.Decision.PolicyID != "daily" {
		t.Errorf("Reservation.Check past the budget: %v, %v; want daily's Block", ev.Decision, err)
	}
	// Content is checked as by Run.Check.
	ssn := half
	ssn.Output = "ssn 123-45-6789"
	if ev, err := e.res.Check(ctx, ssn); err != nil || ev.Decision.PolicyID != "no-ssn" {
		t.Errorf("Reservation.Check of content: %v, %v", ev.Decision, err)
	}
	// Another replica's step past the rate limit.
	e.push(t, pace, 1)
	if ev, err := e.res.Check(ctx, e.reserved); err != nil || ev.Decision.PolicyID != "pace" {
		t.Errorf("Reservation.Check past the rate limit: %v, %v; want pace's Block", ev.Decision, err)
	}
	// Nothing recorded, nothing counted, the reservation still holds.
	if got := e.used(t, dayCost); got != 100*prevention.CostUnitsPerCent || e.used(t, pace) != 3 {
		t.Errorf("after the checks: %d cost units", got)
	}
	if rec := e.run.Record(); e.run.Ended() || rec.StepCount != 0 || rec.ChainLength != 1 {
		t.Errorf("Check changed the run: %+v", rec)
	}
	if len(e.res.Holds()) != 2 {
		t.Errorf("holds after the checks: %v", e.res.Holds())
	}
}

// TestReservationCheckBudgetOvershoot: a spend beside the reservation
// (another replica's) takes the budget past its limit: the reserved step
// no longer fits.
func TestReservationCheckBudgetOvershoot(t *testing.T) {
	e := newEdgeEnv(t)
	e.push(t, dayCost, 1)
	if ev, err := e.res.Check(ctx, e.reserved); err != nil || ev.Decision.PolicyID != "daily" {
		t.Errorf("Reservation.Check past the budget: %v, %v; want daily's Block", ev.Decision, err)
	}
}

// Reservation.Withhold lets a step at the edge go on under its
// reservation; a Block stops the run and gives the reservation back
// exactly once. The reservation is then done.
func TestReservationWithhold(t *testing.T) {
	e := newEdgeEnv(t)
	committed := int64(40 * prevention.CostUnitsPerCent)

	attempted := e.reserved
	attempted.Output = "hello"
	if ev, err := e.res.Withhold(ctx, attempted, attempted); err != nil || ev.Decision.Action != prevention.Allow {
		t.Fatalf("Withhold at the edge: %v, %v; want Allow", ev.Decision, err)
	}
	if e.run.Ended() || e.used(t, dayCost) != 100*prevention.CostUnitsPerCent || e.used(t, pace) != 2 {
		t.Fatalf("an allowed Withhold changed the run or the ledger: ended %v, %d units, %d steps", e.run.Ended(), e.used(t, dayCost), e.used(t, pace))
	}

	attempted.Output = "hello, ssn 123-45-6789"
	delivered := attempted
	delivered.Output, delivered.Tokens, delivered.CostCents = "hello, ", 20, 10
	_, err := e.res.Withhold(ctx, attempted, delivered)
	var v *governance.Violation
	if !errors.As(err, &v) || v.PolicyID() != "no-ssn" || v.StepIndex != 0 {
		t.Fatalf("Withhold of content: %v", err)
	}
	if !e.run.Ended() {
		t.Fatal("run goes on after a withheld block")
	}
	if got := e.used(t, dayCost); got != committed {
		t.Errorf("after the block: %d cost units, want the committed %d", got, committed)
	}
	if got := e.used(t, pace); got != 1 {
		t.Errorf("after the block: %d steps, want the committed 1", got)
	}
	if len(e.res.Holds()) != 0 {
		t.Errorf("holds after the block: %v", e.res.Holds())
	}
	contents, _ := e.st.Contents(ctx, "acme", e.run.ID())
	if len(contents) != 1 || contents[0].Output != "hello, " || contents[0].Metadata[governance.MetadataWithheld] != "true" {
		t.Errorf("recorded content %+v", contents)
	}
	if _, err := governance.VerifyRun(ctx, e.st, "acme", e.run.ID()); err != nil {
		t.Error(err)
	}

	// Done: every use is refused, and a release gives nothing back again.
	if _, err := e.res.Check(ctx, e.reserved); !errors.Is(err, governance.ErrReservationDone) {
		t.Errorf("Check after the block: %v", err)
	}
	if _, err := e.res.Withhold(ctx, e.reserved, e.reserved); !errors.Is(err, governance.ErrReservationDone) {
		t.Errorf("Withhold after the block: %v", err)
	}
	if _, err := e.res.Step(ctx, e.reserved); !errors.Is(err, governance.ErrReservationDone) {
		t.Errorf("Step after the block: %v", err)
	}
	if err := e.res.Release(ctx); err != nil {
		t.Errorf("Release after the block: %v", err)
	}
	if got := e.used(t, dayCost); got != committed {
		t.Errorf("after Release: %d cost units, want the committed %d", got, committed)
	}
}

// A Withhold blocked by a tenant limit (a genuine overshoot) releases the
// reservation once too.
func TestReservationWithholdOvershoot(t *testing.T) {
	e := newEdgeEnv(t)
	e.push(t, pace, 1) // another replica's step: 3 of 2
	_, err := e.res.Withhold(ctx, e.reserved, governance.StepInput{Type: e.reserved.Type, Model: e.reserved.Model})
	var v *governance.Violation
	if !errors.As(err, &v) || v.PolicyID() != "pace" {
		t.Fatalf("Withhold past the rate limit: %v", err)
	}
	if got := e.used(t, pace); got != 2 {
		t.Errorf("after the block: %d steps, want the first run's and the other replica's", got)
	}
	if got := e.used(t, dayCost); got != 40*prevention.CostUnitsPerCent {
		t.Errorf("after the block: %d cost units, want the first run's", got)
	}
	if err := e.res.Release(ctx); err != nil || e.used(t, pace) != 2 {
		t.Errorf("Release after the block: %v, %d steps", err, e.used(t, pace))
	}
}

// After Step or Release, Check and Withhold return ErrReservationDone.
func TestReservationCheckAfterDone(t *testing.T) {
	for name, finish := range map[string]func(*governance.Reservation, governance.StepInput) error{
		"Step": func(res *governance.Reservation, in governance.StepInput) error {
			_, err := res.Step(ctx, in)
			return err
		},
		"Release": func(res *governance.Reservation, _ governance.StepInput) error { return res.Release(ctx) },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEdgeEnv(t)
			if err := finish(e.res, e.reserved); err != nil {
				t.Fatal(err)
			}
			if _, err := e.res.Check(ctx, e.reserved); !errors.Is(err, governance.ErrReservationDone) {
				t.Errorf("Check: %v", err)
			}
			if _, err := e.res.Withhold(ctx, e.reserved, e.reserved); !errors.Is(err, governance.ErrReservationDone) {
				t.Errorf("Withhold: %v", err)
			}
		})
	}
}

// Checks racing with the reservation's Release see it held or done,
// never half given back.
func TestReservationCheckConcurrent(t *testing.T) {
	e := newEdgeEnv(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				ev, err := e.res.Check(ctx, e.reserved)
				if errors.Is(err, governance.ErrReservationDone) {
					return
				}
				if err != nil || ev.Decision.Action != prevention.Allow {
					t.Errorf("Check: %v, %v", ev.Decision, err)
					return
				}
			}
		}()
	}
	if err := e.res.Release(ctx); err != nil {
		t.Error(err)
	}
	wg.Wait()
	if got := e.used(t, dayCost); got != 40*prevention.CostUnitsPerCent {
		t.Errorf("after Release: %d cost units", got)
	}
}
