package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

var _ governance.LedgerStore = (*Store)(nil)

// Ledger returns the store's ledger of tenant counters, for limits that
// span runs. Every charge is one statement, atomic across all replicas
// (see the package documentation).
func (s *Store) Ledger() prevention.Ledger { return (*ledger)(s) }

type ledger Store

func checkCharge(c prevention.Counter, amount, limit int64) error {
	if c.TenantID == "" || !c.Window.Valid() || amount < 0 || limit < 0 {
		return fmt.Errorf("postgres: invalid charge of %d against %d on %s (window %+v)", amount, limit, c, c.Window)
	}
	return nil
}

// windowStart is the calendar window of c that contains at, in unix
// nanoseconds.
func windowStart(c prevention.Counter, at time.Time) (int64, error) {
	var e enc
	n := e.time("window start", c.Window.Start(at))
	if e.err != nil {
		return 0, e.err
	}
	if n == nil {
		return 0, fmt.Errorf("postgres: charge on %s at the zero time", c)
	}
	return *n, nil
}

// reserveWindowSQL adds $4 to a calendar window if the result is at most
// $5. ON CONFLICT DO UPDATE waits for the row's lock and evaluates its
// WHERE against the latest committed total, so concurrent charges from
// any number of replicas never take it past the limit. No row comes back
// when the charge does not fit.
const reserveWindowSQL = `INSERT INTO ledger_windows AS w (tenant_id, counter, window_start, used)
	SELECT $1::text, $2::text, $3::bigint, $4::bigint WHERE $4::bigint <= $5::bigint
	ON CONFLICT (tenant_id, counter, window_start) DO UPDATE SET used = w.used + EXCLUDED.used
	WHERE w.used + EXCLUDED.used <= $5::bigint
	RETURNING used`

func (l *ledger) usedIn(ctx context.Context, c prevention.Counter, start int64) (int64, error) {
	var used int64
	err := l.pool.QueryRow(ctx, `SELECT used FROM ledger_windows WHERE tenant_id = $1 AND counter = $2 AND window_start = $3`,
		c.TenantID, c.Key(), start).Scan(&used)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return used, err
}

func (l *ledger) Reserve(ctx context.Context, c prevention.Counter, at time.Time, amount, limit int64) (prevention.Hold, int64, bool, error) {
	fail := func(err error) (prevention.Hold, int64, bool, error) {
		return prevention.Hold{}, 0, false, fmt.Errorf("postgres: reserving %d on %s: %w", amount, c, err)
	}
	if err := checkCharge(c, amount, limit); err != nil {
		return fail(err)
	}
	h := prevention.Hold{Counter: c, At: at, Amount: amount}
	if c.Window.Period == "" {
		return l.chargeRolling(ctx, h, limit, nil)
	}
	start, err := windowStart(c, at)
	if err != nil {
		return fail(err)
	}
	var total int64
	err = l.pool.QueryRow(ctx, reserveWindowSQL, c.TenantID, c.Key(), start, amount, limit).Scan(&total)
	switch {
	case err == nil:
		return h, total, true, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return fail(err)
	}
	used, err := l.usedIn(ctx, c, start)
	if err != nil {
		return fail(err)
	}
	return prevention.Hold{}, used + amount, false, nil
}

// chargeRolling charges a rolling counter with stopline_ledger_charge: a
// new hold, or (id not nil) a change to hold *id.
func (l *ledger) chargeRolling(ctx context.Context, h prevention.Hold, limit int64, id *int64) (prevention.Hold, int64, bool, error) {
	var e enc
	at := e.time("charge time", h.At)
	if e.err != nil || at == nil {
		return prevention.Hold{}, 0, false, fmt.Errorf("postgres: charge on %s at %v: %w", h.Counter, h.At, errors.Join(e.err, errors.New("not a storable time")))
	}
	var (
		holdID *int64
		total  int64
		ok     bool
	)
	lo, hi, prune := h.Counter.Window.RollingBounds(h.At)
	err := l.pool.QueryRow(ctx, `SELECT hold_id, total, ok FROM stopline_ledger_charge($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		h.Counter.TenantID, h.Counter.Key(), lockClassLedger, id, *at, lo, hi, prune, h.Amount, limit).
		Scan(&holdID, &total, &ok)
	if err != nil {
		return prevention.Hold{}, 0, false, fmt.Errorf("postgres: charging %d on %s: %w", h.Amount, h.Counter, err)
	}
	if !ok {
		return prevention.Hold{}, total, false, nil
	}
	h.ID = *holdID
	return h, total, true, nil
}

func (l *ledger) Resize(ctx context.Context, h prevention.Hold, at time.Time, amount, limit int64) (prevention.Hold, int64, bool, error) {
	c := h.Counter
	fail := func(err error) (prevention.Hold, int64, bool, error) {
		return h, 0, false, fmt.Errorf("postgres: resizing a hold of %d on %s to %d: %w", h.Amount, c, amount, err)
	}
	if err := checkCharge(c, amount, limit); err != nil {
		return fail(err)
	}
	nh := prevention.Hold{Counter: c, At: at, Amount: amount, ID: h.ID}
	if c.Window.Period == "" {
		id := h.ID
		got, total, ok, err := l.chargeRolling(ctx, nh, limit, &id)
		if err != nil {
			return fail(err)
		}
		if !ok {
			return h, total, false, nil
		}
		return got, total, true, nil
	}
	start, err := windowStart(c, h.At)
	if err != nil {
		return fail(err)
	}
	if s2, err := windowStart(c, at); err != nil || s2 != start {
		return fail(errors.New("the new time is in another window"))
	}
	delta := amount - h.Amount
	var total int64
	err = l.pool.QueryRow(ctx, `UPDATE ledger_windows SET used = GREATEST(used + $4::bigint, 0)
		WHERE tenant_id = $1 AND counter = $2 AND window_start = $3 AND ($4::bigint <= 0 OR used + $4::bigint <= $5::bigint)
		RETURNING used`, c.TenantID, c.Key(), start, delta, limit).Scan(&total)
	switch {
	case err == nil:
		return nh, total, true, nil
	case !errors.Is(err, pgx.ErrNoRows):
		return fail(err)
	}
	used, err := l.usedIn(ctx, c, start)
	if err != nil {
		return fail(err)
	}
	return h, used + delta, false, nil
}

func (l *ledger) Release(ctx context.Context, h prevention.Hold) error {
	c := h.Counter
	if err := checkCharge(c, h.Amount, 0); err != nil {
		return fmt.Errorf("postgres: releasing: %w", err)
	}
	var err error
	if c.Window.Period == "" {
		_, err = l.pool.Exec(ctx, `DELETE FROM ledger_events WHERE tenant_id = $1 AND counter = $2 AND id = $3`,
			c.TenantID, c.Key(), h.ID)
	} else {
		var start int64
		if start, err = windowStart(c, h.At); err == nil {
			_, err = l.pool.Exec(ctx, `UPDATE ledger_windows SET used = GREATEST(used - $4::bigint, 0)
				WHERE tenant_id = $1 AND counter = $2 AND window_start = $3`, c.TenantID, c.Key(), start, h.Amount)
		}
	}
	if err != nil {
		return fmt.Errorf("postgres: releasing %d on %s: %w", h.Amount, c, err)
	}
	return nil
}

func (l *ledger) Usage(ctx context.Context, c prevention.Counter, at time.Time) (int64, error) {
	fail := func(err error) (int64, error) {
		return 0, fmt.Errorf("postgres: reading %s: %w", c, err)
	}
	if err := checkCharge(c, 0, 0); err != nil {
		return fail(err)
	}
	if c.Window.Period != "" {
		start, err := windowStart(c, at)
		if err != nil {
			return fail(err)
		}
		u, err := l.usedIn(ctx, c, start)
		if err != nil {
			return fail(err)
		}
		return u, nil
	}
	lo, hi, _ := c.Window.RollingBounds(at)
	var sum int64
	err := l.pool.QueryRow(ctx, `SELECT COALESCE(SUM(amount), 0)::bigint FROM ledger_events
		WHERE tenant_id = $1 AND counter = $2 AND at_ns > $3 AND at_ns < $4`,
		c.TenantID, c.Key(), lo, hi).Scan(&sum)
	if err != nil {
		return fail(err)
	}
	return sum, nil
}
