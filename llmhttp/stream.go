package llmhttp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

// maxBatchBytes bounds how many bytes of events already received are
// checked together (see stream.fill).
const maxBatchBytes = 64 << 10

// stream is the body of a streamed (server-sent events) model response.
// It passes text through as it arrives, checking it before it is
// delivered, holds back everything else, and records the response when
// the stream ends.
//
// The text delivered so far plus the events being delivered are checked
// (Reservation.Check while the call's reservation holds, else Run.Check)
// before those events are delivered. Events the upstream has already
// sent are checked together, up to maxBatchBytes, so a fast producer
// costs one check per batch and a slow one (a real model) one check per
// event, or per WithStreamCheckBytes of text; a batch that is blocked is
// checked again event by event so that the stream ends exactly before the
// event that made it break a policy.
//
// From the first event that is part of a tool call (or of another item
// that is not plain text: see the accumulators) on, every event is held
// back. At the final event the stream is read to its end (an event after
// the final one is refused), the response and its tool calls are read
// from what was accumulated and recorded, and only if they pass is what
// was held delivered: an agent never sees any part of a tool call that no
// policy has checked, and what it sees is what was checked, event for
// event (the accumulators read events as the SDKs do, or refuse them).
//
// The stream owns its call's reservation (rec.hold): the step it records
// settles it, and a stream that will record none (stopped by a policy)
// gives it back; see withhold and fail.
type stream struct {
	ctx context.Context
	g   *Governor
	rec *recorder
	up  io.ReadCloser
	sse *sseReader
	acc accumulator

	closed atomic.Bool

	mu        sync.Mutex
	out       []byte // ready to be read
	off       int
	held      []byte // held back until the response is recorded
	holding   bool
	err       error // returned once out is drained
	done      bool  // the response was recorded, or recording was attempted
	delivered []int // per choice, bytes of text delivered
	batch     []pending
	checks    streamChecks // the governance.Streams its checks go through
}

// pending is an event read but not yet delivered.
type pending struct {
	raw   []byte
	eff   effect
	held  bool
	lens  []int // per choice text lengths once this event is applied
	usage usage
}

func newStream(ctx context.Context, g *Governor, rec *recorder, body io.ReadCloser) *stream {
	return &stream{ctx: ctx, g: g, rec: rec, up: body, sse: newSSEReader(body, g.cfg.maxBody), acc: newAccumulator(rec.c.api)}
}

// Read implements io.Reader.
func (s *stream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.off >= len(s.out) {
		if s.err != nil {
			return 0, s.err
		}
		s.out, s.off = s.out[:0], 0
		s.fill()
	}
	n := copy(p, s.out[s.off:])
	s.off += n
	return n, nil
}

// Close closes the upstream body. A stream closed before its final event
// is recorded as "closed" with the text delivered so far.
func (s *stream) Close() error {
	s.closed.Store(true)
	err := s.up.Close() // unblocks a Read waiting on the upstream
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		if rerr := s.end("closed", nil); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	if s.err == nil || s.err == io.EOF {
		s.err = ErrClosed
	}
	s.off = len(s.out)
	return err
}

// fill reads the next batch of events and decides what of it is
// delivered, held or refused. The caller holds s.mu.
func (s *stream) fill() {
	s.batch = s.batch[:0]
	size := 0
	var stop effect // the final event, or the provider's error
	var readErr error
	var tail []byte // what follows the last event: blank lines, comments
	st := s.acc.state()
	for {
		ev, err := s.sse.next()
		if err != nil {
			readErr = err
			if errors.Is(err, io.EOF) {
				tail = ev.raw
			}
			break
		}
		var eff effect
		if !ev.empty() {
			eff, err = s.acc.handle(ev)
			if err != nil {
				readErr = fmt.Errorf("%w: %s event: %w", ErrMalformed, s.rec.c.api, err)
				break
			}
		}
		if eff&effTerminal != 0 {
			// Nothing may follow the final event: it is delivered only once
			// the stream has ended.
			rest, err := s.drain()
			if err != nil {
				readErr = err
				break
			}
			stop, tail = eff, rest
		}
		if eff&(effTool|effTerminal) != 0 {
			s.holding = true
		}
		s.batch = append(s.batch, pending{raw: ev.raw, eff: eff, held: s.holding, lens: st.lens(), usage: st.usage})
		size += len(ev.raw)
		if stop != 0 || size >= maxBatchBytes {
			break
		}
		if !s.sse.buffered() && (s.holding || s.newText() >= s.g.cfg.checkBytes) {
			break
		}
	}
	if err := s.check(); err != nil {
		s.fail(err)
		return
	}
	for i := range s.batch {
		e := &s.batch[i]
		if e.held {
			s.held = append(s.held, e.raw...)
			continue
		}
		s.out = append(s.out, e.raw...)
		s.delivered = e.lens
	}
	if s.holding {
		s.held = append(s.held, tail...)
	} else {
		s.out = append(s.out, tail...)
	}
	switch {
	case stop&effError != 0:
		// The provider's error goes to the agent once recorded; what was
		// held never does.
		if err := s.end("provider_error", nil); err != nil {
			s.fail(err)
			return
		}
		s.held = nil
		s.out = append(s.out, s.batch[len(s.batch)-1].raw...)
		s.out = append(s.out, tail...)
		s.err = io.EOF
	case stop&effTerminal != 0:
		s.finish()
	case readErr != nil:
		s.ended(readErr)
	}
}

// drain reads the stream to its end after the final event: anything but
// blank lines and comments there is refused. It returns what it read.
func (s *stream) drain() ([]byte, error) {
	var rest []byte
	for {
		ev, err := s.sse.next()
		rest = append(rest, ev.raw...)
		switch {
		case errors.Is(err, io.EOF):
			return rest, nil
		case !ev.empty():
			return nil, fmt.Errorf("%w: %s: %w", ErrMalformed, s.rec.c.api, errAfterEnd)
		case err != nil:
			return nil, err
		}
	}
}

// check evaluates the batch's text (and the usage known so far) before it
// is delivered. It returns the error that ends the stream, if any, having
// delivered the events that pass.
func (s *stream) check() error {
	n := len(s.batch)
	if n == 0 {
		return nil
	}
	changed := false
	for i := range s.batch {
		if s.batch[i].eff&(effText|effUsage) != 0 {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	last := &s.batch[n-1]
	if n > 1 {
		ev, err := s.rec.hold.check(s.ctx, s.g.run, &s.checks, s.attempted(last.lens, last.usage))
		if err == nil && ev.Decision.Action != prevention.Block {
			return nil
		}
	}
	// Event by event: the stream ends just before the first event that is
	// blocked.
	dl := s.delivered
	for i := range s.batch {
		e := &s.batch[i]
		if e.eff&(effText|effUsage) != 0 {
			if err := s.withhold(dl, e); err != nil {
				for _, d := range s.batch[:i] {
					if !d.held {
						s.out = append(s.out, d.raw...)
						s.delivered = d.lens
					}
				}
				s.done = true
				return err
			}
		}
		if !e.held {
			dl = e.lens
		}
	}
	return nil
}

// withhold governs the response as it stands once e is applied, with
// the text at dl delivered: Withhold, which stops the run, recording
// what was delivered, if a policy blocks it. While the call's
// reservation holds, it is the reservation's (hold.withhold): the
// tenant's counters it reads leave the reservation out, so that the
// stream is counted once, by what it has used; a Block gives the
// reservation back, and a pass leaves it held to the end of the stream.
func (s *stream) withhold(dl []int, e *pending) error {
	attempted := s.attempted(e.lens, e.usage)
	delivered := s.attempted(dl, e.usage)
	delivered.Metadata[MetaStream] = "blocked"
	delivered.Metadata[MetaUsage] = partialUsage(e.usage)
	_, err := s.rec.hold.withhold(s.ctx, s.g.run, &s.checks, attempted, delivered)
	return err
}

// newText is the text the batch adds, in bytes; 0 if it adds none, so
// that a batch without text is never held back.
func (s *stream) newText() int {
	if len(s.batch) == 0 {
		return 0
	}
	n := 0
	for i, l := range s.batch[len(s.batch)-1].lens {
		n += l
		if i < len(s.delivered) {
			n -= s.delivered[i]
		}
	}
	if n == 0 {
		return 1 << 30
	}
	return n
}

func partialUsage(u usage) string {
	if u == (usage{}) {
		return "missing"
	}
	return "partial"
}

// attempted is the response step with the text at lens and usage u.
func (s *stream) attempted(lens []int, u usage) governance.StepInput {
	st := s.acc.state()
	r := result{model: st.model, text: st.text(lens), usage: u, hasUsage: true}
	in := s.rec.response(&r)
	in.Metadata[MetaStream] = "streaming"
	delete(in.Metadata, MetaStop)
	return in
}

// finish records the response and its tool calls at the final event, the
// stream read to its end, and releases what was held. A response whose
// tool calls cannot be read as the SDK reads them, or whose names the
// runner would refuse, is refused as malformed. The caller holds s.mu.
func (s *stream) finish() {
	r, err := s.acc.result()
	if err == nil {
		err = r.check()
	}
	if err != nil {
		s.ended(fmt.Errorf("%w: %s: %w", ErrMalformed, s.rec.c.api, err))
		return
	}
	s.done = true
	if err := s.rec.record(s.ctx, &r, MetaStream, "complete"); err != nil {
		s.fail(err)
		return
	}
	s.out = append(s.out, s.held...)
	s.held = nil
	s.err = io.EOF
}

// ended handles the end of the upstream before the final event.
func (s *stream) ended(readErr error) {
	if errors.Is(readErr, io.EOF) && s.acc.finished() {
		// A chat completion stream without its "[DONE]": every choice had
		// finished, so the response is complete.
		s.finish()
		return
	}
	kind := "truncated"
	var cause error
	switch {
	case s.closed.Load():
		kind = "closed"
	case errors.Is(readErr, ErrMalformed):
		kind, cause = "malformed", readErr
	case errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF):
		cause = fmt.Errorf("%w: %w", ErrTruncated, io.ErrUnexpectedEOF)
	default:
		kind, cause = "read_error", fmt.Errorf("%w: %w", ErrTruncated, readErr)
	}
	err := cause
	if rerr := s.end(kind, cause); rerr != nil {
		err = errors.Join(cause, rerr)
	}
	if err == nil {
		err = ErrClosed
	}
	s.fail(err)
}

// end records the response as it stands, with what was delivered, when
// the stream did not complete. The caller holds s.mu.
func (s *stream) end(kind string, cause error) error {
	if s.done {
		return nil
	}
	s.done = true
	st := s.acc.state()
	r := result{id: st.id, model: st.model, text: st.text(s.delivered), usage: st.usage, hasUsage: st.usage != usage{}}
	extra := []string{MetaStream, kind}
	if r.hasUsage {
		extra = append(extra, MetaUsage, "partial")
	}
	if cause != nil {
		extra = append(extra, MetaError, cause.Error())
	}
	_, err := s.rec.settle(s.ctx, s.rec.response(&r, extra...))
	return err
}

// fail ends the stream with err after what is already in out. A stream
// that fails has recorded its step (which settled the reservation) or
// never will (a Withhold stopped the run, and gave the reservation back;
// or a check failed): the reservation is given back, a no-op unless the
// check failed.
func (s *stream) fail(err error) {
	s.err = err
	s.held = nil
	s.up.Close()
	s.rec.hold.release(s.ctx)
}
