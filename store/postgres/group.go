package postgres

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/stopline/stopline/trace"
)

// Appends of several runs in one round trip. The AppendSteps waiting at
// one moment in a Store (at most maxAppendBatch) are sent as one pgx
// batch, which PostgreSQL runs as one implicit transaction with one
// commit: one round trip and one WAL flush for all of them, on one pooled
// connection, where each step alone takes a connection, a round trip and a
// commit of its own (BenchmarkConcurrentRunsPostgres measures both). If
// any of them fails, that transaction is rolled back and each is sent
// again alone, in order, so that each gets its own answer. A step that
// finds none waiting is sent at once, alone, as without batching: one run
// waits for nothing. The chain checks are the database's, in each
// statement (records_chain), so batching changes none of them; steps of
// one run keep their order (the queue is first in, first out).
//
// A batch is bounded by the earliest deadline of the steps it carries; if
// that passes, the batch fails and each step is sent again alone with its
// own context.

// maxAppendBatch bounds how many appends one round trip carries.
const maxAppendBatch = 256

type appendState uint8

const (
	appendQueued appendState = iota
	appendLeading
	appendTaken
	appendDone
)

// appendReq is one AppendStep's statement, waiting for or in a batch.
type appendReq struct {
	ctx   context.Context
	sql   string
	args  []any
	rec   *trace.Record
	state appendState   // guarded by appendQueue.mu
	wake  chan struct{} // made when it waits: its turn to lead, or done
	err   error
}

// appendQueue is the queue of a Store's appends.
type appendQueue struct {
	mu sync.Mutex
	// off sends every step alone, as the Store did before it batched
	// (the benchmarks' baseline; set by tests only).
	off   bool
	queue []*appendReq // queue[0] leads whenever the queue is not empty
}

// submit queues r and returns its result once its batch has committed.
func (s *Store) submit(r *appendReq) error {
	g := &s.appends
	g.mu.Lock()
	g.queue = append(g.queue, r)
	if len(g.queue) == 1 {
		r.state = appendLeading
		g.mu.Unlock()
		s.leadAppends()
		return r.err
	}
	r.wake = make(chan struct{}, 1)
	g.mu.Unlock()
	select {
	case <-r.wake:
	case <-r.ctx.Done():
		g.mu.Lock()
		switch r.state {
		case appendQueued:
			i := slices.Index(g.queue, r)
			g.queue = slices.Delete(g.queue, i, i+1)
			g.mu.Unlock()
			return r.ctx.Err()
		case appendLeading:
			g.queue = slices.Delete(g.queue, 0, 1)
			if len(g.queue) > 0 {
				g.queue[0].state = appendLeading
				g.queue[0].wake <- struct{}{}
			}
			g.mu.Unlock()
			return r.ctx.Err()
		}
		g.mu.Unlock()
		<-r.wake
	}
	g.mu.Lock()
	st := r.state
	g.mu.Unlock()
	if st == appendLeading {
		s.leadAppends()
	}
	return r.err
}

// leadAppends sends one batch, every append waiting now, then hands the
// lead on.
func (s *Store) leadAppends() {
	g := &s.appends
	g.mu.Lock()
	n := min(len(g.queue), maxAppendBatch)
	batch := slices.Clone(g.queue[:n])
	for _, r := range batch {
		r.state = appendTaken
	}
	g.mu.Unlock()

	s.sendAppends(batch)

	g.mu.Lock()
	g.queue = slices.Delete(g.queue, 0, n)
	for _, r := range batch {
		r.state = appendDone
	}
	var next *appendReq
	if len(g.queue) > 0 {
		next = g.queue[0]
		next.state = appendLeading
	}
	g.mu.Unlock()
	for _, r := range batch {
		if r.wake != nil {
			r.wake <- struct{}{}
		}
	}
	if next != nil {
		next.wake <- struct{}{}
	}
}

// sendAppends sends a batch in one round trip; if any append of it
// fails, each is sent again alone.
func (s *Store) sendAppends(batch []*appendReq) {
	if len(batch) == 1 {
		r := batch[0]
		r.err = s.appendOne(r.ctx, r.sql, r.args, r.rec)
		return
	}
	// One caller giving up must not fail the others; the earliest
	// deadline bounds the batch.
	ctx := context.Background()
	var earliest time.Time
	for _, r := range batch {
		if d, ok := r.ctx.Deadline(); ok && (earliest.IsZero() || d.Before(earliest)) {
			earliest = d
		}
	}
	if !earliest.IsZero() {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, earliest)
		defer cancel()
	}
	b := &pgx.Batch{}
	for _, r := range batch {
		b.Queue(r.sql, r.args...)
	}
	br := s.pool.SendBatch(ctx, b)
	var err error
	for range batch {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		return
	}
	for _, r := range batch { // rolled back: each alone, for its own answer
		r.err = s.appendOne(r.ctx, r.sql, r.args, r.rec)
	}
}
