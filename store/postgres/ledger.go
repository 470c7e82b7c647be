package postgres

import (
	"context"

	"github.com/stopline/stopline/prevention"
)

// chargeRolling charges a rolling counter with one call of the
// stopline_ledger_charge function (sqlstore.ChargeRolling), which takes a
// transaction-level advisory lock on the counter before it sums the
// window: a new hold (id 0) or a change to hold id.
func (s *Store) chargeRolling(ctx context.Context, h prevention.Hold, at, limit, id int64) (holdID, total int64, ok bool, err error) {
	var idArg, got *int64
	if id != 0 {
		idArg = &id
	}
	lo, hi, prune := h.Counter.Window.RollingBounds(h.At)
	err = s.pool.QueryRow(ctx, `SELECT hold_id, total, ok FROM stopline_ledger_charge($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		h.Counter.TenantID, h.Counter.Key(), lockClassLedger, idArg, at, lo, hi, prune, h.Amount, limit).
		Scan(&got, &total, &ok)
	if got != nil {
		holdID = *got
	}
	return holdID, total, ok, err
}
