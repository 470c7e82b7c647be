package storetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

// Ledger tests run on stores that implement governance.LedgerStore, and
// are skipped on others (whose runs then cannot use tenant-wide limits).

func ledgerOf(t *testing.T, st governance.Store) prevention.Ledger {
	t.Helper()
	ls, ok := st.(governance.LedgerStore)
	if !ok {
		t.Skipf("%T keeps no ledger (does not implement governance.LedgerStore)", st)
	}
	return ls.Ledger()
}

var (
	dayCost     = prevention.Counter{TenantID: "acme", Metric: prevention.MetricCostCents, Window: prevention.Window{Period: prevention.PeriodDay}}
	monthCost   = prevention.Counter{TenantID: "acme", Metric: prevention.MetricCostCents, Window: prevention.Window{Period: prevention.PeriodMonth}}
	minuteSteps = prevention.Counter{TenantID: "acme", Metric: prevention.MetricSteps, Window: prevention.Window{Rolling: time.Minute}}
)

type ledgerCheck struct {
	t *testing.T
	l prevention.Ledger
}

func (lc ledgerCheck) reserve(c prevention.Counter, at time.Time, amount, limit, wantTotal int64, wantOK bool) prevention.Hold {
	lc.t.Helper()
	h, total, ok, err := lc.l.Reserve(ctx, c, at, amount, limit)
	if err != nil || ok != wantOK || total != wantTotal {
		lc.t.Fatalf("Reserve(%s, %v, %d, limit %d) = total %d, ok %v, %v; want total %d, ok %v",
			c, at.Sub(T0), amount, limit, total, ok, err, wantTotal, wantOK)
	}
	if ok && (h.Amount != amount || h.Counter != c || !h.At.Equal(at)) {
		lc.t.Fatalf("Reserve returned hold %+v", h)
	}
	return h
}

func (lc ledgerCheck) usage(c prevention.Counter, at time.Time, want int64) {
	lc.t.Helper()
	if got, err := lc.l.Usage(ctx, c, at); err != nil || got != want {
		lc.t.Fatalf("Usage(%s, %v) = %d, %v; want %d", c, at.Sub(T0), got, err, want)
	}
}

// testLedgerCalendar: a day's and a month's totals, exact at the limit,
// reserve and release, resize, separate windows and tenants.
func testLedgerCalendar(t *testing.T, open Opener) {
	lc := ledgerCheck{t, ledgerOf(t, open(t))}
	lc.usage(dayCost, T0, 0)
	h60 := lc.reserve(dayCost, T0, 60, 100, 60, true)
	h40 := lc.reserve(dayCost, T0.Add(time.Hour), 40, 100, 100, true) // exactly the limit: allowed
	lc.reserve(dayCost, T0.Add(2*time.Hour), 1, 100, 101, false)      // one over: refused
	lc.usage(dayCost, T0.Add(14*time.Hour), 100)                      // T0 is 09:00: still the same UTC day
	lc.reserve(dayCost, T0, 1, 200, 101, true)                        // another policy's higher limit on the same counter
	// A charge bigger than the limit is refused even on an empty window,
	// and leaves nothing behind.
	lc.reserve(dayCost, T0.Add(48*time.Hour), 7, 5, 7, false)
	lc.usage(dayCost, T0.Add(48*time.Hour), 0)

	if err := lc.l.Release(ctx, h60); err != nil {
		t.Fatal(err)
	}
	lc.usage(dayCost, T0, 41)
	// Resize: down always, up within the limit only, never into another window.
	h, total, ok, err := lc.l.Resize(ctx, h40, h40.At, 10, 100)
	if err != nil || !ok || total != 11 || h.Amount != 10 {
		t.Fatalf("Resize down: %+v %d %v %v", h, total, ok, err)
	}
	if _, total, ok, err := lc.l.Resize(ctx, h, h.At, 100, 100); err != nil || ok || total != 101 {
		t.Fatalf("Resize over the limit: %d %v %v", total, ok, err)
	}
	lc.usage(dayCost, T0, 11)
	if h, total, ok, err = lc.l.Resize(ctx, h, h.At, 99, 100); err != nil || !ok || total != 100 {
		t.Fatalf("Resize up to the limit: %d %v %v", total, ok, err)
	}
	if _, _, ok, err := lc.l.Resize(ctx, h, T0.Add(24*time.Hour), 1, 100); err == nil || ok {
		t.Errorf("Resize into the next day: ok %v, err %v; want an error", ok, err)
	}
	lc.usage(dayCost, T0, 100)

	// The next UTC day, the month, and another tenant are counters of their own.
	next := time.Date(T0.Year(), T0.Month(), T0.Day()+1, 0, 0, 0, 0, time.UTC)
	lc.usage(dayCost, next.Add(-time.Nanosecond), 100)
	lc.usage(dayCost, next, 0)
	lc.reserve(dayCost, next, 100, 100, 100, true)
	lc.usage(monthCost, T0, 0)
	lc.reserve(monthCost, T0, 150, 1000, 150, true)
	lc.reserve(monthCost, next, 150, 1000, 300, true)
	lc.usage(monthCost, time.Date(T0.Year(), T0.Month()+1, 1, 0, 0, 0, 0, time.UTC), 0)
	other := dayCost
	other.TenantID = "globex"
	lc.usage(other, T0, 0)
	lc.reserve(other, T0, 100, 100, 100, true)
	lc.usage(dayCost, T0, 100)
}

// testLedgerRolling: a rolling window counts the holds within its length
// of a charge, before or after it.
func testLedgerRolling(t *testing.T, open Opener) {
	lc := ledgerCheck{t, ledgerOf(t, open(t))}
	sec := func(n int) time.Time { return T0.Add(time.Duration(n) * time.Second) }
	h0 := lc.reserve(minuteSteps, sec(0), 1, 3, 1, true)
	h10 := lc.reserve(minuteSteps, sec(10), 1, 3, 2, true)
	lc.reserve(minuteSteps, sec(20), 1, 3, 3, true) // exactly the limit
	lc.reserve(minuteSteps, sec(30), 1, 3, 4, false)
	lc.usage(minuteSteps, sec(30), 3)
	// 60 s after the first, it no longer counts.
	lc.usage(minuteSteps, sec(60), 2)
	h61 := lc.reserve(minuteSteps, sec(61), 1, 3, 3, true)
	// A charge out of order counts the holds after it too.
	lc.reserve(minuteSteps, sec(5), 1, 3, 5, false)
	if err := lc.l.Release(ctx, h10); err != nil {
		t.Fatal(err)
	}
	lc.usage(minuteSteps, sec(61), 2)
	if err := lc.l.Release(ctx, h0); err != nil {
		t.Fatal(err)
	}
	// Resize: lowering in place always fits; moving or raising is checked.
	h, total, ok, err := lc.l.Resize(ctx, h61, h61.At, 0, 0)
	if err != nil || !ok || total != 1 || h.Amount != 0 {
		t.Fatalf("Resize down in place: %+v %d %v %v", h, total, ok, err)
	}
	if _, total, ok, err := lc.l.Resize(ctx, h, sec(62), 5, 3); err != nil || ok || total != 6 {
		t.Fatalf("Resize over the limit: %d %v %v", total, ok, err)
	}
	if h, total, ok, err = lc.l.Resize(ctx, h, sec(62), 2, 3); err != nil || !ok || total != 3 || !h.At.Equal(sec(62)) {
		t.Fatalf("Resize within the limit: %+v %d %v %v", h, total, ok, err)
	}
	lc.usage(minuteSteps, sec(62), 3)
	if err := lc.l.Release(ctx, h); err != nil {
		t.Fatal(err)
	}
	lc.usage(minuteSteps, sec(62), 1)
	// Long after, everything has rolled out.
	lc.usage(minuteSteps, sec(3600), 0)
	lc.reserve(minuteSteps, sec(3600), 3, 3, 3, true)
	other := minuteSteps
	other.TenantID = "globex"
	lc.usage(other, sec(3600), 0)
}

// testLedgerConcurrent: many charges at once on one counter, at the edge
// of its limit. The limit is never exceeded, and with equal amounts it is
// filled exactly; every hold admitted is counted once.
func testLedgerConcurrent(t *testing.T, open Opener) {
	l := ledgerOf(t, open(t))
	for _, c := range []prevention.Counter{dayCost, minuteSteps} {
		const workers, each, amount, limit = 16, 12, 7, 500
		var admitted atomic.Int64
		var wg sync.WaitGroup
		errs := make(chan error, workers)
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range each {
					at := T0.Add(time.Duration(w*each+i) * time.Millisecond)
					_, total, ok, err := l.Reserve(ctx, c, at, amount, limit)
					if err != nil {
						errs <- err
						return
					}
					if ok {
						admitted.Add(amount)
						if total > limit {
							errs <- errors.New("admitted a charge over the limit")
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Errorf("%s: %v", c, err)
		}
		used, err := l.Usage(ctx, c, T0.Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if want := int64(limit / amount * amount); admitted.Load() != want || used != want {
			t.Errorf("%s: admitted %d, usage %d; want both %d (limit %d)", c, admitted.Load(), used, want, limit)
		}
	}
}
