package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/translog"
)

// The tenant log (governance.TenantLogStore): CloseRun and PutCheckpoint
// append their leaf in their own transaction, after reading the tenant's
// log row (size and frontier) with the lock the dialect takes on it
// (TenantLogForUpdate; RunStatusForClose reads it with the run's
// status). The append is then a few more statements in the same final
// batch: the leaf, its stored hashes, and the row's new size and
// frontier.

// logState is a tenant log's row as an append reads it.
type logState struct {
	size     int64
	frontier []byte
}

// lockLog reads the tenant's log row in q, locked until q ends, creating
// it (empty) if the tenant has no log yet.
func (db *DB) lockLog(ctx context.Context, q Querier, tenantID string) (logState, error) {
	var st logState
	err := q.QueryRow(ctx, db.TenantLogForUpdate, tenantID).Scan(&st.size, &st.frontier)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := q.Exec(ctx, `INSERT INTO tenant_logs (tenant_id, size, frontier) VALUES ($1, 0, $2)
			ON CONFLICT (tenant_id) DO NOTHING`, tenantID, []byte{}); err != nil {
			return st, fmt.Errorf("creating the tenant log: %w", err)
		}
		err = q.QueryRow(ctx, db.TenantLogForUpdate, tenantID).Scan(&st.size, &st.frontier)
	}
	if err != nil {
		return st, fmt.Errorf("reading the tenant log: %w", err)
	}
	return st, nil
}

// The statements of an append, each with one fixed text, so that a store
// can prepare them once (TenantLogAppendSQL) instead of on every append:
// the leaf, each stored hash the leaf adds (one row each, the same
// statement run 1 + (trailing ones of the size) times: twice on average),
// and the log row's new size and frontier.
const (
	InsertLogLeafSQL = `INSERT INTO tenant_log_leaves (tenant_id, idx, run_id, kind, seq, head_hash, key_name, note_hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`
	InsertLogHashSQL = `INSERT INTO tenant_log_hashes (tenant_id, idx, hash) VALUES ($1, $2, $3)`
	UpdateLogSQL     = `UPDATE tenant_logs SET size = $2, frontier = $3 WHERE tenant_id = $1`
)

// TenantLogAppendSQL lists every statement text an append runs.
var TenantLogAppendSQL = []string{InsertLogLeafSQL, InsertLogHashSQL, UpdateLogSQL}

// appendStmts returns the statements that append leaf to its tenant's
// log, whose locked row st is.
func appendStmts(leaf translog.Leaf, st logState) ([]Stmt, error) {
	f, err := translog.DecodeFrontier(st.size, st.frontier)
	if err != nil {
		return nil, fmt.Errorf("the tenant log's frontier: %w", err)
	}
	leaf.Index = st.size
	h, err := leaf.Hash()
	if err != nil {
		return nil, err
	}
	stored, next, err := f.Append(st.size, h)
	if err != nil {
		return nil, err
	}
	out := make([]Stmt, 0, 2+len(stored))
	out = append(out, Stmt{InsertLogLeafSQL,
		[]any{leaf.TenantID, leaf.Index, leaf.RunID, string(leaf.Kind), int64(leaf.Seq), leaf.Head, leaf.KeyName, leaf.NoteHash}})
	first := tlog.StoredHashIndex(0, st.size)
	for i := range stored {
		out = append(out, Stmt{InsertLogHashSQL, []any{leaf.TenantID, first + int64(i), stored[i][:]}})
	}
	return append(out, Stmt{UpdateLogSQL, []any{leaf.TenantID, st.size + 1, next.Bytes()}}), nil
}

// TenantLogSize returns how many leaves the tenant's log holds.
func (db *DB) TenantLogSize(ctx context.Context, tenantID string) (int64, error) {
	var n int64
	err := db.R.QueryRow(ctx, `SELECT size FROM tenant_logs WHERE tenant_id = $1`, tenantID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, db.errorf("reading the size of tenant %s's log: %w", tenantID, err)
	}
	return n, nil
}

// ReadTenantLogHashes returns the stored hashes at indexes, in order; an
// index the log does not hold is governance.ErrNotFound.
func (db *DB) ReadTenantLogHashes(ctx context.Context, tenantID string, indexes []int64) ([]tlog.Hash, error) {
	got := make(map[int64]tlog.Hash, len(indexes))
	const chunk = 500
	for lo := 0; lo < len(indexes); lo += chunk {
		part := indexes[lo:min(lo+chunk, len(indexes))]
		var b strings.Builder
		b.WriteString(`SELECT idx, hash FROM tenant_log_hashes WHERE tenant_id = $1 AND idx IN (`)
		args := make([]any, 1, 1+len(part))
		args[0] = tenantID
		for i, x := range part {
			if i > 0 {
				b.WriteString(", ")
			}
			args = append(args, x)
			b.WriteString("$" + strconv.Itoa(len(args)))
		}
		b.WriteString(")")
		rows, err := db.R.Query(ctx, b.String(), args...)
		err = each(rows, err, func(r Row) error {
			var idx int64
			var h []byte
			if err := r.Scan(&idx, &h); err != nil {
				return err
			}
			if len(h) != tlog.HashSize {
				return fmt.Errorf("stored hash %d has %d bytes", idx, len(h))
			}
			got[idx] = tlog.Hash(h)
			return nil
		})
		if err != nil {
			return nil, db.errorf("reading tenant %s's log hashes: %w", tenantID, err)
		}
	}
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		h, ok := got[x]
		if !ok {
			return nil, db.errorf("tenant %s's log has no stored hash %d: %w", tenantID, x, governance.ErrNotFound)
		}
		out[i] = h
	}
	return out, nil
}

// TenantLogLeaves returns the leaves with index in [from, to), in index
// order; with runID, only that run's.
func (db *DB) TenantLogLeaves(ctx context.Context, tenantID, runID string, from, to int64) ([]governance.LogLeaf, error) {
	q := `SELECT idx, run_id, kind, seq, head_hash, key_name, note_hash FROM tenant_log_leaves
		WHERE tenant_id = $1 AND idx >= $2 AND idx < $3`
	args := []any{tenantID, from, to}
	if runID != "" {
		// The run's leaves found by tenant_log_leaves_by_run alone, then
		// read by primary key: asked in one WHERE, SQLite's planner ranges
		// over the primary key (every leaf of the tenant) instead.
		q = `SELECT idx, run_id, kind, seq, head_hash, key_name, note_hash FROM tenant_log_leaves
		WHERE tenant_id = $1 AND idx IN (SELECT idx FROM tenant_log_leaves
			WHERE tenant_id = $1 AND run_id = $4 AND idx >= $2 AND idx < $3)`
		args = append(args, runID)
	}
	rows, err := db.R.Query(ctx, q+` ORDER BY idx`, args...)
	out, err := collect(rows, err, func(r Row) (governance.LogLeaf, error) {
		l := governance.LogLeaf{TenantID: tenantID}
		err := r.Scan(&l.Index, &l.RunID, &l.Kind, &l.Seq, &l.Head, &l.KeyName, &l.NoteHash)
		return l, err
	})
	if err != nil {
		return nil, db.errorf("reading tenant %s's log leaves: %w", tenantID, err)
	}
	return out, nil
}
