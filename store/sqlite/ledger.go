package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/stopline/stopline/prevention"
)

// chargeRolling charges a rolling counter in one BEGIN IMMEDIATE
// transaction (sqlstore.ChargeRolling): it prunes holds that can no
// longer count, sums the window and adds the hold (or changes hold id)
// only if the sum stays within limit.
func (s *Store) chargeRolling(ctx context.Context, h prevention.Hold, at, limit, id int64) (holdID, total int64, ok bool, err error) {
	c := h.Counter
	lo, hi, prune := c.Window.RollingBounds(h.At)
	err = inTx(ctx, s.w, func(tx *sql.Tx) error {
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
		ok = total <= limit || (id != 0 && h.Amount <= oldAmount && at == oldAt)
		if !ok {
			return nil
		}
		if id == 0 {
			return tx.QueryRowContext(ctx, `INSERT INTO ledger_events (tenant_id, counter, at_ns, amount) VALUES (?, ?, ?, ?) RETURNING id`,
				c.TenantID, c.Key(), at, h.Amount).Scan(&holdID)
		}
		holdID = id
		_, err := tx.ExecContext(ctx, `UPDATE ledger_events SET at_ns = ?, amount = ? WHERE id = ?`, at, h.Amount, id)
		return err
	})
	return holdID, total, ok, err
}
