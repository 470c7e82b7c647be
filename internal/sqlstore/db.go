package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/stopline/stopline/governance"
)

// DB implements the governance.Store, governance.AuditStore and ledger
// methods whose logic is the same in every dialect, over a store's
// Queriers. The store's own type keeps its methods and passes them on.
type DB struct {
	*Dialect
	// Where names the database in errors: a file, or a database on a
	// server (never a password).
	Where string
	// R runs reads, W writes of one statement (each committed on its
	// own), Tx writes of several statements.
	R, W Querier
	Tx   TxFunc
	// NoTenantLog makes CloseRun and PutCheckpoint append nothing to the
	// tenant log: the baseline the benchmarks measure the append against,
	// set by the stores' tests only.
	NoTenantLog bool
}

// Tenants lists every tenant that has runs or policy versions, sorted.
func (db *DB) Tenants(ctx context.Context) ([]string, error) {
	rows, err := db.R.Query(ctx, `SELECT tenant_id FROM runs UNION SELECT tenant_id FROM policy_versions ORDER BY 1`)
	out, err := collect(rows, err, func(r Row) (string, error) {
		var t string
		return t, r.Scan(&t)
	})
	if err != nil {
		return nil, db.errorf("listing tenants: %w", err)
	}
	return out, nil
}

// RunExists returns nil if the tenant has the run, else an error matching
// governance.ErrNotFound.
func (db *DB) RunExists(ctx context.Context, tenantID, runID string) error {
	var one int
	err := db.R.QueryRow(ctx, `SELECT 1 FROM runs WHERE tenant_id = $1 AND run_id = $2`, tenantID, runID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return db.errorf("run %s of tenant %s: %w", runID, tenantID, governance.ErrNotFound)
	}
	if err != nil {
		return db.errorf("reading run %s of tenant %s: %w", runID, tenantID, err)
	}
	return nil
}

// filter builds a WHERE clause with numbered placeholders.
type filter struct {
	where []string
	args  []any
}

// add appends a condition whose one placeholder is written "?".
func (f *filter) add(cond string, arg any) {
	f.args = append(f.args, arg)
	f.where = append(f.where, strings.Replace(cond, "?", "$"+strconv.Itoa(len(f.args)), 1))
}

func (f *filter) sql() string { return " WHERE " + strings.Join(f.where, " AND ") }

// createdIn adds the creation interval [from, to) of the rows of table
// alias p (with its dot, or ""); a zero time leaves that end open.
func (f *filter) createdIn(e *Enc, p string, from, to time.Time) {
	if !from.IsZero() {
		f.add(p+"created_at >= ?", e.Time("From", from))
	}
	if !to.IsZero() {
		f.add(p+"created_at < ?", e.Time("To", to))
	}
}

// list runs the listing query q (whose rows are of table alias p, with
// its dot, or "") with w's conditions, newest first, by creation time and
// then by insertion, and at most n rows when n > 0.
func list[T any](ctx context.Context, db *DB, q string, w *filter, p string, n int, scan func(Row) (T, error)) ([]T, error) {
	q += w.sql() + " ORDER BY " + p + "created_at DESC NULLS LAST, " + p + db.InsertionOrder + " DESC"
	if n > 0 {
		w.args = append(w.args, int64(n))
		q += " LIMIT $" + strconv.Itoa(len(w.args))
	}
	rows, err := db.R.Query(ctx, q, w.args...)
	return collect(rows, err, scan)
}
