package otelgov

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/stopline/stopline/governance"
)

// event is what the runner reported, as the goroutine reads it.
type event struct {
	kind eventKind
	// span is the span of the runner's context: the run's parent (start),
	// the caller's span a step links to (step).
	span      trace.SpanContext
	run       governance.RunEvent // start, end
	violation governance.Violation
	labels    []attribute.KeyValue // start: the labels WithLabels names
	step      governance.StepEvent // step
	// step: the tokens llmhttp recorded, read from the metadata when the
	// event was queued.
	usageIn, usageOut int64
	usage             bool
}

type eventKind uint8

const (
	eventStart eventKind = iota
	eventStep
	eventEnd
)

// queue holds events between the runner's calls and the Observer's
// goroutine. Putting an event never waits: it is appended under a mutex,
// or dropped when max events already wait. The goroutine is woken when
// batch events wait or delay after the first one, whichever is first,
// so that it runs once for many steps rather than once for each.
//
// Runs are admitted by their start: the steps of a run whose start was
// dropped are dropped, and the end of an admitted run is always queued
// (beyond max if need be: at most one for each admitted run in
// progress), so that no span it started is left open.
type queue struct {
	max   int
	batch int
	delay time.Duration

	mu       sync.Mutex
	pending  []event
	admitted map[runKey]struct{}
	dropped  int
	closed   bool
	armed    bool // the timer will wake the goroutine
	timer    *time.Timer

	wake    chan struct{}      // 1-buffered
	flushes chan chan struct{} // a flush: closed once what was queued before it is handed over
	stop    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

func (q *queue) init(max int, delay time.Duration) {
	q.max, q.delay = max, delay
	q.batch = min(max, 256)
	q.admitted = map[runKey]struct{}{}
	q.wake = make(chan struct{}, 1)
	q.flushes = make(chan chan struct{})
	q.stop = make(chan struct{})
	q.stopped = make(chan struct{})
	q.timer = time.AfterFunc(time.Hour, q.signal)
	q.timer.Stop()
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// put queues e (copying it), or drops it.
func (q *queue) put(e *event, k runKey) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	full := len(q.pending) >= q.max
	switch e.kind {
	case eventStart:
		if full {
			q.dropped++
			return
		}
		q.admitted[k] = struct{}{}
	case eventStep:
		if _, ok := q.admitted[k]; !ok || full {
			q.dropped++
			return
		}
	case eventEnd:
		if _, ok := q.admitted[k]; ok {
			delete(q.admitted, k)
		} else if full {
			q.dropped++
			return
		}
	}
	q.pending = append(q.pending, *e)
	switch {
	case len(q.pending) == q.batch:
		q.signal()
	case !q.armed:
		q.armed = true
		q.timer.Reset(q.delay)
	}
}

// take returns what waits, and how many events were dropped since the
// last take, leaving spare (emptied) in its place.
func (q *queue) take(spare []event) ([]event, int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	batch, dropped := q.pending, q.dropped
	q.pending, q.dropped, q.armed = spare[:0], 0, false
	return batch, dropped
}

// run calls handle for every event, in order, until the queue is shut
// down and emptied.
func (q *queue) run(handle func(*event)) {
	defer close(q.stopped)
	var spare []event
	drain := func() {
		for {
			batch, dropped := q.take(spare)
			if dropped > 0 {
				otel.Handle(fmt.Errorf("otelgov: %d events dropped: more than %d were waiting", dropped, q.max))
			}
			if len(batch) == 0 {
				spare = batch
				return
			}
			for i := range batch {
				func() {
					defer func() { _ = recover() }() // a provider's panic loses this event, not the goroutine
					handle(&batch[i])
				}()
				batch[i] = event{} // let go of the event's strings
			}
			spare = batch
		}
	}
	for {
		select {
		case <-q.wake:
			drain()
		case done := <-q.flushes:
			drain()
			close(done)
		case <-q.stop:
			drain()
			return
		}
	}
}

func (q *queue) flush(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case q.flushes <- done:
	case <-q.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (q *queue) shutdown(ctx context.Context) error {
	q.once.Do(func() {
		q.mu.Lock()
		q.closed = true
		q.mu.Unlock()
		q.timer.Stop()
		close(q.stop)
	})
	select {
	case <-q.stopped:
		return nil
	case <-ctx.Done():
		return errors.Join(errors.New("otelgov: shutdown: events are still being handed over"), ctx.Err())
	}
}
