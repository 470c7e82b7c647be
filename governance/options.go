package governance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// Option configures a Runner.
type Option func(*config) error

type config struct {
	clock        Clock
	kinds        *prevention.Kinds
	hooks        []prevention.NamedHook
	newID        func(kind string) string
	failOpen     bool
	stepTimeout  time.Duration
	writeTimeout time.Duration
	maxContent   int
	cpSigner     note.Signer
	cpEvery      int
	observers    []Observer
	retention    trace.Retention            // for every tenant not in tenantRetention
	tenantRet    map[string]trace.Retention // by tenant
	killPoll     time.Duration              // 0: no kill-switch watcher
	holdDefault  time.Duration
	holdMax      time.Duration
	holdPoll     time.Duration
}

// Defaults of NewRunner.
const (
	DefaultStepTimeout     = 10 * time.Second
	DefaultMaxContentBytes = 1 << 20
	// DefaultHoldWait is how long a held step waits for an answer when its
	// policy or hook does not say; DefaultMaxHoldWait bounds every wait;
	// DefaultHoldPoll is how often a waiting step reads its hold.
	DefaultHoldWait    = 15 * time.Minute
	DefaultMaxHoldWait = 24 * time.Hour
	DefaultHoldPoll    = 250 * time.Millisecond
	// DefaultKillPoll is how often WithKillSwitch reads the active
	// switches when the store sends no change signal sooner.
	DefaultKillPoll = 250 * time.Millisecond
)

// WithHolds sets how long a step held for approval waits: wait when the
// policy or hook gives no hold_seconds (default DefaultHoldWait), at most
// max whatever they give (default DefaultMaxHoldWait), reading the hold
// every poll (default DefaultHoldPoll; a store that implements Changes
// wakes the step sooner). Zero keeps a default.
func WithHolds(wait, max, poll time.Duration) Option {
	return func(cfg *config) error {
		if wait < 0 || max < 0 || poll < 0 {
			return errors.New("WithHolds: negative duration")
		}
		if wait > 0 {
			cfg.holdDefault = wait
		}
		if max > 0 {
			cfg.holdMax = max
		}
		if poll > 0 {
			cfg.holdPoll = poll
		}
		if cfg.holdDefault > cfg.holdMax {
			return fmt.Errorf("WithHolds: default wait %s above the maximum %s", cfg.holdDefault, cfg.holdMax)
		}
		return nil
	}
}

// WithKillSwitch makes the runner honour kill switches (Kill): it reads
// the active switches when it is made (NewRunner fails if it cannot), then
// keeps them in memory, read again every poll (0: DefaultKillPoll) and at
// every change signal of a store that implements Changes (PostgreSQL
// LISTEN/NOTIFY). A step checks them with one atomic load, no query;
// Start reads the tenant's switches from the store. The store must
// implement KillStore. Stop the watcher with Runner.Close.
func WithKillSwitch(poll time.Duration) Option {
	return func(cfg *config) error {
		if poll < 0 {
			return errors.New("WithKillSwitch: negative poll interval")
		}
		if poll == 0 {
			poll = DefaultKillPoll
		}
		cfg.killPoll = poll
		return nil
	}
}

// WithClock sets the clock steps are timed with (default: the system clock).
func WithClock(c Clock) Option {
	return func(cfg *config) error {
		if c == nil {
			return errors.New("WithClock: nil clock")
		}
		cfg.clock = c
		return nil
	}
}

// WithKinds sets the policy kinds the runner compiles snapshots with
// (default: prevention.Builtin()). A snapshot naming a kind outside the
// set cannot start a run or be published; load policy files with the same
// set (snapshot.Load(path, now, runner.Kinds())) so that such a file is
// refused when it is read:
//
//	kinds, err := prevention.NewKinds(cel.Kind())
//	runner, err := governance.NewRunner(store, governance.WithKinds(kinds))
func WithKinds(kinds *prevention.Kinds) Option {
	return func(cfg *config) error {
		if kinds == nil {
			return errors.New("WithKinds: nil kinds")
		}
		cfg.kinds = kinds
		return nil
	}
}

// WithHooks adds Go hooks that run after the snapshot's policies on every
// step of every run. Each decides under its own id (Source "hook").
//
// A hook gets the step's context, bounded by the step timeout, and must
// return when it is done; one that does not is abandoned then (its
// goroutine left to finish on its own) and the step fails closed, as for a
// hook error. A hook that is a prevention.ChargedHook is called as it is
// and must honour its context itself.
func WithHooks(hooks ...prevention.NamedHook) Option {
	return func(cfg *config) error {
		for _, h := range hooks {
			if h.ID == "" || h.Hook == nil {
				return errors.New("WithHooks: a hook needs an ID and a Hook")
			}
			if !utf8.ValidString(h.ID) {
				return fmt.Errorf("WithHooks: hook id %q is not valid UTF-8", h.ID)
			}
			if _, charged := h.Hook.(prevention.ChargedHook); !charged {
				h.Hook = boundedHook{h.Hook}
			}
			cfg.hooks = append(cfg.hooks, h)
		}
		return nil
	}
}

// hookPanic carries a panic of a bounded hook's goroutine to the caller.
type hookPanic struct{ value any }

func (p *hookPanic) Error() string { return fmt.Sprint(p.value) }

// Unwrap returns the panic value, if it was an error.
func (p *hookPanic) Unwrap() error {
	err, _ := p.value.(error)
	return err
}

// boundedHook returns when its context is done, whether or not the hook
// it calls does: a hook stuck on something that ignores the context
// cannot hold a step (and the run's lock) past the step timeout.
type boundedHook struct{ h prevention.Hook }

func (b boundedHook) Evaluate(ctx context.Context, step *prevention.Step) (prevention.Decision, error) {
	if ctx.Done() == nil {
		return b.h.Evaluate(ctx, step) // no deadline: nothing to bound
	}
	type result struct {
		d        prevention.Decision
		err      error
		panicked any
	}
	done := make(chan result, 1)
	cp := *step // the hook may outlive this call: it gets its own copy
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- result{panicked: p}
			}
		}()
		d, err := b.h.Evaluate(ctx, &cp)
		done <- result{d: d, err: err}
	}()
	select {
	case r := <-done:
		if r.panicked != nil {
			panic(&hookPanic{value: r.panicked}) // for the engine to recover, as if raised here
		}
		return r.d, r.err
	case <-ctx.Done():
		select {
		case r := <-done: // it did return, at the same moment
			if r.panicked == nil {
				return r.d, r.err
			}
		default:
		}
		return prevention.Decision{}, fmt.Errorf("hook did not return when its context was done, and was abandoned: %w", ctx.Err())
	}
}

// WithIDGenerator sets how run, trace and incident ids are made (default:
// "RUN-", "TRC-" and "INC-" followed by 16 random hex digits). kind is
// "run", "trace" or "incident". Ids must be unique.
func WithIDGenerator(f func(kind string) string) Option {
	return func(cfg *config) error {
		if f == nil {
			return errors.New("WithIDGenerator: nil function")
		}
		cfg.newID = f
		return nil
	}
}

// WithFailOpen makes a step that the store could not record pass anyway
// (default: fail closed, the step is not allowed and the run ends with
// system_failure). Policies still decide every step; an unrecorded step
// is not in the chain, and each run records in its run_start record that
// it was started fail-open and, in its run_end record, how many steps went
// unrecorded. Hook errors and panics fail closed whatever this option says.
func WithFailOpen() Option {
	return func(cfg *config) error { cfg.failOpen = true; return nil }
}

// WithStepTimeout bounds the evaluation of one step (default 10 s): a
// hook that does not return by then fails the step closed.
func WithStepTimeout(d time.Duration) Option {
	return func(cfg *config) error {
		if d <= 0 {
			return fmt.Errorf("WithStepTimeout: %v is not positive", d)
		}
		cfg.stepTimeout = d
		return nil
	}
}

// WithWriteTimeout bounds each store write. Writes are never interrupted
// by the caller's cancellation, so that a decision that was made is
// recorded; by default they are bounded only by the store's own limits
// (SQLite's busy timeout, Postgres' statement timeout), which keeps the
// per-step path free of timers. Set this to bound them here too.
func WithWriteTimeout(d time.Duration) Option {
	return func(cfg *config) error {
		if d <= 0 {
			return fmt.Errorf("WithWriteTimeout: %v is not positive", d)
		}
		cfg.writeTimeout = d
		return nil
	}
}

// WithMaxContentBytes caps the input and output text stored per step
// (default 1 MiB each). Policies always see the whole text; what is
// stored beyond the cap is cut, and the step's metadata says so
// ("stopline.truncated").
func WithMaxContentBytes(n int) Option {
	return func(cfg *config) error {
		if n <= 0 {
			return fmt.Errorf("WithMaxContentBytes: %d is not positive", n)
		}
		cfg.maxContent = n
		return nil
	}
}

// WithCheckpoints signs a checkpoint of each run's chain (its size and
// head hash, as a signed note of golang.org/x/mod/sumdb/note) when the run
// ends, and every `every` steps while it runs (0: only at the end), and
// stores it. The signer's key must be held outside the database: then
// even a writer who rewrites the records and recomputes every hash is
// caught by VerifyCheckpoint. Default: no checkpoints.
func WithCheckpoints(signer note.Signer, every int) Option {
	return func(cfg *config) error {
		if signer == nil {
			return errors.New("WithCheckpoints: nil signer")
		}
		if every < 0 {
			return fmt.Errorf("WithCheckpoints: every %d is negative", every)
		}
		cfg.cpSigner, cfg.cpEvery = signer, every
		return nil
	}
}

// WithRetention sets how runs keep their steps' content (default
// trace.RetentionFull): in full; trace.RetentionRedacted, each match of
// the content policies of the run's snapshot (and of its shadow) masked
// with trace.RedactMask in the input and output, metadata kept; or
// trace.RetentionHashes, only the content hash. With tenants, it sets
// the retention of those tenants only; without, of every other tenant.
// It may be given several times.
//
// The retention is a floor: a run may ask for less (StartOptions.Retention),
// never for more than its tenant's. Whatever is kept, the record binds
// the hash of the whole content, so that the chain verifies the same;
// the retention is recorded in the run's run_start record, and the
// content's hash of what was kept in each step record. Replay and WhatIf
// report the steps whose content was not kept as not re-evaluable for
// the policies that read text; observers see what was kept.
func WithRetention(r trace.Retention, tenants ...string) Option {
	return func(cfg *config) error {
		if !r.Valid() {
			return fmt.Errorf("WithRetention: %q is not full, redacted or hashes", r)
		}
		if len(tenants) == 0 {
			cfg.retention = r
			return nil
		}
		if cfg.tenantRet == nil {
			cfg.tenantRet = map[string]trace.Retention{}
		}
		for _, t := range tenants {
			if t == "" {
				return errors.New("WithRetention: empty tenant id")
			}
			cfg.tenantRet[t] = r
		}
		return nil
	}
}

// retentionFor returns the retention of a run of tenant that asks for
// asked ("" for its tenant's): the one that keeps less.
func (cfg *config) retentionFor(tenant string, asked trace.Retention) trace.Retention {
	r := cfg.retention.Effective()
	if t, ok := cfg.tenantRet[tenant]; ok {
		r = t
	}
	if asked != "" && !asked.Keeps(r) {
		return asked
	}
	return r
}

func randomID(kind string) string {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	prefix := map[string]string{"run": "RUN-", "trace": "TRC-", "incident": "INC-", "hold": "HOLD-", "kill": "KILL-"}[kind]
	if prefix == "" {
		prefix = "ID-"
	}
	return prefix + hex.EncodeToString(b[:])
}
