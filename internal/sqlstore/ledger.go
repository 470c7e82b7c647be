package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/stopline/stopline/prevention"
)

// ChargeRolling charges a rolling window of h.Counter at time at (unix
// nanoseconds): a new hold when id is 0, else a change to hold id. It
// returns the hold's id, the window's total with the charge, and whether
// the charge fitted within limit (and was made). How the sum and the add
// are made atomic is the database's: each store brings its own.
type ChargeRolling func(ctx context.Context, h prevention.Hold, at, limit, id int64) (holdID, total int64, ok bool, err error)

// Ledger is a prevention.Ledger over a DB: calendar windows are single
// conditional statements, the same in every dialect; rolling windows are
// charged by the store's ChargeRolling.
type Ledger struct {
	db      *DB
	rolling ChargeRolling
}

// NewLedger returns the ledger of db, charging rolling windows with rolling.
func NewLedger(db *DB, rolling ChargeRolling) *Ledger { return &Ledger{db: db, rolling: rolling} }

var _ prevention.Ledger = (*Ledger)(nil)

func (l *Ledger) checkCharge(c prevention.Counter, amount, limit int64) error {
	if c.TenantID == "" || !c.Window.Valid() || amount < 0 || limit < 0 {
		return l.db.errorf("invalid charge of %d against %d on %s (window %+v)", amount, limit, c, c.Window)
	}
	return nil
}

// windowStart is the calendar window of c that contains at, in unix
// nanoseconds.
func (l *Ledger) windowStart(c prevention.Counter, at time.Time) (int64, error) {
	e := l.db.Enc()
	n := e.Time("window start", c.Window.Start(at))
	if e.Err != nil {
		return 0, e.Err
	}
	if n == nil {
		return 0, l.db.errorf("charge on %s at the zero time", c)
	}
	return n.(int64), nil
}

// usedIn is a calendar window's total, 0 for a window without a row.
func (l *Ledger) usedIn(ctx context.Context, q Querier, c prevention.Counter, start int64) (int64, error) {
	var used int64
	err := q.QueryRow(ctx, `SELECT used FROM ledger_windows WHERE tenant_id = $1 AND counter = $2 AND window_start = $3`,
		c.TenantID, c.Key(), start).Scan(&used)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return used, err
}

// reserveWindowSQL adds $4 to a calendar window if the result is at most
// $5, in one statement: ON CONFLICT DO UPDATE evaluates its WHERE against
// the latest committed total under the row's lock (PostgreSQL) or the
// write lock (SQLite), so concurrent charges never take it past the
// limit. No row comes back when the charge does not fit. (The casts give
// PostgreSQL the parameters' types.)
const reserveWindowSQL = `INSERT INTO ledger_windows AS w (tenant_id, counter, window_start, used)
	SELECT CAST($1 AS text), CAST($2 AS text), CAST($3 AS bigint), CAST($4 AS bigint)
	WHERE CAST($4 AS bigint) <= CAST($5 AS bigint)
	ON CONFLICT (tenant_id, counter, window_start) DO UPDATE SET used = w.used + excluded.used
	WHERE w.used + excluded.used <= CAST($5 AS bigint)
	RETURNING used`

// Reserve implements prevention.Ledger.
func (l *Ledger) Reserve(ctx context.Context, c prevention.Counter, at time.Time, amount, limit int64) (prevention.Hold, int64, bool, error) {
	fail := func(err error) (prevention.Hold, int64, bool, error) {
		return prevention.Hold{}, 0, false, l.db.errorf("reserving %d on %s: %w", amount, c, err)
	}
	if err := l.checkCharge(c, amount, limit); err != nil {
		return fail(err)
	}
	h := prevention.Hold{Counter: c, At: at, Amount: amount}
	if c.Window.Period == "" {
		return l.chargeRolling(ctx, h, limit, 0)
	}
	start, err := l.windowStart(c, at)
	if err != nil {
		return fail(err)
	}
	var total int64
	err = l.db.W.QueryRow(ctx, reserveWindowSQL, c.TenantID, c.Key(), start, amount, limit).Scan(&total)
	switch {
	case err == nil:
		return h, total, true, nil
	case !errors.Is(err, sql.ErrNoRows):
		return fail(err)
	}
	used, err := l.usedIn(ctx, l.db.W, c, start)
	if err != nil {
		return fail(err)
	}
	return prevention.Hold{}, used + amount, false, nil
}

// chargeRolling charges a rolling counter: a new hold (id 0) or a change
// to hold id.
func (l *Ledger) chargeRolling(ctx context.Context, h prevention.Hold, limit, id int64) (prevention.Hold, int64, bool, error) {
	e := l.db.Enc()
	at := e.Time("charge time", h.At)
	if e.Err != nil || at == nil {
		return prevention.Hold{}, 0, false, l.db.errorf("charge on %s at %v: %w", h.Counter, h.At, errors.Join(e.Err, errors.New("not a storable time")))
	}
	holdID, total, ok, err := l.rolling(ctx, h, at.(int64), limit, id)
	if err != nil {
		return prevention.Hold{}, 0, false, l.db.errorf("charging %d on %s: %w", h.Amount, h.Counter, err)
	}
	if !ok {
		return prevention.Hold{}, total, false, nil
	}
	h.ID = holdID
	return h, total, true, nil
}

// Resize implements prevention.Ledger.
func (l *Ledger) Resize(ctx context.Context, h prevention.Hold, at time.Time, amount, limit int64) (prevention.Hold, int64, bool, error) {
	c := h.Counter
	fail := func(err error) (prevention.Hold, int64, bool, error) {
		return h, 0, false, l.db.errorf("resizing a hold of %d on %s to %d: %w", h.Amount, c, amount, err)
	}
	if err := l.checkCharge(c, amount, limit); err != nil {
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
	start, err := l.windowStart(c, h.At)
	if err != nil {
		return fail(err)
	}
	if s2, err := l.windowStart(c, at); err != nil || s2 != start {
		return fail(errors.New("the new time is in another window"))
	}
	delta := amount - h.Amount
	var total int64
	err = l.db.W.QueryRow(ctx, `UPDATE ledger_windows
		SET used = CASE WHEN used + CAST($4 AS bigint) > 0 THEN used + CAST($4 AS bigint) ELSE 0 END
		WHERE tenant_id = $1 AND counter = $2 AND window_start = $3
		AND (CAST($4 AS bigint) <= 0 OR used + CAST($4 AS bigint) <= CAST($5 AS bigint))
		RETURNING used`, c.TenantID, c.Key(), start, delta, limit).Scan(&total)
	switch {
	case err == nil:
		return nh, total, true, nil
	case !errors.Is(err, sql.ErrNoRows):
		return fail(err)
	}
	used, err := l.usedIn(ctx, l.db.W, c, start)
	if err != nil {
		return fail(err)
	}
	return h, used + delta, false, nil
}

// Release implements prevention.Ledger.
func (l *Ledger) Release(ctx context.Context, h prevention.Hold) error {
	c := h.Counter
	if err := l.checkCharge(c, h.Amount, 0); err != nil {
		return l.db.errorf("releasing: %w", err)
	}
	var err error
	if c.Window.Period == "" {
		_, err = l.db.W.Exec(ctx, `DELETE FROM ledger_events WHERE tenant_id = $1 AND counter = $2 AND id = $3`,
			c.TenantID, c.Key(), h.ID)
	} else {
		var start int64
		if start, err = l.windowStart(c, h.At); err == nil {
			_, err = l.db.W.Exec(ctx, `UPDATE ledger_windows
				SET used = CASE WHEN used > CAST($4 AS bigint) THEN used - CAST($4 AS bigint) ELSE 0 END
				WHERE tenant_id = $1 AND counter = $2 AND window_start = $3`, c.TenantID, c.Key(), start, h.Amount)
		}
	}
	if err != nil {
		return l.db.errorf("releasing %d on %s: %w", h.Amount, c, err)
	}
	return nil
}

// Usage implements prevention.Ledger.
func (l *Ledger) Usage(ctx context.Context, c prevention.Counter, at time.Time) (int64, error) {
	fail := func(err error) (int64, error) {
		return 0, l.db.errorf("reading %s: %w", c, err)
	}
	if err := l.checkCharge(c, 0, 0); err != nil {
		return fail(err)
	}
	if c.Window.Period != "" {
		start, err := l.windowStart(c, at)
		if err != nil {
			return fail(err)
		}
		u, err := l.usedIn(ctx, l.db.R, c, start)
		if err != nil {
			return fail(err)
		}
		return u, nil
	}
	lo, hi, _ := c.Window.RollingBounds(at)
	var sum int64
	if err := l.db.R.QueryRow(ctx, `SELECT CAST(COALESCE(SUM(amount), 0) AS bigint) FROM ledger_events
		WHERE tenant_id = $1 AND counter = $2 AND at_ns > $3 AND at_ns < $4`, c.TenantID, c.Key(), lo, hi).Scan(&sum); err != nil {
		return fail(err)
	}
	return sum, nil
}
