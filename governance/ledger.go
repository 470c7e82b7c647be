package governance

import (
	"context"
	"errors"
	"fmt"

	"github.com/stopline/stopline/prevention"
)

// ErrLedgerUnsupported is matched when a run's snapshot limits its tenant
// across runs (tenant_budget, tenant_rate_limit, or a hook that is a
// prevention.ChargedHook) but the runner's store keeps no ledger: Start
// and Enqueue refuse such a run.
var ErrLedgerUnsupported = errors.New("governance: store keeps no ledger for tenant-wide limits")

// LedgerStore is an optional interface of a Store: one that keeps the
// tenants' shared counters that limits spanning runs are checked against
// (a tenant's spend per day, its steps per minute across all its runs).
// The runner detects it with a type assertion. Stores shared by several
// replicas must make every Ledger method atomic across all of them.
// store/postgres, store/sqlite and store/memstore implement it.
type LedgerStore interface {
	Store
	// Ledger returns the store's ledger. It is called for every step of a
	// run that needs it, so it should be cheap.
	Ledger() prevention.Ledger
}

// ledger returns the store's ledger, or nil.
func (r *Runner) ledger() prevention.Ledger {
	if ls, ok := r.store.(LedgerStore); ok {
		return ls.Ledger()
	}
	return nil
}

// checkLedger refuses a run whose engine needs a ledger the store does not
// keep.
func (r *Runner) checkLedger(eng *prevention.Engine) error {
	id := eng.LedgerPolicy()
	if id == "" || r.ledger() != nil {
		return nil
	}
	return fmt.Errorf("governance: start: policy %q of snapshot %s limits tenant %q across runs, and the store (%T) does not implement governance.LedgerStore: %w",
		id, eng.Snapshot().ID(), eng.Snapshot().TenantID(), r.store, ErrLedgerUnsupported)
}

// charges returns the Charges a step of this run counts through, or nil
// when its policies need no ledger.
func (run *Run) charges() *prevention.Charges {
	if !run.engine.UsesLedger() {
		return nil
	}
	l := run.r.ledger()
	if l == nil {
		return nil // the engine's hooks then fail closed with ErrNoLedger
	}
	return prevention.NewCharges(l)
}

// peekCharges returns the Charges a check of this run reads through,
// counting nothing, with exclude (a Reservation's holds) left out of the
// totals; nil when its policies need no ledger.
func (run *Run) peekCharges(exclude []prevention.Hold) *prevention.Charges {
	if !run.engine.UsesLedger() {
		return nil
	}
	l := run.r.ledger()
	if l == nil {
		return nil // the engine's hooks then fail closed with ErrNoLedger
	}
	if len(exclude) > 0 {
		return prevention.PeekChargesExcept(l, exclude)
	}
	return prevention.PeekCharges(l)
}

// releaseCharges gives back what a step that was not allowed, or not
// recorded, had counted. A hold that cannot be given back stays counted,
// which can only make later charges fail, so the error is not the step's.
func (run *Run) releaseCharges(ctx context.Context, ch *prevention.Charges) {
	if ch == nil {
		return
	}
	wctx, cancel := run.r.writeContext(ctx)
	defer cancel()
	_ = ch.Release(wctx)
}

// commitCharges settles what an allowed step counted, before it is
// recorded.
func (run *Run) commitCharges(ctx context.Context, ch *prevention.Charges) error {
	if ch == nil {
		return nil
	}
	wctx, cancel := run.r.writeContext(ctx)
	defer cancel()
	return ch.Commit(wctx)
}

// releaseHolds gives back holds the run no longer needs.
func (run *Run) releaseHolds(ctx context.Context, holds []prevention.Hold) error {
	if len(holds) == 0 {
		return nil
	}
	l := run.r.ledger()
	if l == nil {
		return fmt.Errorf("governance: releasing holds of run %s: %w", run.rec.RunID, ErrLedgerUnsupported)
	}
	wctx, cancel := run.r.writeContext(ctx)
	defer cancel()
	var first error
	for _, h := range holds {
		if err := l.Release(wctx, h); err != nil && first == nil {
			first = fmt.Errorf("governance: releasing %d on %s for run %s: %w", h.Amount, h.Counter, run.rec.RunID, err)
		}
	}
	return first
}
