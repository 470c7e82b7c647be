package memstore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

var _ governance.LedgerStore = (*Store)(nil)

// Ledger returns the store's ledger of tenant counters: calendar windows
// as one total per window, rolling windows as the list of their holds.
// Every method holds the ledger's lock, so each is atomic.
func (s *Store) Ledger() prevention.Ledger { return (*ledger)(&s.ledger) }

// ledgerState is the Store's ledger; its zero value is empty.
type ledgerState struct {
	mu      sync.Mutex
	windows map[windowKey]int64
	events  map[counterKey]map[int64]event
	nextID  int64
}

type counterKey struct{ tenant, counter string }

type windowKey struct {
	counterKey
	start int64
}

type event struct {
	at     int64
	amount int64
}

type ledger ledgerState

func counterOf(c prevention.Counter) counterKey { return counterKey{c.TenantID, c.Key()} }

func checkCounter(c prevention.Counter, amount, limit int64) error {
	if c.TenantID == "" || !c.Window.Valid() || amount < 0 || limit < 0 {
		return fmt.Errorf("memstore: invalid charge of %d against %d on %s (window %+v)", amount, limit, c, c.Window)
	}
	return nil
}

// rollingSum adds up the holds of a rolling counter within d of at,
// except the one with id skip.
func (l *ledger) rollingSum(k counterKey, at time.Time, d time.Duration, skip int64) int64 {
	var sum int64
	lo, hi, _ := prevention.Window{Rolling: d}.RollingBounds(at)
	for id, e := range l.events[k] {
		if id != skip && e.at > lo && e.at < hi {
			sum += e.amount
		}
	}
	return sum
}

func (l *ledger) Reserve(_ context.Context, c prevention.Counter, at time.Time, amount, limit int64) (prevention.Hold, int64, bool, error) {
	if err := checkCounter(c, amount, limit); err != nil {
		return prevention.Hold{}, 0, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := counterOf(c)
	h := prevention.Hold{Counter: c, At: at, Amount: amount}
	if c.Window.Period != "" {
		wk := windowKey{k, c.Window.Start(at).UnixNano()}
		total := l.windows[wk] + amount
		if total > limit || total < 0 {
			return prevention.Hold{}, total, false, nil
		}
		if l.windows == nil {
			l.windows = map[windowKey]int64{}
		}
		l.windows[wk] = total
		return h, total, true, nil
	}
	total := l.rollingSum(k, at, c.Window.Rolling, 0) + amount
	if total > limit || total < 0 {
		return prevention.Hold{}, total, false, nil
	}
	if l.events == nil {
		l.events = map[counterKey]map[int64]event{}
	}
	if l.events[k] == nil {
		l.events[k] = map[int64]event{}
	}
	l.nextID++
	h.ID = l.nextID
	l.events[k][h.ID] = event{at: at.UnixNano(), amount: amount}
	l.prune(k, at, c.Window.Rolling)
	return h, total, true, nil
}

// prune forgets holds of a rolling counter too old to count at at again.
func (l *ledger) prune(k counterKey, at time.Time, d time.Duration) {
	_, _, old := prevention.Window{Rolling: d}.RollingBounds(at)
	for id, e := range l.events[k] {
		if e.at <= old {
			delete(l.events[k], id)
		}
	}
}

func (l *ledger) Resize(_ context.Context, h prevention.Hold, at time.Time, amount, limit int64) (prevention.Hold, int64, bool, error) {
	c := h.Counter
	if err := checkCounter(c, amount, limit); err != nil {
		return h, 0, false, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := counterOf(c)
	nh := prevention.Hold{Counter: c, At: at, Amount: amount, ID: h.ID}
	if c.Window.Period != "" {
		start := c.Window.Start(h.At).UnixNano()
		if c.Window.Start(at).UnixNano() != start {
			return h, 0, false, fmt.Errorf("memstore: resizing a hold of %s into another window", c)
		}
		wk := windowKey{k, start}
		total := l.windows[wk] - h.Amount + amount
		if amount > h.Amount && total > limit {
			return h, total, false, nil
		}
		if l.windows == nil {
			l.windows = map[windowKey]int64{}
		}
		l.windows[wk] = max(total, 0)
		return nh, total, true, nil
	}
	old, ok := l.events[k][h.ID]
	if !ok {
		return h, 0, false, fmt.Errorf("memstore: no hold %d on %s", h.ID, c)
	}
	total := l.rollingSum(k, at, c.Window.Rolling, h.ID) + amount
	if !(amount <= old.amount && at.UnixNano() == old.at) && total > limit {
		return h, total, false, nil
	}
	l.events[k][h.ID] = event{at: at.UnixNano(), amount: amount}
	return nh, total, true, nil
}

func (l *ledger) Release(_ context.Context, h prevention.Hold) error {
	c := h.Counter
	if err := checkCounter(c, h.Amount, 0); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := counterOf(c)
	if c.Window.Period != "" {
		wk := windowKey{k, c.Window.Start(h.At).UnixNano()}
		if v, ok := l.windows[wk]; ok {
			l.windows[wk] = max(v-h.Amount, 0)
		}
		return nil
	}
	delete(l.events[k], h.ID)
	return nil
}

func (l *ledger) Usage(_ context.Context, c prevention.Counter, at time.Time) (int64, error) {
	if err := checkCounter(c, 0, 0); err != nil {
		return 0, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.Window.Period != "" {
		return l.windows[windowKey{counterOf(c), c.Window.Start(at).UnixNano()}], nil
	}
	return l.rollingSum(counterOf(c), at, c.Window.Rolling, 0), nil
}
