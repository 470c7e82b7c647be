package governance_test

import (
	"errors"
	"strings"
	"testing"

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
