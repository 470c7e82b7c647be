package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

// PutHold stores a new pending hold (governance.HoldStore). An id
// already stored is governance.ErrHoldExists; an unknown run
// governance.ErrNotFound.
func (db *DB) PutHold(ctx context.Context, h governance.Hold) error {
	fail := func(err error) error { return db.errorf("storing hold %s of tenant %s: %w", h.ID, h.TenantID, err) }
	if h.TenantID == "" || h.ID == "" || h.RunID == "" || h.Status != governance.HoldPending {
		return fail(errors.New("a pending hold needs a tenant, an id and a run"))
	}
	en := db.Enc()
	req, dl := en.Time("requested_at", h.RequestedAt), en.Time("deadline", h.Deadline)
	if en.Err != nil {
		return fail(en.Err)
	}
	if req == nil || dl == nil {
		return fail(errors.New("a hold needs its request time and deadline"))
	}
	_, err := db.W.Exec(ctx, `INSERT INTO holds
		(tenant_id, hold_id, run_id, step_index, step_type, tool, cost_cents, policy_id, source, message,
		 requested_at, deadline, status, answered_by, answer_reason, answered_at, step)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'pending', '', '', NULL, $13)`,
		h.TenantID, h.ID, h.RunID, int64(h.StepIndex), string(h.StepType), h.Tool, h.CostCents, h.PolicyID, string(h.Source), h.Message,
		req, dl, h.Step)
	switch {
	case err != nil && db.Classify(err) == PrimaryKeyTaken:
		return fail(governance.ErrHoldExists)
	case err != nil && db.Classify(err) == MissingReference:
		return fail(fmt.Errorf("run %s: %w", h.RunID, governance.ErrNotFound))
	case err != nil:
		return fail(err)
	}
	return nil
}

const holdColumns = `tenant_id, hold_id, run_id, step_index, step_type, tool, cost_cents, policy_id, source, message,
	requested_at, deadline, status, answered_by, answer_reason, answered_at`

func scanHold(r Row, step bool) (governance.Hold, error) {
	var (
		h                 governance.Hold
		idx               int64
		typ, source, stat string
		req, dl           int64
		ans               *int64
	)
	dest := []any{&h.TenantID, &h.ID, &h.RunID, &idx, &typ, &h.Tool, &h.CostCents, &h.PolicyID, &source, &h.Message,
		&req, &dl, &stat, &h.AnsweredBy, &h.AnswerReason, &ans}
	if step {
		dest = append(dest, &h.Step)
	}
	if err := r.Scan(dest...); err != nil {
		return h, err
	}
	h.StepIndex, h.StepType, h.Source, h.Status = int(idx), prevention.StepType(typ), prevention.Source(source), governance.HoldStatus(stat)
	h.RequestedAt, h.Deadline, h.AnsweredAt = TimeOf(&req), TimeOf(&dl), timePtrOf(ans)
	return h, nil
}

// Hold returns one hold with its held step, or governance.ErrNotFound.
func (db *DB) Hold(ctx context.Context, tenantID, holdID string) (governance.Hold, error) {
	h, err := scanHold(db.R.QueryRow(ctx, `SELECT `+holdColumns+`, step FROM holds WHERE tenant_id = $1 AND hold_id = $2`, tenantID, holdID), true)
	if errors.Is(err, sql.ErrNoRows) {
		return h, db.errorf("hold %s of tenant %s: %w", holdID, tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return h, db.errorf("reading hold %s of tenant %s: %w", holdID, tenantID, err)
	}
	return h, nil
}

// Holds lists a tenant's holds, oldest request first, without their step.
func (db *DB) Holds(ctx context.Context, f governance.HoldFilter) ([]governance.Hold, error) {
	var w filter
	w.add("tenant_id = ?", f.TenantID)
	if f.RunID != "" {
		w.add("run_id = ?", f.RunID)
	}
	if f.Status != "" {
		w.add("status = ?", string(f.Status))
	}
	q := `SELECT ` + holdColumns + ` FROM holds` + w.sql() + ` ORDER BY requested_at, hold_id`
	if f.Limit > 0 {
		w.args = append(w.args, int64(f.Limit))
		q += fmt.Sprintf(" LIMIT $%d", len(w.args))
	}
	rows, err := db.R.Query(ctx, q, w.args...)
	out, err := collect(rows, err, func(r Row) (governance.Hold, error) { return scanHold(r, false) })
	if err != nil {
		return nil, db.errorf("listing holds of tenant %s: %w", f.TenantID, err)
	}
	return out, nil
}

// AnswerHold answers a pending hold in one conditional UPDATE: of two
// answers, one changes the row and the other finds it answered
// (governance.ErrHoldAnswered).
func (db *DB) AnswerHold(ctx context.Context, tenantID, holdID string, a governance.HoldAnswer) (governance.Hold, error) {
	fail := func(err error) error { return db.errorf("answering hold %s of tenant %s: %w", holdID, tenantID, err) }
	if !a.Status.Valid() || a.Status == governance.HoldPending {
		return governance.Hold{}, fail(fmt.Errorf("%q is not an answer", a.Status))
	}
	en := db.Enc()
	at := en.Time("answered_at", a.At)
	if en.Err != nil {
		return governance.Hold{}, fail(en.Err)
	}
	n, err := db.W.Exec(ctx, `UPDATE holds SET status = $3, answered_by = $4, answer_reason = $5, answered_at = $6
		WHERE tenant_id = $1 AND hold_id = $2 AND status = 'pending'`, tenantID, holdID, string(a.Status), a.By, a.Reason, at)
	if err != nil {
		return governance.Hold{}, fail(err)
	}
	h, err := db.Hold(ctx, tenantID, holdID)
	if err != nil {
		return governance.Hold{}, err
	}
	if n == 0 {
		return governance.Hold{}, fail(fmt.Errorf("it is %s: %w", h.Status, governance.ErrHoldAnswered))
	}
	h.Step = nil
	return h, nil
}

// PutKill stores a pulled kill switch; another active one over the same
// scope is governance.ErrKillActive.
func (db *DB) PutKill(ctx context.Context, k governance.KillSwitch) error {
	fail := func(err error) error {
		return db.errorf("pulling kill switch on %s %q of tenant %s: %w", k.Scope, k.Target, k.TenantID, err)
	}
	if k.TenantID == "" || k.ID == "" || !k.Scope.Valid() || k.Target == "" {
		return fail(errors.New("a tenant, an id, a scope and a target are required"))
	}
	en := db.Enc()
	at := en.Time("pulled_at", k.PulledAt)
	if en.Err != nil {
		return fail(en.Err)
	}
	_, err := db.W.Exec(ctx, `INSERT INTO kill_switches (tenant_id, kill_id, scope, target, pulled_by, reason, pulled_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, k.TenantID, k.ID, string(k.Scope), k.Target, k.By, k.Reason, at)
	switch {
	case err != nil && db.Classify(err) == UniqueTaken:
		return fail(governance.ErrKillActive)
	case err != nil:
		return fail(err)
	}
	return nil
}

const killColumns = `tenant_id, kill_id, scope, target, pulled_by, reason, pulled_at, released_by, released_at`

func scanKill(r Row) (governance.KillSwitch, error) {
	var (
		k     governance.KillSwitch
		scope string
		at    int64
		relBy *string
		rel   *int64
	)
	err := r.Scan(&k.TenantID, &k.ID, &scope, &k.Target, &k.By, &k.Reason, &at, &relBy, &rel)
	k.Scope, k.PulledAt, k.ReleasedAt = governance.KillScope(scope), TimeOf(&at), timePtrOf(rel)
	if relBy != nil {
		k.ReleasedBy = *relBy
	}
	return k, err
}

// ReleaseKill releases the active switch over the scope, in one UPDATE.
func (db *DB) ReleaseKill(ctx context.Context, tenantID string, scope governance.KillScope, target, by string, at time.Time) (governance.KillSwitch, error) {
	fail := func(err error) error {
		return db.errorf("releasing kill switch on %s %q of tenant %s: %w", scope, target, tenantID, err)
	}
	en := db.Enc()
	t := en.Time("released_at", at)
	if en.Err != nil || t == nil {
		return governance.KillSwitch{}, fail(errors.Join(en.Err, errors.New("a release time is required")))
	}
	k, err := scanKill(db.W.QueryRow(ctx, `UPDATE kill_switches SET released_by = $4, released_at = $5
		WHERE tenant_id = $1 AND scope = $2 AND target = $3 AND released_at IS NULL
		RETURNING `+killColumns, tenantID, string(scope), target, by, t))
	if errors.Is(err, sql.ErrNoRows) {
		return k, fail(fmt.Errorf("no active switch: %w", governance.ErrNotFound))
	}
	if err != nil {
		return k, fail(err)
	}
	return k, nil
}

// ActiveKills lists the active switches of a tenant, or of every tenant
// for "", oldest first.
func (db *DB) ActiveKills(ctx context.Context, tenantID string) ([]governance.KillSwitch, error) {
	q := `SELECT ` + killColumns + ` FROM kill_switches WHERE released_at IS NULL`
	var args []any
	if tenantID != "" {
		q += ` AND tenant_id = $1`
		args = append(args, tenantID)
	}
	rows, err := db.R.Query(ctx, q+` ORDER BY pulled_at, kill_id`, args...)
	out, err := collect(rows, err, scanKill)
	if err != nil {
		return nil, db.errorf("listing active kill switches: %w", err)
	}
	return out, nil
}
