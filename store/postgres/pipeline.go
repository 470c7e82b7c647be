package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore"
)

// CloseRun ends a run in one transaction: it locks the run's row (so
// that two replicas closing one run queue for each other, and nothing
// else waits), then writes, in one batch, the blocking step (if any,
// which must be marked as the inflection point), the incident (if any),
// the run_end record, and the run's final fields, with StepCount and
// totals taken from its last step record and HeadHash and ChainLength
// from the run_end record; with MarkRunning, a run that was queued gets
// StartedAt = the blocking step's time (EndedAt without one). The
// records_chain trigger checks each record against the one before it,
// this transaction's own included. Either all of it is stored or none. A
// run already ended is governance.ErrRunEnded; an unknown run is
// governance.ErrNotFound; records that do not extend the chain are
// governance.ErrChainConflict.
//
// It takes two round trips: BEGIN with the locking read of the run's
// status, then the writes with COMMIT.
func (s *Store) CloseRun(ctx context.Context, c governance.Close) error {
	write, err := s.db.CloseRunWrite(c)
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: closing run %s of tenant %s: %w", c.RunID, c.TenantID, err)
	}
	// A connection left inside a transaction (a failed ROLLBACK) is
	// destroyed by Release, never reused.
	defer conn.Release()
	p := &pipeTx{conn: conn.Conn()}
	err = write(ctx, p)
	if p.open {
		_, _ = p.conn.Exec(context.WithoutCancel(ctx), "ROLLBACK") // the error that matters is write's
	}
	return err
}

// pipeTx is a sqlstore.Querier that runs a transaction on conn in as few
// round trips as it can: its first QueryRow goes out with BEGIN, and its
// first Batch with COMMIT, which ends the transaction. It is for writes
// whose reads all come before one final Batch (sqlstore.CloseRunWrite).
// open is set from BEGIN until COMMIT succeeded: the caller rolls back
// whatever is left open.
type pipeTx struct {
	conn *pgx.Conn
	open bool
}

var _ sqlstore.Querier = (*pipeTx)(nil)

func (p *pipeTx) begin(ctx context.Context, b *pgx.Batch) pgx.BatchResults {
	if p.open {
		return p.conn.SendBatch(ctx, b)
	}
	full := &pgx.Batch{}
	full.Queue("BEGIN")
	full.QueuedQueries = append(full.QueuedQueries, b.QueuedQueries...)
	p.open = true
	br := p.conn.SendBatch(ctx, full)
	if _, err := br.Exec(); err != nil {
		return failedBatch{br, err}
	}
	return br
}

func (p *pipeTx) QueryRow(ctx context.Context, query string, args ...any) sqlstore.Row {
	b := &pgx.Batch{}
	b.Queue(query, args...)
	br := p.begin(ctx, b)
	return batchRow{br}
}

func (p *pipeTx) Batch(ctx context.Context, stmts ...sqlstore.Stmt) (int, error) {
	b := &pgx.Batch{}
	for _, s := range stmts {
		b.Queue(s.SQL, s.Args...)
	}
	b.Queue("COMMIT")
	br := p.begin(ctx, b)
	for i := range stmts {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return i, err
		}
	}
	_, err := br.Exec() // COMMIT
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return len(stmts) - 1, err // as a failure to commit is reported by the pool's Batch
	}
	p.open = false
	return 0, nil
}

func (p *pipeTx) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	b := &pgx.Batch{}
	b.Queue(query, args...)
	br := p.begin(ctx, b)
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	return tag.RowsAffected(), err
}

func (p *pipeTx) Query(ctx context.Context, query string, args ...any) (sqlstore.Rows, error) {
	if !p.open {
		p.open = true
		if _, err := p.conn.Exec(ctx, "BEGIN"); err != nil {
			return nil, err
		}
	}
	rows, err := p.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgRows{rows}, nil
}

// batchRow is the one row of a batch's next query; Scan reads it and
// closes the batch.
type batchRow struct{ br pgx.BatchResults }

func (r batchRow) Scan(dest ...any) error {
	err := r.br.QueryRow().Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	return err
}

// failedBatch is a batch whose BEGIN failed: every result is that error.
type failedBatch struct {
	pgx.BatchResults
	err error
}

func (f failedBatch) Exec() (pgconn.CommandTag, error) { return pgconn.CommandTag{}, f.err }
func (f failedBatch) QueryRow() pgx.Row                { return errRow{f.err} }
func (f failedBatch) Close() error {
	_ = f.BatchResults.Close()
	return f.err
}

type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }
