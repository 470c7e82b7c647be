package prevention_test

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// dayLedger is a Ledger of calendar windows only, for tests (the stores'
// ledgers are checked by store/storetest).
type dayLedger struct {
	mu   sync.Mutex
	used map[string]int64
}

func (l *dayLedger) key(c prevention.Counter, at time.Time) string {
	return c.String() + "@" + c.Window.Start(at).String()
}

func (l *dayLedger) Reserve(_ context.Context, c prevention.Counter, at time.Time, amount, limit int64) (prevention.Hold, int64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	total := l.used[l.key(c, at)] + amount
	if total > limit {
		return prevention.Hold{}, total, false, nil
	}
	l.used[l.key(c, at)] = total
	return prevention.Hold{Counter: c, At: at, Amount: amount}, total, true, nil
}

func (l *dayLedger) Resize(_ context.Context, h prevention.Hold, at time.Time, amount, limit int64) (prevention.Hold, int64, bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.key(h.Counter, h.At)
	total := l.used[k] - h.Amount + amount
	if amount > h.Amount && total > limit {
		return h, total, false, nil
	}
	l.used[k] = total
	return prevention.Hold{Counter: h.Counter, At: at, Amount: amount}, total, true, nil
}

func (l *dayLedger) Release(_ context.Context, h prevention.Hold) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.used[l.key(h.Counter, h.At)] -= h.Amount
	return nil
}

func (l *dayLedger) Usage(_ context.Context, c prevention.Counter, at time.Time) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.used[l.key(c, at)], nil
}

func TestTenantKindCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		policy snapshot.Policy
		field  string
	}{
		{"missing metric", policy("p", "tenant_budget", `{"threshold":"max_tokens","period":"day"}`), "params.metric"},
		{"steps is no budget metric", policy("p", "tenant_budget", `{"metric":"steps","threshold":"max_steps","period":"day"}`), "params.metric"},
		{"unknown metric", policy("p", "tenant_budget", `{"metric":"dollars","threshold":"max_tokens","period":"day"}`), "params.metric"},
		{"missing threshold", policy("p", "tenant_budget", `{"metric":"tokens","period":"day"}`), "params.threshold"},
		{"no window", policy("p", "tenant_budget", `{"metric":"tokens","threshold":"max_tokens"}`), "params.period"},
		{"unknown period", policy("p", "tenant_budget", `{"metric":"tokens","threshold":"max_tokens","period":"week"}`), "params.period"},
		{"period and window", policy("p", "tenant_budget", `{"metric":"tokens","threshold":"max_tokens","period":"day","window_seconds":60}`), "params.window_seconds"},
		{"zero window", policy("p", "tenant_budget", `{"metric":"tokens","threshold":"max_tokens","window_seconds":0}`), "params.window_seconds"},
		{"window too long", policy("p", "tenant_budget", `{"metric":"tokens","threshold":"max_tokens","window_seconds":1e12}`), "params.window_seconds"},
		{"unknown param", policy("p", "tenant_budget", `{"metric":"tokens","threshold":"max_tokens","period":"day","tenant":"x"}`), "params.tenant"},
		{"rate without threshold", policy("p", "tenant_rate_limit", `{"window_seconds":60}`), "params.threshold"},
		{"rate negative window", policy("p", "tenant_rate_limit", `{"threshold":"max_steps","window_seconds":-5}`), "params.window_seconds"},
		{"rate with period", policy("p", "tenant_rate_limit", `{"threshold":"max_steps","period":"day"}`), "params.period"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := kinds.Compile(newSnapshot(t, nil, tt.policy))
			var ve *snapshot.ValidationError
			if !errors.As(err, &ve) || ve.PolicyID != "p" || ve.Field != tt.field {
				t.Fatalf("Compile: %v, want a ValidationError on %s", err, tt.field)
			}
		})
	}
	ok := newSnapshot(t, nil,
		policy("a", "tenant_budget", `{"metric":"cost_cents","threshold":"max_cost_cents","period":"month"}`),
		policy("b", "tenant_budget", `{"metric":"runs","threshold":"max_steps","window_seconds":3600}`),
		policy("c", "tenant_rate_limit", `{"threshold":"max_steps_per_window"}`))
	e, err := kinds.Compile(ok)
	if err != nil {
		t.Fatal(err)
	}
	if !e.UsesLedger() || e.LedgerPolicy() != "a" || !e.MayBlock() {
		t.Errorf("UsesLedger %v, LedgerPolicy %q, MayBlock %v", e.UsesLedger(), e.LedgerPolicy(), e.MayBlock())
	}
	if plain := compile(t, nil, policy("x", "budget", `{"metric":"steps","threshold":"max_steps"}`)); plain.UsesLedger() {
		t.Error("an engine without tenant kinds uses a ledger")
	}
}

// Without Charges a tenant-wide limit cannot be checked: the step fails
// closed.
func TestTenantLimitWithoutLedgerFailsClosed(t *testing.T) {
	e := compile(t, nil, policy("daily", "tenant_budget", `{"metric":"tokens","threshold":"max_tokens","period":"day"}`))
	step := &prevention.Step{TenantID: "acme", Type: prevention.StepLLMResponse, At: t0, Tokens: 1}
	_, err := e.Evaluate(context.Background(), step)
	var he *prevention.HookError
	if !errors.Is(err, prevention.ErrNoLedger) || !errors.As(err, &he) || he.PolicyID != "daily" {
		t.Fatalf("Evaluate without a ledger: %v, want a HookError matching ErrNoLedger", err)
	}
}

func TestWindow(t *testing.T) {
	at := time.Date(2026, 2, 28, 23, 59, 59, 999999999, time.FixedZone("x", 3600))
	day, month := prevention.Window{Period: prevention.PeriodDay}, prevention.Window{Period: prevention.PeriodMonth}
	if got := day.Start(at); !got.Equal(time.Date(2026, 2, 28, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("day start %v", got)
	}
	if got := month.Start(at); !got.Equal(time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("month start %v", got)
	}
	roll := prevention.Window{Rolling: time.Minute}
	lo, hi, prune := roll.RollingBounds(at)
	if lo != at.UnixNano()-int64(time.Minute) || hi != at.UnixNano()+int64(time.Minute) || prune != at.UnixNano()-2*int64(time.Minute) {
		t.Errorf("bounds %d %d %d", lo, hi, prune)
	}
	huge := prevention.Window{Rolling: time.Duration(1<<63 - 1)}
	if lo, hi, prune := huge.RollingBounds(at); lo >= at.UnixNano() || hi <= at.UnixNano() || prune > lo {
		t.Errorf("huge window bounds do not saturate: %d %d %d", lo, hi, prune)
	}
	for _, w := range []prevention.Window{{}, {Period: "week"}, {Period: prevention.PeriodDay, Rolling: time.Second}, {Rolling: -1}} {
		if w.Valid() {
			t.Errorf("%+v is valid", w)
		}
	}
	c := prevention.Counter{TenantID: "acme", Metric: prevention.MetricSteps, Window: roll}
	if c.Key() != "steps/rolling/1m0s" || day.String() != "day" {
		t.Errorf("key %q", c.Key())
	}
}

// Charges count a step once per counter, whatever the number of policies
// reading it; give everything back on Release; count warn-refused amounts
// on Commit; settle carried holds.
func TestCharges(t *testing.T) {
	ctx := context.Background()
	l := &dayLedger{used: map[string]int64{}}
	day := prevention.Counter{TenantID: "acme", Metric: prevention.MetricTokens, Window: prevention.Window{Period: prevention.PeriodDay}}
	used := func() int64 {
		t.Helper()
		u, err := l.Usage(ctx, day, t0)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	charge := func(ch *prevention.Charges, amount, limit, wantTotal int64, wantOK bool) {
		t.Helper()
		total, ok, err := ch.Charge(ctx, day, t0, amount, limit)
		if err != nil || ok != wantOK || total != wantTotal {
			t.Fatalf("Charge(%d, limit %d) = %d %v %v, want %d %v", amount, limit, total, ok, err, wantTotal, wantOK)
		}
	}

	ch := prevention.NewCharges(l)
	charge(ch, 30, 100, 30, true)
	charge(ch, 30, 20, 30, false) // a second policy, lower limit: the same total
	charge(ch, 30, 100, 30, true)
	if used() != 30 {
		t.Fatalf("counted %d, want 30 once", used())
	}
	if err := ch.Commit(ctx); err != nil || used() != 30 {
		t.Fatalf("Commit: %v, used %d", err, used())
	}

	// A block: everything goes back.
	ch = prevention.NewCharges(l)
	charge(ch, 50, 100, 80, true)
	if err := ch.Release(ctx); err != nil || used() != 30 {
		t.Fatalf("Release: %v, used %d", err, used())
	}

	// Refused by a warn-mode policy, allowed by the step: counted on Commit.
	ch = prevention.NewCharges(l)
	charge(ch, 50, 60, 80, false)
	if used() != 30 {
		t.Fatalf("a refused charge counted: %d", used())
	}
	if err := ch.Commit(ctx); err != nil || used() != 80 {
		t.Fatalf("Commit of a warn-refused charge: %v, used %d", err, used())
	}

	// Peek counts nothing.
	ch = prevention.PeekCharges(l)
	charge(ch, 20, 100, 100, true)
	if err := ch.Commit(ctx); err != nil || used() != 80 || len(ch.Holds()) != 0 {
		t.Fatalf("peek: %v, used %d, holds %v", err, used(), ch.Holds())
	}

	// A reservation carried into the step is settled to the actual amount.
	res := prevention.NewCharges(l)
	charge(res, 15, 100, 95, true)
	holds := res.Holds()
	ch = prevention.NewCharges(l)
	ch.Carry(holds)
	charge(ch, 5, 100, 85, true)
	if used() != 85 {
		t.Fatalf("settled down: used %d, want 85", used())
	}
	if err := ch.Commit(ctx); err != nil || used() != 85 {
		t.Fatalf("after settle: %v %d", err, used())
	}
	// A carried hold no policy settles is given back.
	res = prevention.NewCharges(l)
	charge(res, 15, 100, 100, true)
	ch = prevention.NewCharges(l)
	ch.Carry(res.Holds())
	charge(ch, 0, 100, 0, true)
	if err := ch.Commit(ctx); err != nil || used() != 85 {
		t.Fatalf("unsettled carried hold: %v, used %d, want 85", err, used())
	}
}

// PeekChargesExcept leaves out of the totals it reads the holds on the
// counter charged that count in the window of the charge, and only those.
func TestPeekChargesExcept(t *testing.T) {
	ctx := context.Background()
	l := &dayLedger{used: map[string]int64{}}
	day := prevention.Counter{TenantID: "acme", Metric: prevention.MetricTokens, Window: prevention.Window{Period: prevention.PeriodDay}}
	cost := prevention.Counter{TenantID: "acme", Metric: prevention.MetricCostCents, Window: prevention.Window{Period: prevention.PeriodDay}}
	reserve := func(c prevention.Counter, at time.Time, amount int64) prevention.Hold {
		t.Helper()
		h, _, ok, err := l.Reserve(ctx, c, at, amount, math.MaxInt64)
		if err != nil || !ok {
			t.Fatal(err)
		}
		return h
	}
	reserve(day, t0, 40) // another run's
	own := []prevention.Hold{
		reserve(day, t0, 60),
		reserve(cost, t0, 1000),                  // another counter
		reserve(day, t0.Add(-24*time.Hour), 500), // another day
		{Counter: day, At: t0, Amount: 0},        // nothing
	}
	peek := func(ch *prevention.Charges, at time.Time, amount, limit, wantTotal int64, wantOK bool) {
		t.Helper()
		total, ok, err := ch.Charge(ctx, day, at, amount, limit)
		if err != nil || ok != wantOK || total != wantTotal {
			t.Fatalf("Charge(%d, limit %d) = %d %v %v, want %d %v", amount, limit, total, ok, err, wantTotal, wantOK)
		}
	}
	peek(prevention.PeekCharges(l), t0, 60, 100, 160, false)            // counted twice
	peek(prevention.PeekChargesExcept(l, own), t0, 60, 100, 100, true)  // 100 - 60 + 60
	peek(prevention.PeekChargesExcept(l, own), t0, 61, 100, 101, false) // a genuine overshoot
	peek(prevention.PeekChargesExcept(l, own), t0.Add(-24*time.Hour), 10, 100, 10, true)
	// A hold given back meanwhile takes the usage no lower than 0.
	peek(prevention.PeekChargesExcept(l, []prevention.Hold{{Counter: day, At: t0, Amount: 1000}}), t0, 5, 100, 5, true)
	ch := prevention.PeekChargesExcept(l, own)
	peek(ch, t0, 60, 100, 100, true)
	if err := ch.Commit(ctx); err != nil || len(ch.Holds()) != 0 || l.used[l.key(day, t0)] != 100 {
		t.Errorf("peek counted: %v, holds %v, used %d", err, ch.Holds(), l.used[l.key(day, t0)])
	}
}
