package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

var _ governance.LedgerStore = (*Store)(nil)

// Ledger returns the store's ledger of tenant counters, for limits that
// span runs. Each charge is one statement or one BEGIN IMMEDIATE
// transaction on the single write connection, so it is atomic against
// every other writer of the file, in this process or another.
func (s *Store) Ledger() prevention.Ledger { return (*ledger)(s) }

type ledger Store

func checkCharge(c prevention.Counter, amount, limit int64) error {
	if c.TenantID == "" || !c.Window.Valid() || amount < 0 || limit < 0 {
		return fmt.Errorf("sqlite: invalid charge of %d against %d on %s (window %+v)", amount, limit, c, c.Window)
	}
	return nil
}

func windowStart(c prevention.Counter, at time.Time) (int64, error) {
	var e enc
	n := e.time("window start", c.Window.Start(at))
	if e.err != nil {
		return 0, e.err
	}
	if n == nil {
		return 0, fmt.Errorf("sqlite: charge on %s at the zero time", c)
	}
	return n.(int64), nil
}

func (l *ledger) usedIn(ctx context.Context, db dbtx, c prevention.Counter, start int64) (int64, error) {
	var used int64
	err := db.QueryRowContext(ctx, `SELECT used FROM ledger_windows WHERE tenant_id = ? AND counter = ? AND window_start = ?`,
		c.TenantID, c.Key(), start).Scan(&used)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return used, err
}

func (l *ledger) Reserve(ctx context.Context, c prevention.Counter, at time.Time, amount, limit int64) (prevention.Hold, int64, bool, error) {
	fail := func(err error) (prevention.Hold, int64, bool, error) {
		return prevention.Hold{}, 0, false, fmt.Errorf("sqlite: reserving %d on %s: %w", amount, c, err)
	}
	if err := checkCharge(c, amount, limit); err != nil {
		return fail(err)
	}
	h := prevention.Hold{Counter: c, At: at, Amount: amount}
	if c.Window.Period == "" {
		return l.chargeRolling(ctx, h, limit, 0)
	}
	start, err := windowStart(c, at)
	if err != nil {
		return fail(err)
	}
	var total int64
	err = l.w.QueryRowContext(ctx, `INSERT INTO ledger_windows AS w (tenant_id, counter, window_start, used)
		SELECT ?1, ?2, ?3, ?4 WHERE ?4 <= ?5
		ON CONFLICT (tenant_id, counter, window_start) DO UPDATE SET used = w.used + excluded.used
		WHERE w.used + excluded.used <= ?5
		RETURNING used`, c.TenantID, c.Key(), start, amount, limit).Scan(&total)
	switch {
	case err == nil:
		return h, total, true, nil
	case !errors.Is(err, sql.ErrNoRows):
		return fail(err)
	}
	used, err := l.usedIn(ctx, l.w, c, start)
	if err != nil {
		return fail(err)
	}
	return prevention.Hold{}, used + amount, false, nil
}

// chargeRolling charges a rolling counter in one BEGIN IMMEDIATE
// transaction: a new hold (id 0) or a change to hold id.
func (l *ledger) chargeRolling(ctx context.Context, h prevention.Hold, limit, id int64) (prevention.Hold, int64, bool, error) {
	c := h.Counter
	var e enc
	at := e.time("charge time", h.At)
	if e.err != nil || at == nil {
		return prevention.Hold{}, 0, false, fmt.Errorf("sqlite: charge on %s at %v: not a storable time", c, h.At)
	}
	lo, hi, prune := c.Window.RollingBounds(h.At)
	var (
		total int64
		ok    bool
	)
	err := (*Store)(l).write(ctx, func(tx *sql.Tx) error {
		var oldAt, oldAmount int64
		if id != 0 {
			err := tx.QueryRowContext(ctx, `SELECT at_ns, amount FROM ledger_events WHERE id = ? AND tenant_id = ? AND counter = ?`,
				id, c.TenantID, c.Key()).Scan(&oldAt, &oldAmount)
			if err != nil {
				return fmt.Errorf("hold %d: %w", id, err)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM ledger_events WHERE tenant_id = ? AND counter = ? AND at_ns <= ?`,
			c.TenantID, c.Key(), prune); err != nil {
			return err
		}
		var sum int64
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(SUM(amount), 0) FROM ledger_events
			WHERE tenant_id = ? AND counter = ? AND at_ns > ? AND at_ns < ? AND id <> ?`,
			c.TenantID, c.Key(), lo, hi, id).Scan(&sum); err != nil {
			return err
		}
		total = sum + h.Amount
		ok = total <= limit || (id != 0 && h.Amount <= oldAmount && at.(int64) == oldAt)
		if !ok {
			return nil
		}
		if id == 0 {
			return tx.QueryRowContext(ctx, `INSERT INTO ledger_events (tenant_id, counter, at_ns, amount) VALUES (?, ?, ?, ?) RETURNING id`,
				c.TenantID, c.Key(), at, h.Amount).Scan(&h.ID)
		}
		h.ID = id
		_, err := tx.ExecContext(ctx, `UPDATE ledger_events SET at_ns = ?, amount = ? WHERE id = ?`, at, h.Amount, id)
		return err
	})
	if err != nil {
		return prevention.Hold{}, 0, false, fmt.Errorf("sqlite: charging %d on %s: %w", h.Amount, c, err)
	}
	if !ok {
		return prevention.Hold{}, total, false, nil
	}
	return h, total, true, nil
}

func (l *ledger) Resize(ctx context.Context, h prevention.Hold, at time.Time, amount, limit int64) (prevention.Hold, int64, bool, error) {
	c := h.Counter
	fail := func(err error) (prevention.Hold, int64, bool, error) {
		return h, 0, false, fmt.Errorf("sqlite: resizing a hold of %d on %s to %d: %w", h.Amount, c, amount, err)
	}
	if err := checkCharge(c, amount, limit); err != nil {
		return fail(err)
	}
	nh := prevention.Hold{Counter: c, At: at, Amount: amount, ID: h.ID}
	if c.Window.Period == "" {
		if h.ID == 0 {
			return fail(errors.New("hold has no id"))
		}
		got, total, ok, err := l.chargeRolling(ctx, nh, limit, h.ID)
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
	err = l.w.QueryRowContext(ctx, `UPDATE ledger_windows SET used = MAX(used + ?4, 0)
		WHERE tenant_id = ?1 AND counter = ?2 AND window_start = ?3 AND (?4 <= 0 OR used + ?4 <= ?5)
		RETURNING used`, c.TenantID, c.Key(), start, delta, limit).Scan(&total)
	switch {
	case err == nil:
		return nh, total, true, nil
	case !errors.Is(err, sql.ErrNoRows):
		return fail(err)
	}
	used, err := l.usedIn(ctx, l.w, c, start)
	if err != nil {
		return fail(err)
	}
	return h, used + delta, false, nil
}

func (l *ledger) Release(ctx context.Context, h prevention.Hold) error {
	c := h.Counter
	if err := checkCharge(c, h.Amount, 0); err != nil {
		return fmt.Errorf("sqlite: releasing: %w", err)
	}
	var err error
	if c.Window.Period == "" {
		_, err = l.w.ExecContext(ctx, `DELETE FROM ledger_events WHERE id = ? AND tenant_id = ? AND counter = ?`, h.ID, c.TenantID, c.Key())
	} else {
		var start int64
		if start, err = windowStart(c, h.At); err == nil {
			_, err = l.w.ExecContext(ctx, `UPDATE ledger_windows SET used = MAX(used - ?4, 0)
				WHERE tenant_id = ?1 AND counter = ?2 AND window_start = ?3`, c.TenantID, c.Key(), start, h.Amount)
		}
	}
	if err != nil {
		return fmt.Errorf("sqlite: releasing %d on %s: %w", h.Amount, c, err)
	}
	return nil
}

func (l *ledger) Usage(ctx context.Context, c prevention.Counter, at time.Time) (int64, error) {
	fail := func(err error) (int64, error) {
		return 0, fmt.Errorf("sqlite: reading %s: %w", c, err)
	}
	if err := checkCharge(c, 0, 0); err != nil {
		return fail(err)
	}
	if c.Window.Period != "" {
		start, err := windowStart(c, at)
		if err != nil {
			return fail(err)
		}
		u, err := l.usedIn(ctx, l.r, c, start)
		if err != nil {
			return fail(err)
		}
		return u, nil
	}
	lo, hi, _ := c.Window.RollingBounds(at)
	var sum int64
	if err := l.r.QueryRowContext(ctx, `SELECT COALESCE(SUM(amount), 0) FROM ledger_events
		WHERE tenant_id = ? AND counter = ? AND at_ns > ? AND at_ns < ?`, c.TenantID, c.Key(), lo, hi).Scan(&sum); err != nil {
		return fail(err)
	}
	return sum, nil
}
