package governance

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/sync/singleflight"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// Runner starts governed runs over a Store. It is safe for concurrent use
// by many runs at once. Each snapshot is stored and compiled once, however
// many runs start with it at the same moment.
type Runner struct {
	store Store
	cfg   config

	sf      singleflight.Group
	mu      sync.Mutex
	engines map[string]*prevention.Engine // tenant "\x00" snapshot id

	kw *killWatch // nil over a store without KillStore, or WithoutKillSwitch
}

// NewRunner returns a Runner recording into store. Defaults: the system
// clock, the built-in policy kinds (prevention.Builtin), no extra hooks, random ids ("RUN-…", "TRC-…", "INC-…"), fail
// closed when the store cannot record, a step timeout of 10 s, writes
// bounded by the store's own limits, and 1 MiB of stored text per step
// field, no outbox.
func NewRunner(store Store, opts ...Option) (*Runner, error) {
	if store == nil {
		return nil, errors.New("governance: NewRunner: nil store")
	}
	cfg := config{
		clock:       systemClock{},
		kinds:       prevention.Builtin(),
		newID:       randomID,
		stepTimeout: DefaultStepTimeout,
		maxContent:  DefaultMaxContentBytes,
		holdDefault: DefaultHoldWait,
		holdMax:     DefaultMaxHoldWait,
		holdPoll:    DefaultHoldPoll,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("governance: NewRunner: %w", err)
		}
	}
	if cfg.outbox != nil {
		if _, ok := store.(OutboxStore); !ok {
			return nil, fmt.Errorf("governance: NewRunner: WithOutbox: %w (the sinks' deliveries would be lost)", ErrOutboxUnsupported)
		}
	}
	r := &Runner{store: store, cfg: cfg, engines: map[string]*prevention.Engine{}}
	ks, keeps := store.(KillStore)
	switch {
	case cfg.killRequired && !cfg.killOff && !keeps:
		return nil, fmt.Errorf("governance: NewRunner: WithKillSwitch: %w", ErrNoKillStore)
	case keeps && !cfg.killOff && cfg.killPoll == 0:
		cfg.killPoll = DefaultKillPoll
		r.cfg.killPoll = DefaultKillPoll
	}
	if keeps && cfg.killPoll > 0 {
		w := &killWatch{store: ks, poll: cfg.killPoll, stop: make(chan struct{}), done: make(chan struct{})}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := w.load(ctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("governance: NewRunner: reading the active kill switches: %w", err)
		}
		var (
			changes     <-chan struct{}
			unsubscribe func()
		)
		if c, ok := store.(Changes); ok {
			changes, unsubscribe = c.SubscribeChanges()
		}
		r.kw = w
		go w.run(changes, unsubscribe, func(error) {})
		// A runner dropped without Close stops its watcher when it is
		// collected: the watcher holds no reference to the runner.
		runtime.AddCleanup(r, func(w *killWatch) { w.halt() }, w)
	}
	return r, nil
}

// Store returns the runner's store.
func (r *Runner) Store() Store { return r.store }

// Kinds returns the policy kinds the runner compiles snapshots with: the
// snapshot.Checker to load policy files with.
func (r *Runner) Kinds() *prevention.Kinds { return r.cfg.kinds }

// StartOptions says how to start a run.
type StartOptions struct {
	// TenantID is required unless Snapshot is given (then it must match).
	TenantID string
	// Snapshot binds the run to this policy snapshot. When nil, the run
	// takes the tenant's active policy version at this instant.
	Snapshot *snapshot.PolicySnapshot
	// RunID, if set, is used instead of a generated id.
	RunID string
	// Labels are free-form facts about the run (agent name, user, ...).
	// The label AgentLabel ("agent") names the run's agent, which a kill
	// switch of scope agent stops.
	Labels map[string]string
	// Shadow, if set, is a second policy snapshot of the run's tenant,
	// evaluated beside the enforcing one at every step the run records:
	// its decisions are recorded in each step record (and so in the
	// chain, its exports and its replay) and never stop the run, block,
	// count against a tenant-wide limit or run the runner's Go hooks.
	// It is stored like any snapshot and bound, by id and content hash,
	// in the run_start record. This is how a policy is tried on live
	// runs before it is published: see Run.Shadow and ShadowOf.
	Shadow *snapshot.PolicySnapshot
	// Retention is how the run keeps its steps' content: "" for its
	// tenant's (WithRetention), or one that keeps less than its tenant's
	// (a run cannot keep more than its tenant's retention allows).
	Retention trace.Retention
}

// Start creates a running run bound to its snapshot and records its
// run_start record. Steps are reported to the returned *Run.
func (r *Runner) Start(ctx context.Context, opts StartOptions) (*Run, error) {
	return r.create(ctx, opts, StatusRunning)
}

// Enqueue creates a run ahead of its first step: it is stored as queued,
// already bound to its snapshot, and becomes running with its first step.
func (r *Runner) Enqueue(ctx context.Context, opts StartOptions) (*Run, error) {
	return r.create(ctx, opts, StatusQueued)
}

func (r *Runner) create(ctx context.Context, opts StartOptions, status RunStatus) (*Run, error) {
	tenant := opts.TenantID
	if opts.Snapshot != nil {
		if tenant == "" {
			tenant = opts.Snapshot.TenantID()
		} else if tenant != opts.Snapshot.TenantID() {
			return nil, fmt.Errorf("governance: start: snapshot %s belongs to tenant %q, not %q", opts.Snapshot.ID(), opts.Snapshot.TenantID(), tenant)
		}
	}
	if tenant == "" {
		return nil, errors.New("governance: start: a run needs a tenant id")
	}
	// Ids are keys, compared byte for byte: invalid UTF-8, which records
	// would hold replaced, is refused rather than changed.
	if !utf8.ValidString(tenant) || !utf8.ValidString(opts.RunID) {
		return nil, fmt.Errorf("governance: start: tenant id %q or run id %q is not valid UTF-8", tenant, opts.RunID)
	}
	var (
		eng     *prevention.Engine
		version int
		err     error
	)
	if opts.Snapshot != nil {
		eng, err = r.engineFor(ctx, tenant, opts.Snapshot.ID(), opts.Snapshot)
	} else {
		var v PolicyVersion
		v, err = r.store.ActivePolicy(ctx, tenant)
		if err != nil {
			return nil, fmt.Errorf("governance: start: no snapshot given and no active policy for tenant %q: %w", tenant, err)
		}
		version = v.Version
		eng, err = r.engineFor(ctx, tenant, v.SnapshotID, nil)
	}
	if err != nil {
		return nil, err
	}
	if err := r.checkLedger(eng); err != nil { // [tenant limits] ledger.go
		return nil, err
	}
	if opts.Retention != "" && !opts.Retention.Valid() {
		return nil, fmt.Errorf("governance: start: retention %q is not full, redacted or hashes", opts.Retention)
	}
	retention := r.cfg.retentionFor(tenant, opts.Retention)
	var shadow *prevention.Engine
	if opts.Shadow != nil {
		if opts.Shadow.TenantID() != tenant {
			return nil, fmt.Errorf("governance: start: shadow snapshot %s belongs to tenant %q, not %q", opts.Shadow.ID(), opts.Shadow.TenantID(), tenant)
		}
		if shadow, err = r.shadowEngine(ctx, tenant, opts.Shadow); err != nil {
			return nil, err
		}
		if err := r.checkLedger(shadow); err != nil {
			return nil, err
		}
	}
	if err := r.checkHolds(eng); err != nil { // [holds] hold.go
		return nil, err
	}
	snap := eng.Snapshot()
	now := r.cfg.clock.Now().UTC()
	runID := opts.RunID
	if runID == "" {
		runID = r.cfg.newID("run")
	}
	agent := agentKey(strings.ToValidUTF8(opts.Labels[AgentLabel], "\uFFFD"))
	if err := r.refuseKilled(ctx, tenant, agent, runID); err != nil { // [kill switch] kill.go
		return nil, err
	}
	rec := RunRecord{
		RunID: runID, TenantID: tenant, TraceID: r.cfg.newID("trace"), SnapshotID: snap.ID(),
		PolicyVersion: version, Status: status, CreatedAt: now, Labels: validLabels(opts.Labels),
	}
	if status == StatusRunning {
		rec.StartedAt = &now
	}
	start := trace.Record{
		TenantID: tenant, RunID: runID, Seq: 0, Kind: trace.KindRunStart, At: now,
		SnapshotID: snap.ID(), SnapshotHash: snap.ContentHash(), StepIndex: -1,
	}
	if r.cfg.failOpen {
		start.Message = "fail-open: steps the store cannot record are allowed"
	}
	if retention != trace.RetentionFull {
		start.Retention = retention
	}
	if shadow != nil {
		start.ShadowSnapshotID, start.ShadowSnapshotHash = shadow.Snapshot().ID(), shadow.Snapshot().ContentHash()
	}
	body := trace.Seal(&start, trace.GenesisHash, nil)
	rec.HeadHash, rec.ChainLength = start.Hash, 1
	wctx, cancel := r.writeContext(ctx)
	defer cancel()
	if err := r.store.CreateRun(wctx, rec, StepWrite{Record: start, Body: body}); err != nil {
		return nil, fmt.Errorf("%w: start of run %s: %w", ErrRecordFailed, runID, err)
	}
	run := &Run{
		r: r, engine: eng, rec: rec, head: start.Hash, seq: 1, startedAt: now,
		queued: status == StatusQueued, shadow: shadow, retention: retention,
		agent: agent,
	}
	run.shadowScan.Add(&start)
	if r.observed() {
		e := RunEvent{Run: rec, SnapshotHash: snap.ContentHash(), At: now}
		e.Run.Labels = cloneLabels(rec.Labels)
		r.notify(func(o Observer) { o.RunStarted(ctx, e) })
	}
	return run, nil
}

// shadowEngine returns the compiled engine of a shadow snapshot: its
// policies alone, without the runner's Go hooks, stored and compiled once.
func (r *Runner) shadowEngine(ctx context.Context, tenant string, snap *snapshot.PolicySnapshot) (*prevention.Engine, error) {
	eng, err := r.compiled(ctx, "shadow\x00"+tenant+"\x00"+snap.ID(), tenant, snap.ID(), snap, nil)
	if err != nil {
		return nil, fmt.Errorf("governance: start: shadow: %w", err)
	}
	return eng, nil
}

// engineFor returns the compiled engine of a tenant's snapshot, storing
// and compiling it once. snap is nil when it must be read from the store.
func (r *Runner) engineFor(ctx context.Context, tenant, snapID string, snap *snapshot.PolicySnapshot) (*prevention.Engine, error) {
	return r.compiled(ctx, tenant+"\x00"+snapID, tenant, snapID, snap, r.cfg.hooks)
}

// compiled is engineFor under key, compiling with hooks.
func (r *Runner) compiled(ctx context.Context, key, tenant, snapID string, snap *snapshot.PolicySnapshot, hooks []prevention.NamedHook) (*prevention.Engine, error) {
	r.mu.Lock()
	eng := r.engines[key]
	r.mu.Unlock()
	if eng != nil {
		if snap != nil && snap.ContentHash() != eng.Snapshot().ContentHash() {
			return nil, fmt.Errorf("governance: snapshot %s: %w", snapID, ErrSnapshotConflict)
		}
		return eng, nil
	}
	v, err, _ := r.sf.Do(key, func() (any, error) {
		// Another caller may have finished compiling between our look-up
		// above and this call: use its engine rather than store again.
		r.mu.Lock()
		done := r.engines[key]
		r.mu.Unlock()
		if done != nil {
			return done, nil
		}
		s := snap
		if s == nil {
			var err error
			s, err = r.store.Snapshot(ctx, tenant, snapID)
			if err != nil {
				return nil, fmt.Errorf("governance: loading snapshot %s of tenant %q: %w", snapID, tenant, err)
			}
		}
		e, err := r.cfg.kinds.Compile(s, hooks...)
		if err != nil {
			return nil, fmt.Errorf("governance: compiling snapshot %s: %w", snapID, err)
		}
		if snap != nil {
			if err := r.store.PutSnapshot(ctx, s); err != nil {
				return nil, fmt.Errorf("%w: snapshot %s: %w", ErrRecordFailed, snapID, err)
			}
		}
		r.mu.Lock()
		r.engines[key] = e
		r.mu.Unlock()
		return e, nil
	})
	if err != nil {
		return nil, err
	}
	eng = v.(*prevention.Engine)
	if snap != nil && snap.ContentHash() != eng.Snapshot().ContentHash() {
		return nil, fmt.Errorf("governance: snapshot %s: %w", snapID, ErrSnapshotConflict)
	}
	return eng, nil
}

// Publish validates snap (every policy must compile) and makes it the
// tenant's active policy version, recording who published it and why.
// Runs already started keep their own snapshot.
func (r *Runner) Publish(ctx context.Context, snap *snapshot.PolicySnapshot, by, note string) (PolicyVersion, error) {
	if snap == nil {
		return PolicyVersion{}, errors.New("governance: publish: nil snapshot")
	}
	eng, err := r.cfg.kinds.Compile(snap, r.cfg.hooks...)
	if err != nil {
		return PolicyVersion{}, fmt.Errorf("governance: publish: %w", err)
	}
	v := PolicyVersion{
		TenantID: snap.TenantID(), SnapshotID: snap.ID(), ContentHash: snap.ContentHash(),
		PublishedBy: strings.ToValidUTF8(by, "\uFFFD"), PublishedAt: r.cfg.clock.Now().UTC(), Note: strings.ToValidUTF8(note, "\uFFFD"),
	}
	wctx, cancel := r.writeContext(ctx)
	defer cancel()
	out, err := r.store.PublishPolicy(wctx, snap, v)
	if err != nil {
		return PolicyVersion{}, fmt.Errorf("%w: publish %s for tenant %q: %w", ErrRecordFailed, snap.ID(), snap.TenantID(), err)
	}
	// The runs that take this version use the engine compiled here,
	// rather than reading the snapshot back and compiling it again.
	key := snap.TenantID() + "\x00" + snap.ID()
	r.mu.Lock()
	if r.engines[key] == nil {
		r.engines[key] = eng
	}
	r.mu.Unlock()
	return out, nil
}

// writeContext returns a context for a store write that is not cancelled
// with ctx (a decision already made must be recorded) but is bounded.
func (r *Runner) writeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if r.cfg.writeTimeout <= 0 {
		return context.WithoutCancel(ctx), func() {}
	}
	return context.WithTimeout(context.WithoutCancel(ctx), r.cfg.writeTimeout)
}

// validLabels is cloneLabels with invalid UTF-8 replaced by U+FFFD.
func validLabels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return validMetadata(m)
}

func cloneLabels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

// Run starts a run, calls fn with it, and ends the run according to fn's
// outcome:
//
//	nil                         succeeded / completed
//	a *Violation (run stopped)  failed_policy / the violation's reason
//	context.Canceled            cancelled / user_abort
//	context.DeadlineExceeded    failed / timeout
//	any other error, or panic   failed / system_failure
//
// It returns the run as stored and fn's error (a panic becomes a
// *PanicError), joined with any error from recording the end.
func (r *Runner) Run(ctx context.Context, opts StartOptions, fn func(ctx context.Context, run *Run) error) (RunRecord, error) {
	run, err := r.Start(ctx, opts)
	if err != nil {
		return RunRecord{}, err
	}
	ferr := callLoop(ctx, run, fn)
	var endErr error
	switch {
	case run.Ended():
		// A policy (or a failed record) already stopped it.
		if rec := run.Record(); rec.EndedAt == nil {
			// The store could not record the stop: it still shows the
			// run unfinished, for RecoverRun. Never let that go unsaid,
			// even if the loop dropped the step's error.
			endErr = fmt.Errorf("%w: the end of run %s was not recorded; the store shows it unfinished", ErrRecordFailed, rec.RunID)
		}
	case ferr == nil:
		_, endErr = run.Finish(ctx)
	case errors.Is(ferr, context.Canceled):
		_, endErr = run.Abort(ctx, prevention.ReasonUserAbort, ferr.Error())
	case errors.Is(ferr, context.DeadlineExceeded):
		_, endErr = run.Abort(ctx, prevention.ReasonTimeout, ferr.Error())
	default:
		_, endErr = run.Abort(ctx, prevention.ReasonSystemFailure, ferr.Error())
	}
	if endErr != nil && !errors.Is(endErr, ErrRunStopped) {
		return run.Record(), errors.Join(ferr, endErr)
	}
	if ferr == nil && run.Ended() {
		// The loop returned nil after the run was stopped (it dropped the
		// step's *Violation): the caller still learns why, as the status
		// already says.
		ferr = run.stopCause()
	}
	return run.Record(), ferr
}

// PanicError is the error Runner.Run returns when the agent loop panicked.
type PanicError struct {
	Value any
	Stack string
}

func (e *PanicError) Error() string {
	return fmt.Sprintf("governance: agent loop panicked: %v", e.Value)
}

func callLoop(ctx context.Context, run *Run, fn func(context.Context, *Run) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = &PanicError{Value: p, Stack: stack()}
		}
	}()
	return fn(ctx, run)
}

func stack() string { return string(debug.Stack()) }
