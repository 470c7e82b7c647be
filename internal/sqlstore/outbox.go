package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stopline/stopline/governance"
)

// The outbox (governance.OutboxStore): the deliveries CloseRun writes with
// a run's end, and their claims, acknowledgements and failures.

const insertDeliverySQL = `INSERT INTO outbox
	(tenant_id, id, sink, event, run_id, incident_id, payload, created_at, next_attempt_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)`

const deliveryColumns = `tenant_id, id, sink, event, run_id, incident_id, payload, created_at,
	attempts, next_attempt_at, owner, last_error, delivered_at, dead_at`

// deliveryArgs are the arguments of insertDeliverySQL.
func (db *DB) deliveryArgs(d *governance.Delivery) ([]any, error) {
	e := db.Enc()
	at := e.Time("created_at", d.CreatedAt)
	if e.Err != nil {
		return nil, e.Err
	}
	return []any{d.TenantID, d.ID, d.Sink, d.Event, d.RunID, d.IncidentID, string(d.Payload), at}, nil
}

func scanDelivery(r Row) (governance.Delivery, error) {
	var (
		d               governance.Delivery
		payload         string
		created, next   int64
		delivered, dead *int64
		attempts        int64
	)
	err := r.Scan(&d.TenantID, &d.ID, &d.Sink, &d.Event, &d.RunID, &d.IncidentID, &payload, &created,
		&attempts, &next, &d.Owner, &d.LastError, &delivered, &dead)
	d.Payload = []byte(payload)
	d.CreatedAt, d.NextAttemptAt = TimeOf(&created), TimeOf(&next)
	d.Attempts = int(attempts)
	d.DeliveredAt, d.DeadAt = timePtrOf(delivered), timePtrOf(dead)
	return d, err
}

// ClaimDeliveries leases due deliveries to c.Owner (see
// governance.OutboxStore), in one statement; the dialect's ClaimLock
// makes concurrent claims skip each other's rows.
func (db *DB) ClaimDeliveries(ctx context.Context, c governance.DeliveryClaim) ([]governance.Delivery, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	e := db.Enc()
	now := e.Time("now", c.Now)
	until := e.Time("lease end", c.Now.Add(c.Lease))
	if e.Err != nil {
		return nil, db.errorf("claiming deliveries: %w", e.Err)
	}
	args := []any{c.Owner, until, now, int64(c.Limit)}
	marks := make([]string, len(c.Sinks))
	for i, s := range c.Sinks {
		args = append(args, s)
		marks[i] = "$" + strconv.Itoa(len(args))
	}
	q := `UPDATE outbox SET owner = $1, next_attempt_at = $2, attempts = attempts + 1
	WHERE (tenant_id, id) IN (SELECT tenant_id, id FROM outbox
		WHERE delivered_at IS NULL AND dead_at IS NULL AND next_attempt_at <= $3
		AND sink IN (` + strings.Join(marks, ", ") + `)
		ORDER BY next_attempt_at LIMIT $4` + db.ClaimLock + `)
	RETURNING ` + deliveryColumns
	rows, err := db.W.Query(ctx, q, args...)
	out, err := collect(rows, err, scanDelivery)
	if err != nil {
		return nil, db.errorf("claiming deliveries for %s: %w", c.Owner, err)
	}
	return out, nil
}

// deliveryExists tells whether the tenant has the delivery.
func (db *DB) deliveryExists(ctx context.Context, tenantID, id string) (bool, error) {
	var one int
	err := db.R.QueryRow(ctx, `SELECT 1 FROM outbox WHERE tenant_id = $1 AND id = $2`, tenantID, id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// unchanged explains an UPDATE of a delivery that changed no row: it is
// unknown (governance.ErrNotFound), or already in a state the update
// leaves alone (nil, or lost when it is not nil).
func (db *DB) unchanged(ctx context.Context, what, tenantID, id string, lost error) error {
	ok, err := db.deliveryExists(ctx, tenantID, id)
	switch {
	case err != nil:
		return db.errorf("%s delivery %s of tenant %s: %w", what, id, tenantID, err)
	case !ok:
		return db.errorf("%s delivery %s of tenant %s: %w", what, id, tenantID, governance.ErrNotFound)
	case lost != nil:
		return db.errorf("%s delivery %s of tenant %s: %w", what, id, tenantID, lost)
	}
	return nil
}

// AckDelivery marks a delivery delivered (see governance.OutboxStore).
func (db *DB) AckDelivery(ctx context.Context, tenantID, id string, at time.Time) error {
	e := db.Enc()
	t := e.Time("delivered_at", at)
	if e.Err != nil {
		return db.errorf("acknowledging delivery %s of tenant %s: %w", id, tenantID, e.Err)
	}
	n, err := db.W.Exec(ctx, `UPDATE outbox SET delivered_at = $3, dead_at = NULL, owner = ''
		WHERE tenant_id = $1 AND id = $2 AND delivered_at IS NULL`, tenantID, id, t)
	if err != nil {
		return db.errorf("acknowledging delivery %s of tenant %s: %w", id, tenantID, err)
	}
	if n == 0 {
		return db.unchanged(ctx, "acknowledging", tenantID, id, nil)
	}
	return nil
}

// FailDelivery records a failed attempt (see governance.OutboxStore).
func (db *DB) FailDelivery(ctx context.Context, f governance.DeliveryFailure) error {
	if err := f.Validate(); err != nil {
		return err
	}
	e := db.Enc()
	at, retry := e.Time("failed at", f.At), e.Time("retry at", f.RetryAt)
	if e.Err != nil {
		return db.errorf("failing delivery %s of tenant %s: %w", f.ID, f.TenantID, e.Err)
	}
	const where = ` WHERE tenant_id = $1 AND id = $2 AND owner = $3 AND attempts = $4
		AND delivered_at IS NULL AND dead_at IS NULL`
	var (
		n   int64
		err error
	)
	if f.Dead {
		n, err = db.W.Exec(ctx, `UPDATE outbox SET owner = '', last_error = $5, dead_at = $6`+where,
			f.TenantID, f.ID, f.Owner, int64(f.Attempt), f.Error, at)
	} else {
		n, err = db.W.Exec(ctx, `UPDATE outbox SET owner = '', last_error = $5, next_attempt_at = $6`+where,
			f.TenantID, f.ID, f.Owner, int64(f.Attempt), f.Error, retry)
	}
	if err != nil {
		return db.errorf("failing delivery %s of tenant %s: %w", f.ID, f.TenantID, err)
	}
	if n == 0 {
		return db.unchanged(ctx, "failing", f.TenantID, f.ID,
			fmt.Errorf("attempt %d by %s: %w", f.Attempt, f.Owner, governance.ErrLeaseLost))
	}
	return nil
}

// RetryDelivery makes a dead delivery due again (see
// governance.OutboxStore).
func (db *DB) RetryDelivery(ctx context.Context, tenantID, id string, at time.Time) error {
	e := db.Enc()
	t := e.Time("retry at", at)
	if e.Err != nil {
		return db.errorf("retrying delivery %s of tenant %s: %w", id, tenantID, e.Err)
	}
	n, err := db.W.Exec(ctx, `UPDATE outbox SET dead_at = NULL, next_attempt_at = $3
		WHERE tenant_id = $1 AND id = $2 AND dead_at IS NOT NULL AND delivered_at IS NULL`, tenantID, id, t)
	if err != nil {
		return db.errorf("retrying delivery %s of tenant %s: %w", id, tenantID, err)
	}
	if n == 0 {
		return db.unchanged(ctx, "retrying", tenantID, id, nil)
	}
	return nil
}

// Deliveries lists a tenant's deliveries, newest (by CreatedAt, then by
// insertion) first, filtered.
func (db *DB) Deliveries(ctx context.Context, f governance.DeliveryFilter) ([]governance.Delivery, error) {
	var w filter
	w.add("tenant_id = ?", f.TenantID)
	if f.RunID != "" {
		w.add("run_id = ?", f.RunID)
	}
	if f.Sink != "" {
		w.add("sink = ?", f.Sink)
	}
	switch f.State {
	case "":
	case governance.DeliveryPending:
		w.where = append(w.where, "delivered_at IS NULL AND dead_at IS NULL")
	case governance.DeliveryDelivered:
		w.where = append(w.where, "delivered_at IS NOT NULL")
	case governance.DeliveryDead:
		w.where = append(w.where, "dead_at IS NOT NULL AND delivered_at IS NULL")
	default:
		return nil, db.errorf("listing deliveries of tenant %s: unknown state %q", f.TenantID, f.State)
	}
	out, err := list(ctx, db, `SELECT `+deliveryColumns+` FROM outbox`, &w, "", f.Limit, scanDelivery)
	if err != nil {
		return nil, db.errorf("listing deliveries of tenant %s: %w", f.TenantID, err)
	}
	return out, nil
}
