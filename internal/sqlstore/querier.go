package sqlstore

import "context"

// Row is one result row (*sql.Row, pgx.Row). Scan returns an error
// matching sql.ErrNoRows when there is none; pgx.ErrNoRows matches it.
type Row interface {
	Scan(dest ...any) error
}

// Rows is a result set, read once from the first row to the last.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// Querier runs SQL on a pool, a connection or a transaction. Queries use
// numbered placeholders ($1, $2, ...). Scan destinations are pointers to
// Go values, or pointers to pointers for columns that may be NULL; both
// database/sql and pgx fill them alike. A Querier must be safe for
// concurrent use unless it is a transaction's.
type Querier interface {
	// Exec runs a statement and returns how many rows it changed.
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
	QueryRow(ctx context.Context, query string, args ...any) Row
	// Batch runs stmts in order and atomically: in the Querier's
	// transaction if it is one, else in a transaction of its own (one
	// round trip where the driver can). On failure it returns the index
	// of the statement that failed, and nothing of the batch is kept
	// unless the Querier is a transaction that goes on to commit.
	Batch(ctx context.Context, stmts ...Stmt) (failed int, err error)
}

// Stmt is one statement of a Batch.
type Stmt struct {
	SQL  string
	Args []any
}

// TxFunc runs fn in a transaction: committed if fn returns nil, rolled
// back otherwise. fn's Querier is only for use inside fn.
type TxFunc func(ctx context.Context, fn func(q Querier) error) error

// each calls fn for every row of rows (the result of a Query that
// returned err), then closes rows.
func each(rows Rows, err error, fn func(Row) error) error {
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := fn(rows); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

// collect reads every row of rows with scan.
func collect[T any](rows Rows, err error, scan func(Row) (T, error)) ([]T, error) {
	var out []T
	err = each(rows, err, func(r Row) error {
		v, err := scan(r)
		out = append(out, v)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
