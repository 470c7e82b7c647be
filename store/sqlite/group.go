package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"sync"

	"github.com/mattn/go-sqlite3"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore"
	"github.com/stopline/stopline/trace"
)

// Group commit. Every write that touches a run's chain (AppendStep,
// CreateRun, CloseRun) joins one queue per Store. The write at the
// queue's front leads: it takes every write waiting at that moment (at
// most maxBatch, its own first) and writes them in one BEGIN IMMEDIATE
// transaction, in queue order, with one commit (one fsync in FULL mode);
// then the front of what queued meanwhile leads the next batch. A leader
// never waits for a batch to fill: a write that finds the queue empty is
// written at once, alone, exactly as it would be without batching (one
// INSERT committed by itself, or its own transaction). Each caller
// returns when the batch that holds its write has committed, with its
// own result.
//
// Failures stay with their write:
//   - a write refused before it touches the database (its record does not
//     extend the head kept in memory, its run has ended or is unknown, its
//     context was done before its batch began) fails alone;
//   - a statement refused by SQLite while the transaction stays open (a
//     constraint: a seq taken, a second inflection point, no such run) is
//     undone by SQLite alone, statement by statement; CreateRun and
//     CloseRun, which write several rows, run inside a SAVEPOINT that is
//     rolled back on error; that write fails, the batch goes on;
//   - any other error of a write (the transaction lost: I/O, a full disk;
//     or half of a write kept) rolls the whole transaction back: that
//     write fails, and the others are written again, in order, in a new
//     transaction;
//   - an error of BEGIN or COMMIT fails every write of the batch with it:
//     nothing of it is acknowledged.
//
// The chain heads kept in memory change only with a commit: a batch
// tracks the heads it moves in an overlay, applied after COMMIT
// succeeded, thrown away on rollback, and on a failed COMMIT every run the
// batch touched is read again from the file next time.

// maxBatch bounds how many writes one transaction holds.
const maxBatch = 256

type opKind uint8

const (
	opAppend opKind = iota
	opCreate
	opClose
)

type reqState uint8

const (
	queued  reqState = iota // waiting in the queue
	leading                 // at the queue's front: writes the next batch
	taken                   // in a batch being written
	done                    // written or refused: err is its result
)

// writeReq is one write, waiting for or in a batch.
type writeReq struct {
	kind opKind
	ctx  context.Context
	key  runKey

	// opAppend
	step        stepRef
	args        []any
	markRunning bool
	startedAt   any
	// opCreate
	create *createReq
	// opClose
	close func(context.Context, sqlstore.Querier) error

	state reqState      // guarded by group.mu
	wake  chan struct{} // made when it has to wait: its turn to lead, or done
	err   error         // its result, set by the batch that took it
}

// stepRef is what the queue needs of a step's record (kept small: a
// write is allocated per step).
type stepRef struct {
	seq            int
	prevHash, hash string
	inflection     bool
}

// record is the step's record, with the fields that checks and errors
// read.
func (r *writeReq) record() *trace.Record {
	return &trace.Record{TenantID: r.key.tenant, RunID: r.key.run, Kind: trace.KindStep, Seq: r.step.seq,
		PrevHash: r.step.prevHash, Hash: r.step.hash, Inflection: r.step.inflection}
}

// createReq is a CreateRun's arguments.
type createReq struct {
	run   governance.RunRecord
	start governance.StepWrite
}

// group is a Store's queue of writes.
type group struct {
	mu    sync.Mutex
	queue []*writeReq // queue[0] leads whenever the queue is not empty
	// alone writes every write in a commit of its own, as the store did
	// before group commit (the benchmarks' baseline; set by tests only).
	alone bool
}

// submit queues r and returns its result once the batch that holds it
// has committed (or refused it). A write whose context is done before a
// batch took it leaves the queue and returns the context's error,
// written nowhere.
func (s *Store) submit(r *writeReq) error {
	if err := r.ctx.Err(); err != nil {
		return err
	}
	g := &s.group
	g.mu.Lock()
	g.queue = append(g.queue, r)
	if len(g.queue) == 1 {
		r.state = leading
		g.mu.Unlock()
		s.lead()
		return r.err
	}
	r.wake = make(chan struct{}, 1)
	g.mu.Unlock()
	select {
	case <-r.wake:
	case <-r.ctx.Done():
		if s.withdraw(r) {
			return r.ctx.Err()
		}
		<-r.wake // taken: its batch decides
	}
	g.mu.Lock()
	st := r.state
	g.mu.Unlock()
	if st == leading {
		s.lead()
	}
	return r.err
}

// withdraw takes r out of the queue if no batch has taken it, and reports
// whether it did. A write that was to lead hands the lead on.
func (s *Store) withdraw(r *writeReq) bool {
	g := &s.group
	g.mu.Lock()
	defer g.mu.Unlock()
	switch r.state {
	case queued:
		i := slices.Index(g.queue, r)
		g.queue = slices.Delete(g.queue, i, i+1)
		return true
	case leading: // r is queue[0]
		g.queue = slices.Delete(g.queue, 0, 1)
		if len(g.queue) > 0 {
			g.queue[0].state = leading
			g.queue[0].wake <- struct{}{}
		}
		return true
	}
	return false
}

// lead writes one batch, every write waiting now from the queue's front,
// then wakes them and hands the lead to the write queued first after
// them, if any.
func (s *Store) lead() {
	g := &s.group
	g.mu.Lock()
	n := min(len(g.queue), maxBatch)
	if g.alone {
		n = 1
	}
	var one [1]*writeReq
	batch := one[:]
	if n == 1 {
		one[0] = g.queue[0]
	} else {
		batch = slices.Clone(g.queue[:n])
	}
	for _, r := range batch {
		r.state = taken
	}
	g.mu.Unlock()

	s.writeBatch(batch)

	g.mu.Lock()
	// The batch is still the queue's first n writes: writes only join at
	// the back, and only writes no batch has taken leave early.
	g.queue = slices.Delete(g.queue, 0, n)
	for _, r := range batch {
		r.state = done
	}
	var next *writeReq
	if len(g.queue) > 0 {
		next = g.queue[0]
		next.state = leading
	}
	g.mu.Unlock()
	for _, r := range batch {
		if r.wake != nil { // nil: the leader, which came in to an empty queue
			r.wake <- struct{}{}
		}
	}
	if next != nil {
		next.wake <- struct{}{}
	}
}

// writeBatch writes a batch and sets each write's result.
func (s *Store) writeBatch(batch []*writeReq) {
	s.headsMu.Lock()
	defer s.headsMu.Unlock()
	if len(batch) == 1 {
		r := batch[0]
		if r.err = s.writeAlone(r); r.err == nil {
			s.commits.Add(1)
		}
		return
	}
	rs := make([]*writeReq, 0, len(batch))
	for _, r := range batch {
		if err := r.ctx.Err(); err != nil {
			r.err = err // gave up before its batch began: written nowhere
			continue
		}
		rs = append(rs, r)
	}
	for len(rs) > 0 {
		rs = s.writeTogether(rs)
	}
}

// writeAlone writes r by itself, in its own commit: the store's write path
// when nothing else is waiting. The caller holds headsMu.
func (s *Store) writeAlone(r *writeReq) error {
	ctx := r.ctx
	switch r.kind {
	case opCreate:
		if err := s.db.CreateRun(ctx, r.create.run, r.create.start); err != nil {
			return err
		}
		s.heads[r.key] = sqlstore.Head{Seq: 0, Hash: r.create.start.Record.Hash}
		return nil
	case opClose:
		delete(s.heads, r.key) // ended, or read again after a failure
		return s.db.Tx(ctx, func(q sqlstore.Querier) error { return r.close(ctx, q) })
	}
	h, err := s.head(ctx, s.w, r.key)
	if err == nil {
		err = r.extends(h)
	}
	if err != nil {
		return r.stepError(err)
	}
	if err := s.insertStep(ctx, nil, r.args, r.markRunning, r.startedAt); err != nil {
		delete(s.heads, r.key) // read it again next time
		return dialect.RecordError(err, r.record())
	}
	s.heads[r.key] = sqlstore.Head{Seq: r.step.seq, Hash: r.step.hash}
	return nil
}

// batchTx is one attempt at writing a batch: its transaction, on its
// connection, and the chain heads its writes moved (nil: read it again
// from the file), which become the Store's only if it commits.
type batchTx struct {
	conn  *sql.Conn
	tx    *sql.Tx
	q     querier
	heads map[runKey]*sqlstore.Head
}

// writeTogether writes rs in one transaction. It returns the writes to
// write again in a new one when a write lost the transaction (that write
// has failed), else nil: every write of rs has its result.
func (s *Store) writeTogether(rs []*writeReq) (again []*writeReq) {
	ctx := context.Background() // one caller giving up must not fail the others
	failAll := func(err error) []*writeReq {
		for _, r := range rs {
			if r.err == nil {
				r.err = batchError(r, err)
			}
		}
		return nil
	}
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return failAll(fmt.Errorf("beginning: %w", err))
	}
	defer conn.Close()
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return failAll(fmt.Errorf("beginning: %w", err))
	}
	b := &batchTx{conn: conn, tx: tx, q: s.txQuerier(tx), heads: map[runKey]*sqlstore.Head{}}
	for i, r := range rs {
		kept, err := s.writeIn(ctx, b, r)
		if err == nil || kept {
			r.err = err
			continue
		}
		// The transaction is lost, or holds part of r: start again
		// without r.
		_ = tx.Rollback()
		r.err = err
		delete(s.heads, r.key) // read it again next time
		for _, o := range rs[:i] {
			if o.err == nil {
				again = append(again, o)
			}
		}
		return append(again, rs[i+1:]...)
	}
	if err := tx.Commit(); err != nil {
		// What the file holds now is not known: read every head this
		// batch moved again next time.
		for k := range b.heads {
			delete(s.heads, k)
		}
		return failAll(fmt.Errorf("committing: %w", err))
	}
	s.commits.Add(1)
	for k, h := range b.heads {
		if h == nil {
			delete(s.heads, k)
		} else {
			s.heads[k] = *h
		}
	}
	return nil
}

// writeIn writes r in the batch's transaction. When it fails, kept
// reports whether the transaction is still open and holds nothing of r,
// so that the batch can go on without it.
func (s *Store) writeIn(ctx context.Context, b *batchTx, r *writeReq) (kept bool, err error) {
	switch r.kind {
	case opCreate:
		kept, err = b.savepoint(ctx, func() error { return s.db.CreateRunOn(ctx, b.q, r.create.run, r.create.start) })
		if err == nil {
			b.heads[r.key] = &sqlstore.Head{Seq: 0, Hash: r.create.start.Record.Hash}
		}
		return kept, err
	case opClose:
		b.heads[r.key] = nil // ended, or read again after a failure
		return b.savepoint(ctx, func() error { return r.close(ctx, b.q) })
	}
	h, err := s.batchHead(ctx, b, r.key)
	if err == nil {
		err = r.extends(h)
	}
	if err != nil {
		return true, r.stepError(err)
	}
	if err := s.insertStep(ctx, b.tx, r.args, false, nil); err != nil {
		// SQLite undid the INSERT alone unless the error cost the whole
		// transaction.
		b.heads[r.key] = nil
		return b.open(), dialect.RecordError(err, r.record())
	}
	if r.markRunning {
		if err := s.markRunning(ctx, b.tx, r.args, r.startedAt); err != nil {
			return false, dialect.RecordError(err, r.record()) // the INSERT stays: start again without r
		}
	}
	b.heads[r.key] = &sqlstore.Head{Seq: r.step.seq, Hash: r.step.hash}
	return true, nil
}

// batchHead is a run's head as the batch's transaction sees it: moved by
// an earlier write of the batch, else kept by the Store, else read from
// the file (in the transaction).
func (s *Store) batchHead(ctx context.Context, b *batchTx, k runKey) (sqlstore.Head, error) {
	h, moved := b.heads[k]
	if moved && h != nil {
		return *h, nil
	}
	if !moved {
		if h, ok := s.heads[k]; ok {
			return h, nil
		}
	}
	got, err := readHead(ctx, b.tx, k)
	if err == nil {
		b.heads[k] = &got
	}
	return got, err
}

// savepoint runs fn inside a SAVEPOINT of the batch's transaction, rolled
// back to if fn fails. kept reports whether the transaction is still open
// with nothing of fn in it.
func (b *batchTx) savepoint(ctx context.Context, fn func() error) (kept bool, err error) {
	if _, err := b.tx.ExecContext(ctx, "SAVEPOINT write"); err != nil {
		return false, err
	}
	if err := fn(); err != nil {
		if _, rerr := b.tx.ExecContext(ctx, "ROLLBACK TO write"); rerr != nil {
			return false, err
		}
		if _, rerr := b.tx.ExecContext(ctx, "RELEASE write"); rerr != nil {
			return false, err
		}
		return b.open(), err
	}
	if _, err := b.tx.ExecContext(ctx, "RELEASE write"); err != nil {
		return false, err
	}
	return true, nil
}

// open reports whether the batch's transaction is still open: some
// errors (I/O, a full disk, out of memory) make SQLite roll back the
// whole transaction, where others undo only the statement that failed.
func (b *batchTx) open() bool {
	inTx := false
	_ = b.conn.Raw(func(dc any) error {
		c, ok := dc.(*sqlite3.SQLiteConn)
		inTx = ok && !c.AutoCommit()
		return nil
	})
	return inTx
}

// extends checks that the step is the record after h (sqlstore.Head.Extends).
func (r *writeReq) extends(h sqlstore.Head) error {
	if r.step.seq == h.Seq+1 && r.step.prevHash == h.Hash {
		return nil
	}
	return h.Extends(r.record())
}

// stepError is the error of a step refused before it was written.
func (r *writeReq) stepError(err error) error {
	return fmt.Errorf("sqlite: step record %d of run %s (tenant %s): %w", r.step.seq, r.key.run, r.key.tenant, err)
}

// batchError is r's error when its batch could not be begun or committed.
func batchError(r *writeReq, err error) error {
	switch r.kind {
	case opCreate:
		return fmt.Errorf("sqlite: creating run %s of tenant %s: %w", r.key.run, r.key.tenant, err)
	case opClose:
		return fmt.Errorf("sqlite: closing run %s of tenant %s: %w", r.key.run, r.key.tenant, err)
	}
	return dialect.RecordError(err, r.record())
}
