package prevention

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// ErrNoLedger is matched by the error of a hook that limits a tenant
// across its runs (tenant_budget, tenant_rate_limit, or any ChargedHook)
// when it is evaluated without a Ledger: with Engine.Evaluate instead of
// Engine.EvaluateCharged. The step then fails closed.
var ErrNoLedger = errors.New("prevention: tenant-wide limit evaluated without a ledger")

// Metric is what a tenant counter adds up.
type Metric string

// Metrics of tenant counters. Amounts are integers (see CostUnitsPerCent).
const (
	// MetricCostCents adds up steps' cost, in millionths of a cent.
	MetricCostCents Metric = "cost_cents"
	// MetricTokens adds up steps' tokens.
	MetricTokens Metric = "tokens"
	// MetricRuns counts runs, each at its first step (index 0).
	MetricRuns Metric = "runs"
	// MetricSteps counts steps.
	MetricSteps Metric = "steps"
)

// CostUnitsPerCent is the unit cost_cents counters count in: a step's cost
// is rounded to the nearest millionth of a cent, so that every store adds
// up exactly the same integers, and a limit is rounded down to it.
const CostUnitsPerCent = 1_000_000

// Period is a calendar window, in UTC.
type Period string

// Calendar periods.
const (
	PeriodDay   Period = "day"   // [00:00, 24:00) UTC
	PeriodMonth Period = "month" // from the 1st, 00:00 UTC, to the next 1st
)

// Window is the span a tenant counter adds up over: a calendar Period or,
// when Period is empty, the Rolling duration before the charge.
type Window struct {
	Period  Period
	Rolling time.Duration
}

// Valid reports whether w is exactly one of a known period and a positive
// rolling duration.
func (w Window) Valid() bool {
	switch w.Period {
	case PeriodDay, PeriodMonth:
		return w.Rolling == 0
	case "":
		return w.Rolling > 0
	}
	return false
}

// String is "day", "month" or "rolling/<duration>", as in Counter.Key.
func (w Window) String() string {
	if w.Period != "" {
		return string(w.Period)
	}
	return "rolling/" + w.Rolling.String()
}

// Start returns the start of the calendar window that contains at (UTC).
// For a rolling window it returns at.
func (w Window) Start(at time.Time) time.Time {
	at = at.UTC()
	switch w.Period {
	case PeriodDay:
		return time.Date(at.Year(), at.Month(), at.Day(), 0, 0, 0, 0, time.UTC)
	case PeriodMonth:
		return time.Date(at.Year(), at.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	return at
}

// RollingBounds returns what a charge at at on a rolling window is checked
// against: the holds whose times (unix nanoseconds) lie in the open
// interval (lo, hi), within the window's length of at on either side.
// Holds at or before prune can never count again for charges in time
// order and may be forgotten. The values saturate at the int64 range.
func (w Window) RollingBounds(at time.Time) (lo, hi, prune int64) {
	t, d := at.UnixNano(), int64(w.Rolling)
	sub := func(a, b int64) int64 {
		if a < math.MinInt64+b {
			return math.MinInt64
		}
		return a - b
	}
	hi = math.MaxInt64
	if t <= math.MaxInt64-d {
		hi = t + d
	}
	return sub(t, d), hi, sub(sub(t, d), d)
}

// Counter is one of a tenant's counters, shared by all of the tenant's
// runs whatever their snapshot: every policy that limits the same metric
// over the same window reads the same counter, each against its own
// limit.
type Counter struct {
	TenantID string
	Metric   Metric
	Window   Window
}

// Key names the counter within its tenant: metric "/" window, such as
// "cost_cents/day" or "steps/rolling/1m0s".
func (c Counter) Key() string { return string(c.Metric) + "/" + c.Window.String() }

func (c Counter) String() string { return c.TenantID + ":" + c.Key() }

// Hold is an amount a Ledger counts for one charge, until it is released.
type Hold struct {
	Counter Counter
	// At is the time the amount is counted at: it selects the calendar
	// window, or places the amount in rolling ones.
	At     time.Time
	Amount int64
	// ID is the store's identity for the hold, when it needs one (rolling
	// windows); 0 otherwise.
	ID int64
}

// Ledger keeps tenants' counters for limits that span runs (a tenant's
// spend per day, its steps per minute across all runs), shared by every
// runner that uses the same store, on any number of replicas. Stores that
// keep one offer it through governance.LedgerStore; the runner gives it to
// the policies through Charges.
//
// Every method is atomic on its own: concurrent charges, from any number
// of processes, never take a window's total past the limit a charge was
// checked against. Amounts and limits are non-negative. For a calendar
// window the total is the sum of the holds in the window containing the
// charge's time. For a rolling window of length d, a charge at t is
// checked against every hold within d of t, before or after it — with
// charges in time order that is exactly the trailing window (t-d, t] —
// so no trailing window ever holds more than the limit, even when
// replicas' clocks disagree by less than d.
//
// Implementations must be safe for concurrent use and should honour ctx.
type Ledger interface {
	// Reserve counts amount on c at time at if the window's total, the
	// amount included, is at most limit. ok says whether it was counted;
	// total is the window's total with the amount, counted or not (the
	// value the limit was compared with).
	Reserve(ctx context.Context, c Counter, at time.Time, amount, limit int64) (h Hold, total int64, ok bool, err error)
	// Resize counts hold h as amount at time at instead, if the window's
	// total without h, plus amount, is at most limit; for a calendar
	// counter, at must lie in h's window. Lowering a hold at the same time
	// always succeeds. On success it returns the new hold; otherwise h
	// stays as it was.
	Resize(ctx context.Context, h Hold, at time.Time, amount, limit int64) (Hold, int64, bool, error)
	// Release stops counting h. Amounts are only ever released by the
	// charge that reserved them; a hold that is never released (its
	// process died) stays counted, which can only refuse charges, never
	// let one overshoot, until its window has passed.
	Release(ctx context.Context, h Hold) error
	// Usage returns the total a charge on c at time at would be checked
	// against, its own amount excluded.
	Usage(ctx context.Context, c Counter, at time.Time) (int64, error)
}

// ChargedHook is a Hook that limits a tenant across its runs. When the
// engine is given Charges (Engine.EvaluateCharged), it calls
// EvaluateCharged instead of Evaluate; the hook counts the step through
// the Charges, which hold the amounts until the step is decided. Its
// Evaluate, called without Charges, should fail with ErrNoLedger. The
// built-in tenant_budget and tenant_rate_limit kinds are ChargedHooks.
type ChargedHook interface {
	Hook
	EvaluateCharged(ctx context.Context, step *Step, ch *Charges) (Decision, error)
}

// Charges are what the policies of one step count in a Ledger while the
// step is evaluated: reserve, then settle. The runner makes one per step,
// passes it to Engine.EvaluateCharged, and once the step is decided calls
// Commit before recording an allowed step (and Release if it then cannot
// be recorded), or Release at once if the step was blocked. A blocked
// step so counts nothing; an allowed one counts exactly its amounts, once
// per counter, however many policies read the counter.
//
// Charges made with PeekCharges or PeekChargesExcept count nothing: they
// compare the totals with the limits (Run.Check, Run.Withhold,
// Reservation.Check, Reservation.Withhold). Charges are not safe for
// concurrent use; the runner evaluates a run's steps one at a time.
type Charges struct {
	ledger  Ledger
	peek    bool
	exclude []Hold // peek: holds left out of the totals read
	entries []charge
	stale   []Hold // holds the step no longer needs: released by Commit and Release
}

// charge is one counter's state within a step.
type charge struct {
	counter Counter
	at      time.Time
	amount  int64
	total   int64
	hold    Hold
	held    bool // hold counts this step's amount (or, carried, a reservation's)
	carried bool // hold came from a reservation and is not settled yet
	refused bool // a policy's limit refused the amount
}

// NewCharges returns Charges that count in l.
func NewCharges(l Ledger) *Charges { return &Charges{ledger: l} }

// PeekCharges returns Charges that read l and count nothing.
func PeekCharges(l Ledger) *Charges { return &Charges{ledger: l, peek: true} }

// PeekChargesExcept returns Charges that read l and count nothing, as
// PeekCharges, but with holds left out of the totals they read: a hold
// on the counter charged, that counts in the window of the charge's time
// (the same calendar window; within the rolling window's length of it,
// as Ledger.Usage counts), is taken off the counter's usage before the
// charge's amount is added. It answers "would this step pass if it
// replaced these holds?" — the check of a step whose worst case a
// reservation already holds (governance.Reservation.Check), which would
// otherwise count the step twice. A usage that no longer counts a hold
// (given back meanwhile) is taken no lower than 0.
func PeekChargesExcept(l Ledger, holds []Hold) *Charges {
	return &Charges{ledger: l, peek: true, exclude: append([]Hold(nil), holds...)}
}

// excluded is what of c.exclude counts on counter at time at.
func (c *Charges) excluded(counter Counter, at time.Time) int64 {
	var sum int64
	for _, h := range c.exclude {
		if h.Counter != counter || h.Amount <= 0 {
			continue
		}
		w := counter.Window
		if w.Period != "" {
			if !w.Start(h.At).Equal(w.Start(at)) {
				continue
			}
		} else {
			lo, hi, _ := w.RollingBounds(at)
			if t := h.At.UnixNano(); t <= lo || t >= hi {
				continue
			}
		}
		sum = addClamp(sum, h.Amount)
	}
	return sum
}

// Carry adds holds reserved earlier for the step about to be evaluated (a
// worst case reserved before the step happened): the first policy that
// charges a hold's counter settles the hold to the step's actual amount
// (Ledger.Resize) instead of reserving anew, and holds no policy settles
// are released by Commit and Release.
func (c *Charges) Carry(holds []Hold) {
	for _, h := range holds {
		c.entries = append(c.entries, charge{counter: h.Counter, hold: h, held: true, carried: true})
	}
}

// Holds returns what the charges hold: the amounts counted for the step.
func (c *Charges) Holds() []Hold {
	var out []Hold
	for _, e := range c.entries {
		if e.held && !c.peek {
			out = append(out, e.hold)
		}
	}
	return out
}

// Charge counts amount on counter at time at for the step being evaluated,
// if the counter's total stays within limit, and returns the total with
// the amount and whether it is within limit. The amount is counted once
// per counter and step: another policy charging the same counter in the
// same step is only compared with its own limit. A zero amount counts
// nothing and is within any limit (it returns a total of 0 without
// reading the ledger). With PeekCharges nothing is counted.
func (c *Charges) Charge(ctx context.Context, counter Counter, at time.Time, amount, limit int64) (total int64, ok bool, err error) {
	if amount < 0 || limit < 0 {
		return 0, false, fmt.Errorf("prevention: charge of %d against limit %d on %s", amount, limit, counter)
	}
	if !counter.Window.Valid() {
		return 0, false, fmt.Errorf("prevention: charge on %s: invalid window %+v", counter, counter.Window)
	}
	e := c.entry(counter)
	if amount == 0 {
		if e != nil && e.carried {
			c.drop(e)
		}
		return 0, true, nil
	}
	switch {
	case e == nil:
		c.entries = append(c.entries, charge{counter: counter, at: at, amount: amount})
		return c.reserve(ctx, &c.entries[len(c.entries)-1], limit)
	case e.carried:
		e.at, e.amount = at, amount
		return c.settle(ctx, e, limit)
	case e.held:
		return e.total, e.total <= limit, nil
	default: // refused by an earlier policy's limit: try this one's
		return c.reserve(ctx, e, limit)
	}
}

func (c *Charges) entry(counter Counter) *charge {
	for i := range c.entries {
		if c.entries[i].counter == counter {
			return &c.entries[i]
		}
	}
	return nil
}

// drop moves e's hold to the stale list: the step does not need it.
func (c *Charges) drop(e *charge) {
	if e.held {
		c.stale = append(c.stale, e.hold)
	}
	e.held, e.carried, e.hold = false, false, Hold{}
}

// reserve counts e's amount if it fits limit.
func (c *Charges) reserve(ctx context.Context, e *charge, limit int64) (int64, bool, error) {
	if c.peek {
		u, err := c.ledger.Usage(ctx, e.counter, e.at)
		if err != nil {
			return 0, false, fmt.Errorf("prevention: reading %s: %w", e.counter, err)
		}
		if len(c.exclude) > 0 {
			u = max(u-c.excluded(e.counter, e.at), 0)
		}
		e.total = addClamp(u, e.amount)
		ok := e.total <= limit
		e.held, e.refused = ok, !ok
		return e.total, ok, nil
	}
	h, total, ok, err := c.ledger.Reserve(ctx, e.counter, e.at, e.amount, limit)
	if err != nil {
		return 0, false, fmt.Errorf("prevention: reserving %d on %s: %w", e.amount, e.counter, err)
	}
	e.total = total
	if ok {
		e.hold, e.held, e.refused = h, true, false
	} else {
		e.refused = true
	}
	return total, ok, nil
}

// settle turns a carried hold into e's actual amount at e's time.
func (c *Charges) settle(ctx context.Context, e *charge, limit int64) (int64, bool, error) {
	w := e.counter.Window
	if w.Period != "" && !w.Start(e.at).Equal(w.Start(e.hold.At)) {
		// The step fell in another calendar window than its reservation:
		// count it there, and give the old window back.
		c.drop(e)
		return c.reserve(ctx, e, limit)
	}
	h, total, ok, err := c.ledger.Resize(ctx, e.hold, e.at, e.amount, limit)
	if err != nil {
		return 0, false, fmt.Errorf("prevention: settling %d on %s: %w", e.amount, e.counter, err)
	}
	e.total = total
	if ok {
		e.hold, e.carried = h, false
		return total, true, nil
	}
	// The actual amount does not fit where the reservation did: the hold
	// goes back, and later policies on the counter may try their limits.
	c.drop(e)
	e.refused = true
	return total, false, nil
}

// Commit settles the charges of a step that was allowed, before it is
// recorded: amounts that a warn- or monitor-mode policy's limit refused
// are counted anyway (the step happens, so it uses the counter), and
// carried holds no policy settled are given back. If Commit fails, the
// caller must not let the step pass, and should Release. Peek charges
// commit nothing.
func (c *Charges) Commit(ctx context.Context) error {
	if c == nil || c.peek {
		return nil
	}
	for i := range c.entries {
		e := &c.entries[i]
		switch {
		case e.carried:
			c.drop(e)
		case e.refused && !e.held:
			h, _, _, err := c.ledger.Reserve(ctx, e.counter, e.at, e.amount, math.MaxInt64)
			if err != nil {
				return fmt.Errorf("prevention: counting %d on %s: %w", e.amount, e.counter, err)
			}
			e.hold, e.held, e.refused = h, true, false
		}
	}
	// A hold that cannot be given back stays counted: that can refuse a
	// later charge, never let one overshoot. So its error is not the
	// step's.
	c.releaseStale(ctx)
	return nil
}

// Release gives back everything the charges hold: the step was blocked,
// or could not be recorded. It tries every hold and returns the first
// error; a hold that could not be given back stays counted, which can
// refuse later charges, never let one overshoot.
func (c *Charges) Release(ctx context.Context) error {
	if c == nil || c.peek {
		return nil
	}
	for i := range c.entries {
		c.drop(&c.entries[i])
	}
	return c.releaseStale(ctx)
}

func (c *Charges) releaseStale(ctx context.Context) error {
	var first error
	for _, h := range c.stale {
		if err := c.ledger.Release(ctx, h); err != nil && first == nil {
			first = fmt.Errorf("prevention: releasing %d on %s: %w", h.Amount, h.Counter, err)
		}
	}
	c.stale = nil
	return first
}

func addClamp(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// UsesLedger reports whether any of the engine's policies or hooks limits
// the tenant across its runs (is a ChargedHook): such an engine must be
// evaluated with Charges over a Ledger.
func (e *Engine) UsesLedger() bool { return e.LedgerPolicy() != "" }

// LedgerPolicy returns the id of the first policy or hook that needs a
// Ledger, or "" if none does.
func (e *Engine) LedgerPolicy() string {
	for i := range e.rules {
		if _, ok := e.rules[i].hook.(ChargedHook); ok {
			return e.rules[i].id
		}
	}
	return ""
}
