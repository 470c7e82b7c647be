package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stopline/stopline/internal/sqlstore"
)

// The PostgreSQL dialect of the shared SQL layer (internal/sqlstore): what
// PostgreSQL says its own way, and the driver adapter.

// Advisory lock keys (the two-int4 form, class and key). Transaction-level
// locks only: they are released by COMMIT or ROLLBACK, so a replica that
// dies holding one never blocks the others.
const (
	lockClassMigrate int32 = 0x73746c00 + iota // key 0: schema migrations
	lockClassPublish                           // key hashtext(tenant): policy versions
	lockClassLedger                            // key hashtext(tenant, counter): rolling windows
)

//go:embed migrations/*.sql
var schema embed.FS

var dialect = &sqlstore.Dialect{
	Name:     "postgres",
	Classify: classify,
	// One statement, so one snapshot: the run row and its last record agree.
	RunSelect: `SELECT ` + sqlstore.RunColumns + `
FROM runs r LEFT JOIN LATERAL (SELECT seq, kind, step_index, total_tokens, total_cost_cents, hash FROM records m
	WHERE m.tenant_id = r.tenant_id AND m.run_id = r.run_id ORDER BY m.seq DESC LIMIT 1) l ON true`,
	InsertionOrder: "ord",
	// Locks the run's row, so that two replicas closing one run queue for
	// each other, and the tenant log's row, so that appends of one tenant
	// from any replica come one after the other (the lock is taken last
	// by every writer, and only by appends: no deadlock). FOR UPDATE in
	// the subquery rereads the row a concurrent append committed.
	RunStatusForClose: `SELECT r.status, l.size, l.frontier FROM runs r
		LEFT JOIN LATERAL (SELECT size, frontier FROM tenant_logs t WHERE t.tenant_id = r.tenant_id FOR UPDATE) l ON true
		WHERE r.tenant_id = $1 AND r.run_id = $2 FOR UPDATE OF r`,
	TenantLogForUpdate: `SELECT size, frontier FROM tenant_logs WHERE tenant_id = $1 FOR UPDATE`,
	// The records_chain trigger checks each record against the one before
	// it, this transaction's own included.
	CheckChainOnClose: false,
	CloseRunSQL: `UPDATE runs SET
		status = $3, termination_reason = $4, stopped_at_step = $5, violation_policy_id = $6,
		incident_id = $7, message = $8, ended_at = $9,
		started_at = CASE WHEN $10::bigint IS NULL THEN started_at ELSE COALESCE(started_at, $10) END,
		head_hash = $11, chain_length = $12,
		step_count = COALESCE(l.step_index + 1, 0),
		total_tokens = COALESCE(l.total_tokens, 0),
		total_cost_cents = COALESCE(l.total_cost_cents, 0)
	FROM (SELECT NULL) AS one
	LEFT JOIN LATERAL (SELECT step_index, total_tokens, total_cost_cents FROM records
		WHERE tenant_id = $1 AND run_id = $2 AND kind = 'step' ORDER BY seq DESC LIMIT 1) l ON true
	WHERE runs.tenant_id = $1 AND runs.run_id = $2`,
	// Claims on several replicas skip each other's rows.
	ClaimLock: " FOR UPDATE SKIP LOCKED",
	// Other tenants are not held up.
	LockPublish:       fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d, hashtext($1))`, lockClassPublish),
	Schema:            schema,
	SchemaTableExists: `SELECT to_regclass('schema_migrations') IS NOT NULL`,
	CreateSchemaTable: `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    applied_at bigint  NOT NULL
)`,
	LockMigrate:       fmt.Sprintf(`SELECT pg_advisory_xact_lock(%d, 0)`, lockClassMigrate),
	ErrSchemaTooNew:   ErrSchemaTooNew,
	ErrSchemaOutdated: ErrSchemaOutdated,
}

// SQLSTATEs the store maps to governance errors. Class SL is raised by the
// schema's triggers (migrations/0001_init.sql).
const (
	codeUniqueViolation     = "23505"
	codeForeignKeyViolation = "23503"
	codeRunEnded            = "SL002"
	codeIncidentBackwards   = "SL003"
	codeChainBroken         = "SL004"
	codeNoSuchRun           = "SL005"
)

// classify tells which constraint or trigger refused a write.
func classify(err error) sqlstore.Violation {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return sqlstore.NoViolation
	}
	switch pe.Code {
	case codeUniqueViolation:
		if strings.HasSuffix(pe.ConstraintName, "_pkey") {
			return sqlstore.PrimaryKeyTaken
		}
		return sqlstore.UniqueTaken
	case codeForeignKeyViolation:
		return sqlstore.MissingReference
	case codeRunEnded:
		return sqlstore.RunEnded
	case codeIncidentBackwards:
		return sqlstore.IncidentBackwards
	case codeChainBroken:
		return sqlstore.ChainBroken
	case codeNoSuchRun:
		return sqlstore.NoSuchRun
	}
	return sqlstore.NoViolation
}

// runner is what *pgxpool.Pool and pgx.Tx both offer.
type runner interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// querier is a sqlstore.Querier over a pool or a transaction.
type querier struct{ q runner }

func (q querier) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := q.q.Exec(ctx, query, args...)
	return tag.RowsAffected(), err
}

func (q querier) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	rows, err := q.q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

func (q querier) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	return q.q.QueryRow(ctx, query, args...)
}

// Batch sends stmts in one round trip. Over the pool, PostgreSQL runs
// them as one implicit transaction; a failure to commit it is reported as
// the last statement's.
func (q querier) Batch(ctx context.Context, stmts ...sqlstore.Stmt) (int, error) {
	b := &pgx.Batch{}
	for _, s := range stmts {
		b.Queue(s.SQL, s.Args...)
	}
	br := q.q.SendBatch(ctx, b)
	for i := range stmts {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return i, err
		}
	}
	return len(stmts) - 1, br.Close()
}

// pgRows is pgx.Rows with database/sql's Close.
type pgRows struct{ pgx.Rows }

func (r pgRows) Close() error {
	r.Rows.Close()
	return r.Rows.Err()
}
