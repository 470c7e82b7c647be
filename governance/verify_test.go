package governance_test

import (
	"context"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

// lyingTotals is a store whose run rows state other totals than the run's
// records, as an edited column beside the last record would make them.
type lyingTotals struct{ governance.Store }

func (s lyingTotals) Run(ctx context.Context, tenant, run string) (governance.RunRecord, error) {
	r, err := s.Store.Run(ctx, tenant, run)
	r.TotalTokens, r.TotalCostCents = 1, 0.5
	return r, err
}

// TestRecoverRunTotalsFromTheChain: the run_end RecoverRun seals states
// the totals of the last recorded step's verified record, not what the
// store keeps beside it; and VerifyRun reports a run row whose totals are
// not the chain's.
func TestRecoverRunTotalsFromTheChain(t *testing.T) {
	st := memstore.New()
	r, _ := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	for i := 0; i < 2; i++ {
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage, Tokens: 7, CostCents: 1.25}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := governance.VerifyRun(ctx, lyingTotals{st}, "acme", run.ID()); err == nil {
		t.Error("VerifyRun of a run row whose totals are not the chain's passed")
	}
	if _, err := governance.RecoverRun(ctx, lyingTotals{st}, "acme", run.ID(), "", t0); err != nil {
		t.Fatal(err)
	}
	recs, _ := st.Records(ctx, "acme", run.ID())
	if end := recs[len(recs)-1]; end.Kind != trace.KindRunEnd || end.TotalTokens != 14 || end.TotalCostCents != 2.5 {
		t.Errorf("run_end states %d tokens, %g cents; the chain has 14 and 2.5", end.TotalTokens, end.TotalCostCents)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Errorf("VerifyRun after recovery: %v", err)
	}
}

// staleOnce answers the first Run with a row read before the run's last
// step, as a read racing with a step can.
type staleOnce struct {
	governance.Store
	stale governance.RunRecord
	calls *int
}

func (s staleOnce) Run(ctx context.Context, tenant, run string) (governance.RunRecord, error) {
	*s.calls++
	if *s.calls == 1 {
		return s.stale, nil
	}
	return s.Store.Run(ctx, tenant, run)
}

// TestVerifyRunOfARunInProgress: a running run that records a step while
// it is verified is verified again, not reported; a run that did not
// move is reported.
func TestVerifyRunOfARunInProgress(t *testing.T) {
	st := memstore.New()
	r, _ := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	before, _ := st.Run(ctx, "acme", run.ID())
	run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	calls := 0
	if _, err := governance.VerifyRun(ctx, staleOnce{st, before, &calls}, "acme", run.ID()); err != nil || calls < 3 {
		t.Errorf("VerifyRun during a step: %v (%d reads of the run)", err, calls)
	}
	// A row that stays wrong is reported.
	if _, err := governance.VerifyRun(ctx, lyingTotals{st}, "acme", run.ID()); err == nil {
		t.Error("a run row that stays wrong passed")
	}
}
