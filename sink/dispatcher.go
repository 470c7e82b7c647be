package sink

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
)

// Dispatcher delivers the outbox of a store to its sinks, and is the
// governance.Outbox that writes the deliveries of every run's end:
//
//	d, err := sink.NewDispatcher(store, []sink.Sink{hook})
//	runner, err := governance.NewRunner(store, governance.WithOutbox(d))
//	go d.Run(ctx) // delivers until ctx is done
//
// Deliveries are at least once. Run claims due deliveries of its sinks
// from the store (a lease, so that dispatchers in other processes or on
// other replicas never hold the same one at once), delivers each on a
// goroutine of its own, and acknowledges it, or records the failure and
// when to try again: after Backoff·2^(attempt-1), at most MaxBackoff,
// with jitter (half of it random). After MaxAttempts attempts, or an
// error wrapping ErrPermanent, the delivery is dead: listed by the store
// as such, retried only on request (governance.OutboxStore.RetryDelivery,
// stopline outbox retry). A dispatcher that starts picks up whatever is
// due, the deliveries left by a process that died included (once their
// lease has ended).
//
// Nothing of this is on a step's path: the runner only adds the
// deliveries to the transaction that ends a run, and wakes the
// dispatcher. A Dispatcher is safe for concurrent use; Run is called
// once.
type Dispatcher struct {
	store governance.OutboxStore
	sinks map[string]Sink
	names []string
	cfg   dispatchConfig
	wake  chan struct{}

	running atomic.Bool
}

var _ governance.Outbox = (*Dispatcher)(nil)

type dispatchConfig struct {
	owner       string
	lease       time.Duration
	timeout     time.Duration
	maxAttempts int
	backoff     time.Duration
	maxBackoff  time.Duration
	poll        time.Duration
	concurrency int
	logger      *slog.Logger
	bundles     BundleFunc
}

// Defaults of NewDispatcher.
const (
	DefaultLease       = time.Minute
	DefaultTimeout     = 10 * time.Second
	DefaultMaxAttempts = 30
	DefaultBackoff     = 5 * time.Second
	DefaultMaxBackoff  = time.Hour
	DefaultPoll        = 2 * time.Second
	DefaultConcurrency = 8
)

// Option configures a Dispatcher.
type Option func(*dispatchConfig) error

// WithOwner names the dispatcher in the leases it takes (default: host
// name, process id and a random suffix). Owners must be unique.
func WithOwner(owner string) Option {
	return func(c *dispatchConfig) error {
		if owner == "" || !utf8.ValidString(owner) {
			return fmt.Errorf("WithOwner: %q is not a valid owner", owner)
		}
		c.owner = owner
		return nil
	}
}

// WithLease sets how long a claimed delivery is held before another
// dispatcher may claim it again (default 1 min). It must exceed the
// delivery timeout.
func WithLease(d time.Duration) Option {
	return func(c *dispatchConfig) error {
		if d <= 0 {
			return fmt.Errorf("WithLease: %v is not positive", d)
		}
		c.lease = d
		return nil
	}
}

// WithTimeout bounds one delivery to one sink (default 10 s).
func WithTimeout(d time.Duration) Option {
	return func(c *dispatchConfig) error {
		if d <= 0 {
			return fmt.Errorf("WithTimeout: %v is not positive", d)
		}
		c.timeout = d
		return nil
	}
}

// WithRetries sets how often a delivery is attempted before it is dead
// (default 30), and the backoff between attempts: base·2^(attempt-1),
// at most max, the second half of it random (defaults 5 s and 1 h: the
// 30th attempt comes 10 to 21 hours after the first).
func WithRetries(maxAttempts int, base, max time.Duration) Option {
	return func(c *dispatchConfig) error {
		if maxAttempts < 1 || base <= 0 || max < base {
			return fmt.Errorf("WithRetries: %d attempts, backoff %v up to %v: need at least 1 attempt and 0 < base <= max", maxAttempts, base, max)
		}
		c.maxAttempts, c.backoff, c.maxBackoff = maxAttempts, base, max
		return nil
	}
}

// WithPoll sets how often Run looks for due deliveries when nothing wakes
// it (default 2 s). A run's end in the same process wakes it at once.
func WithPoll(d time.Duration) Option {
	return func(c *dispatchConfig) error {
		if d <= 0 {
			return fmt.Errorf("WithPoll: %v is not positive", d)
		}
		c.poll = d
		return nil
	}
}

// WithConcurrency bounds the deliveries in flight at once (default 8).
func WithConcurrency(n int) Option {
	return func(c *dispatchConfig) error {
		if n < 1 {
			return fmt.Errorf("WithConcurrency: %d is less than 1", n)
		}
		c.concurrency = n
		return nil
	}
}

// WithBundles gives each EventIncidentCreated its run's evidence bundle
// (Event.Bundle), built by f for each attempt, within the delivery
// timeout; an error of f fails the attempt (it is retried). Default: no
// bundles.
func WithBundles(f BundleFunc) Option {
	return func(c *dispatchConfig) error {
		if f == nil {
			return errors.New("WithBundles: nil function")
		}
		c.bundles = f
		return nil
	}
}

// WithLogger logs deliveries through l: delivered at Debug, a failed
// attempt at Warn, a dead delivery and store errors at Error (default:
// no logs).
func WithLogger(l *slog.Logger) Option {
	return func(c *dispatchConfig) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		c.logger = l
		return nil
	}
}

// NewDispatcher returns a Dispatcher delivering the outbox of store to
// sinks. The store must implement governance.OutboxStore (else the error
// matches governance.ErrOutboxUnsupported); sinks need distinct, non-empty
// names. Defaults: see the Default constants and each Option.
func NewDispatcher(store governance.Store, sinks []Sink, opts ...Option) (*Dispatcher, error) {
	ob, ok := store.(governance.OutboxStore)
	if !ok {
		return nil, fmt.Errorf("sink: NewDispatcher: %w", governance.ErrOutboxUnsupported)
	}
	if len(sinks) == 0 {
		return nil, errors.New("sink: NewDispatcher: no sinks")
	}
	d := &Dispatcher{store: ob, sinks: map[string]Sink{}, wake: make(chan struct{}, 1)}
	for _, s := range sinks {
		if s == nil {
			return nil, errors.New("sink: NewDispatcher: nil sink")
		}
		n := s.Name()
		if n == "" || !utf8.ValidString(n) || len(n) > 200 {
			return nil, fmt.Errorf("sink: NewDispatcher: %T has the name %q: a sink needs a name of at most 200 bytes of UTF-8", s, n)
		}
		if d.sinks[n] != nil {
			return nil, fmt.Errorf("sink: NewDispatcher: two sinks named %q", n)
		}
		d.sinks[n] = s
		d.names = append(d.names, n)
	}
	d.cfg = dispatchConfig{
		lease: DefaultLease, timeout: DefaultTimeout, maxAttempts: DefaultMaxAttempts,
		backoff: DefaultBackoff, maxBackoff: DefaultMaxBackoff, poll: DefaultPoll,
		concurrency: DefaultConcurrency, logger: slog.New(slog.DiscardHandler),
	}
	for _, o := range opts {
		if err := o(&d.cfg); err != nil {
			return nil, fmt.Errorf("sink: NewDispatcher: %w", err)
		}
	}
	if d.cfg.lease <= d.cfg.timeout {
		return nil, fmt.Errorf("sink: NewDispatcher: lease %v must exceed the delivery timeout %v", d.cfg.lease, d.cfg.timeout)
	}
	if d.cfg.owner == "" {
		host, _ := os.Hostname()
		var b [4]byte
		_, _ = rand.Read(b[:])
		d.cfg.owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(b[:]))
	}
	return d, nil
}

// Sinks returns the names of the dispatcher's sinks.
func (d *Dispatcher) Sinks() []string { return append([]string(nil), d.names...) }

// Deliveries implements governance.Outbox: one delivery of each event of
// a run's end (EventIncidentCreated when inc is not nil, then
// EventRunEnded) to each sink.
func (d *Dispatcher) Deliveries(run governance.RunRecord, inc *incident.Incident) ([]governance.Delivery, error) {
	return deliveries(d.names, run, inc)
}

// Stored implements governance.Outbox: it wakes Run, without waiting.
func (d *Dispatcher) Stored([]governance.Delivery) { d.signal() }

func (d *Dispatcher) signal() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers due deliveries until ctx is done, then waits for the
// deliveries in flight (their contexts are cancelled with ctx; each is
// due again at once) and returns nil. It returns an error only for a
// dispatcher that is already running.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("sink: Dispatcher.Run: already running")
	}
	defer d.running.Store(false)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		inflight int
	)
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		mu.Lock()
		free := d.cfg.concurrency - inflight
		mu.Unlock()
		full := false
		if free > 0 && ctx.Err() == nil {
			ds, err := d.store.ClaimDeliveries(ctx, governance.DeliveryClaim{
				Owner: d.cfg.owner, Sinks: d.names, Now: time.Now().UTC(), Lease: d.cfg.lease, Limit: free})
			if err != nil && ctx.Err() == nil {
				d.cfg.logger.LogAttrs(ctx, slog.LevelError, "claiming deliveries failed", slog.String("error", err.Error()))
			}
			mu.Lock()
			inflight += len(ds)
			mu.Unlock()
			for _, del := range ds {
				wg.Add(1)
				go func() {
					defer wg.Done()
					d.deliver(ctx, del)
					mu.Lock()
					inflight--
					mu.Unlock()
					d.signal()
				}()
			}
			full = len(ds) == free
		}
		if full {
			// There may be more due: claim again once a slot is free.
			select {
			case <-ctx.Done():
				return nil
			case <-d.wake:
			}
			continue
		}
		timer.Reset(d.cfg.poll)
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-timer.C:
		}
	}
}

// deliver makes one attempt and records its outcome.
func (d *Dispatcher) deliver(ctx context.Context, del governance.Delivery) {
	s := d.sinks[del.Sink]
	e := Event{ID: del.ID, Type: EventType(del.Event), Attempt: del.Attempts, TenantID: del.TenantID, RunID: del.RunID,
		IncidentID: del.IncidentID, CreatedAt: del.CreatedAt, Body: del.Payload}
	dctx, cancel := context.WithTimeout(ctx, d.cfg.timeout)
	var err error
	if d.cfg.bundles != nil && e.Type == EventIncidentCreated {
		if e.Bundle, err = d.cfg.bundles(dctx, e.TenantID, e.RunID); err != nil {
			err = fmt.Errorf("sink: building the evidence bundle of run %s: %w", e.RunID, err)
		}
	}
	if err == nil {
		err = call(dctx, s, e)
	}
	cancel()
	// The outcome is recorded even when ctx is done: it is what happened.
	wctx, wcancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.timeout)
	defer wcancel()
	now := time.Now().UTC()
	attrs := []slog.Attr{slog.String("sink", del.Sink), slog.String("delivery_id", del.ID), slog.String("event", del.Event),
		slog.String("tenant_id", del.TenantID), slog.String("run_id", del.RunID), slog.Int("attempt", del.Attempts)}
	if err == nil {
		if aerr := d.store.AckDelivery(wctx, del.TenantID, del.ID, now); aerr != nil {
			d.cfg.logger.LogAttrs(ctx, slog.LevelError, "delivered, but the acknowledgement was not recorded; it will be delivered again",
				append(attrs, slog.String("error", aerr.Error()))...)
			return
		}
		d.cfg.logger.LogAttrs(ctx, slog.LevelDebug, "delivered", attrs...)
		return
	}
	f := governance.DeliveryFailure{TenantID: del.TenantID, ID: del.ID, Owner: d.cfg.owner, Attempt: del.Attempts,
		Error: truncate(err.Error(), 1024), At: now}
	level, msg := slog.LevelWarn, "delivery failed; it will be retried"
	switch {
	case ctx.Err() != nil:
		f.RetryAt = now // stopped, not failed: due again at once
	case errors.Is(err, ErrPermanent) || del.Attempts >= d.cfg.maxAttempts:
		f.Dead = true
		level, msg = slog.LevelError, "delivery failed for good; it is dead"
	default:
		f.RetryAt = now.Add(d.backoff(del.Attempts))
		attrs = append(attrs, slog.Time("retry_at", f.RetryAt))
	}
	attrs = append(attrs, slog.String("error", f.Error))
	if ferr := d.store.FailDelivery(wctx, f); ferr != nil && !errors.Is(ferr, governance.ErrLeaseLost) {
		attrs = append(attrs, slog.String("store_error", ferr.Error()))
		level = slog.LevelError
	}
	d.cfg.logger.LogAttrs(ctx, level, msg, attrs...)
}

// backoff is the wait after the given failed attempt: base·2^(attempt-1)
// capped at max, of which the second half is random.
func (d *Dispatcher) backoff(attempt int) time.Duration {
	w := d.cfg.backoff
	for i := 1; i < attempt && w < d.cfg.maxBackoff; i++ {
		w *= 2
	}
	w = min(w, d.cfg.maxBackoff)
	half := w / 2
	return half + mrand.N(w-half+1)
}

// call delivers e to s, turning a panic into an error. A sink that does
// not return when ctx is done is abandoned (its goroutine left to finish
// on its own) and the attempt fails: it cannot hold a delivery slot.
func call(ctx context.Context, s Sink, e Event) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("sink %s panicked: %v", s.Name(), p)
			}
		}()
		done <- s.Deliver(ctx, e)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		select {
		case err := <-done:
			return err
		default:
		}
		return fmt.Errorf("sink %s did not return when its context was done, and was abandoned: %w", s.Name(), ctx.Err())
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
