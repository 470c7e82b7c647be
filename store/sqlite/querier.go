package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"strings"
	"sync"

	"github.com/mattn/go-sqlite3"

	"github.com/stopline/stopline/internal/sqlstore"
)

// The SQLite dialect of the shared SQL layer (internal/sqlstore): what
// SQLite says its own way, and the driver adapter.

// raiseBackwards is the RAISE message of incidents_lifecycle_forward.
const raiseBackwards = "stopline: incident status cannot go back"

//go:embed migrations/*.sql
var schema embed.FS

var dialect = &sqlstore.Dialect{
	Name:     "sqlite",
	Classify: classify,
	// No LATERAL: the last record is the one whose seq is the run's MAX.
	RunSelect: `SELECT ` + sqlstore.RunColumns + `
FROM runs r LEFT JOIN records l
	ON l.tenant_id = r.tenant_id AND l.run_id = r.run_id
	AND l.seq = (SELECT MAX(m.seq) FROM records m WHERE m.tenant_id = r.tenant_id AND m.run_id = r.run_id)`,
	InsertionOrder: "rowid",
	// The transaction is BEGIN IMMEDIATE: it holds the file's write lock.
	// One writer: nothing else appends meanwhile.
	RunStatusForClose: `SELECT r.status, l.size, l.frontier FROM runs r
		LEFT JOIN tenant_logs l ON l.tenant_id = r.tenant_id WHERE r.tenant_id = $1 AND r.run_id = $2`,
	TenantLogForUpdate: `SELECT size, frontier FROM tenant_logs WHERE tenant_id = $1`,
	// No trigger checks the chain: appends check the head kept in
	// memory, and CloseRun the head it reads in its transaction.
	CheckChainOnClose: true,
	CloseRunSQL: `UPDATE runs SET
		status = $3, termination_reason = $4, stopped_at_step = $5, violation_policy_id = $6,
		incident_id = $7, message = $8, ended_at = $9,
		started_at = CASE WHEN $10 IS NULL THEN started_at ELSE COALESCE(started_at, $10) END,
		head_hash = $11, chain_length = $12,
		step_count = COALESCE((SELECT step_index + 1 FROM records
			WHERE tenant_id = $1 AND run_id = $2 AND kind = 'step' ORDER BY seq DESC LIMIT 1), 0),
		total_tokens = COALESCE((SELECT total_tokens FROM records
			WHERE tenant_id = $1 AND run_id = $2 AND kind = 'step' ORDER BY seq DESC LIMIT 1), 0),
		total_cost_cents = COALESCE((SELECT total_cost_cents FROM records
			WHERE tenant_id = $1 AND run_id = $2 AND kind = 'step' ORDER BY seq DESC LIMIT 1), 0)
	WHERE tenant_id = $1 AND run_id = $2`,
	Schema:            schema,
	SchemaTableExists: `SELECT EXISTS (SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations')`,
	CreateSchemaTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL
) STRICT`,
	ErrSchemaTooNew:   ErrSchemaTooNew,
	ErrSchemaOutdated: ErrSchemaOutdated,
}

// classify tells which constraint or trigger refused a write.
func classify(err error) sqlstore.Violation {
	se, ok := sqliteError(err)
	if !ok {
		return sqlstore.NoViolation
	}
	switch se.ExtendedCode {
	case sqlite3.ErrConstraintPrimaryKey:
		return sqlstore.PrimaryKeyTaken
	case sqlite3.ErrConstraintUnique:
		return sqlstore.UniqueTaken
	case sqlite3.ErrConstraintForeignKey:
		return sqlstore.MissingReference
	case sqlite3.ErrConstraintTrigger:
		if strings.Contains(se.Error(), raiseBackwards) {
			return sqlstore.IncidentBackwards
		}
	}
	return sqlstore.NoViolation
}

// sqliteError returns err's SQLite error, if it has one.
func sqliteError(err error) (sqlite3.Error, bool) {
	var se sqlite3.Error
	ok := errors.As(err, &se)
	return se, ok
}

// runner is what *sql.DB and *sql.Tx both offer.
type runner interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// querier is a sqlstore.Querier over a pool (db set: Batch runs in a
// transaction of its own) or a transaction (tx set, db nil). In a
// transaction of the write connection, a statement whose (rebound) text
// prep holds runs as that statement, prepared once on the connection
// (tx.StmtContext), instead of being prepared again on every call.
type querier struct {
	q    runner
	db   *sql.DB
	tx   *sql.Tx
	prep map[string]*sql.Stmt
	rb   *rebinder
}

// stmt returns query's prepared statement in q's transaction, or nil.
func (q querier) stmt(ctx context.Context, query string) *sql.Stmt {
	if q.tx == nil {
		return nil
	}
	if st := q.prep[query]; st != nil {
		return q.tx.StmtContext(ctx, st)
	}
	return nil
}

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	query = q.rb.rebind(query)
	var res sql.Result
	var err error
	if st := q.stmt(ctx, query); st != nil {
		res, err = st.ExecContext(ctx, args...)
	} else {
		res, err = q.q.ExecContext(ctx, query, args...)
	}
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	query = q.rb.rebind(query)
	var rows *sql.Rows
	var err error
	if st := q.stmt(ctx, query); st != nil {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = q.q.QueryContext(ctx, query, args...)
	}
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	query = q.rb.rebind(query)
	if st := q.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return q.q.QueryRowContext(ctx, query, args...)
}

func (q querier) Batch(ctx context.Context, stmts ...sqlstore.Stmt) (int, error) {
	if q.db != nil {
		failed := 0
		err := inTx(ctx, q.db, func(tx *sql.Tx) (err error) {
			failed, err = q.inTx(tx).Batch(ctx, stmts...)
			return err
		})
		return failed, err
	}
	for i, s := range stmts {
		if _, err := q.Exec(ctx, s.SQL, s.Args...); err != nil {
			return i, err
		}
	}
	return 0, nil
}

// inTx is q's querier in tx, a transaction of q's pool.
func (q querier) inTx(tx *sql.Tx) querier {
	return querier{q: tx, tx: tx, prep: q.prep, rb: q.rb}
}

// rebinder rewrites the numbered placeholders of sqlstore's SQL ($1) to
// SQLite's (?1), once per query text.
type rebinder struct{ done sync.Map }

func (rb *rebinder) rebind(query string) string {
	if !strings.Contains(query, "$") {
		return query
	}
	if q, ok := rb.done.Load(query); ok {
		return q.(string)
	}
	b := []byte(query)
	quoted := false
	for i, c := range b {
		switch {
		case c == '\'':
			quoted = !quoted
		case c == '$' && !quoted && i+1 < len(b) && b[i+1] >= '0' && b[i+1] <= '9':
			b[i] = '?'
		}
	}
	q := string(b)
	rb.done.Store(query, q)
	return q
}
