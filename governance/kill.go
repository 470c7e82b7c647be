package governance

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/stopline/stopline/prevention"
)

// Kill switch errors.
var (
	// ErrKilled is matched by the error of Start (and Enqueue, Run,
	// Resume) when a kill switch is pulled over the run's scope: its run
	// id, its agent or its tenant. New runs there are refused until the
	// switch is released.
	ErrKilled = errors.New("governance: stopped by the kill switch")
	// ErrKillActive: a kill switch is already pulled over this scope.
	ErrKillActive = errors.New("governance: kill switch already pulled")
	// ErrNoKillStore: the store keeps no kill switches (it does not
	// implement KillStore).
	ErrNoKillStore = errors.New("governance: the store keeps no kill switches")
)

// AgentLabel is the run label (StartOptions.Labels) that names a run's
// agent: a kill switch of scope agent stops every run whose label has
// that value, compared as deny lists compare names
// (prevention.NormalizeName: "Researcher " is "researcher"), so that a
// spelling of the agent's name never escapes its switch.
const AgentLabel = "agent"

// agentKey is the form in which agent names are compared.
func agentKey(name string) string { return prevention.NormalizeName(name) }

// KillScope is what a kill switch stops.
type KillScope string

// Kill switch scopes.
const (
	// KillRun stops one run (Target is its run id).
	KillRun KillScope = "run"
	// KillAgent stops every run of an agent (Target is the value of the
	// runs' AgentLabel).
	KillAgent KillScope = "agent"
	// KillTenant stops every run of the tenant (Target is the tenant id).
	KillTenant KillScope = "tenant"
)

// Valid reports whether s is one of the three scopes.
func (s KillScope) Valid() bool { return s == KillRun || s == KillAgent || s == KillTenant }

// KillSwitch is a kill switch an operator pulled: while it is active
// (ReleasedAt nil) the next step of every run in its scope, in every
// process that watches the store (WithKillSwitch), is blocked with reason
// user_abort, the run ends cancelled with an incident naming who pulled
// it, and new runs in the scope are refused (ErrKilled).
type KillSwitch struct {
	ID       string    `json:"kill_id"`
	TenantID string    `json:"tenant_id"`
	Scope    KillScope `json:"scope"`
	Target   string    `json:"target"`
	By       string    `json:"pulled_by"`
	Reason   string    `json:"reason"`
	PulledAt time.Time `json:"pulled_at"`
	// ReleasedBy and ReleasedAt are set once the switch is released.
	ReleasedBy string     `json:"released_by,omitempty"`
	ReleasedAt *time.Time `json:"released_at,omitempty"`
}

// decision is the Block a step under the switch is recorded with.
func (k *KillSwitch) decision() prevention.Decision {
	return prevention.Decision{
		Action: prevention.Block, Reason: prevention.ReasonUserAbort, PolicyID: k.ID, Source: prevention.SourceOperator,
		Message: prevention.RecordableText(fmt.Sprintf("kill switch on %s %q pulled by %s at %s: %s",
			k.Scope, k.Target, k.By, k.PulledAt.UTC().Format(time.RFC3339), k.Reason)),
	}
}

// KillStore is the optional interface of a Store that keeps kill
// switches, shared by every process that uses the store.
// store/memstore, store/sqlite and store/postgres implement it. Methods
// are safe for concurrent use and durable when they return nil.
type KillStore interface {
	// PutKill stores a pulled switch. Another active switch over the
	// same tenant, scope and target is ErrKillActive.
	PutKill(ctx context.Context, k KillSwitch) error
	// ReleaseKill releases the active switch over the tenant, scope and
	// target, and returns it as stored; none is ErrNotFound.
	ReleaseKill(ctx context.Context, tenantID string, scope KillScope, target, by string, at time.Time) (KillSwitch, error)
	// ActiveKills returns the active switches of a tenant, or of every
	// tenant when tenantID is "" (for the runner's watcher), oldest
	// first.
	ActiveKills(ctx context.Context, tenantID string) ([]KillSwitch, error)
}

// Kill pulls a kill switch over a run, an agent or a tenant. by (who
// pulls it) and reason are required; a switch already pulled over the
// same scope is ErrKillActive. For scope tenant, target is the tenant id.
func Kill(ctx context.Context, store Store, tenantID string, scope KillScope, target, by, reason string) (KillSwitch, error) {
	ks, ok := store.(KillStore)
	if !ok {
		return KillSwitch{}, ErrNoKillStore
	}
	by, reason = strings.TrimSpace(by), strings.TrimSpace(reason)
	if err := checkKill(tenantID, scope, target); err != nil {
		return KillSwitch{}, err
	}
	if by == "" || reason == "" {
		return KillSwitch{}, errors.New("governance: kill: who pulls it (by) and a reason are required")
	}
	k := KillSwitch{
		ID: newKillID(), TenantID: tenantID, Scope: scope, Target: target,
		By: prevention.RecordableText(by), Reason: prevention.RecordableText(reason), PulledAt: time.Now().UTC(),
	}
	if err := ks.PutKill(ctx, k); err != nil {
		return KillSwitch{}, err
	}
	return k, nil
}

// Release releases the active kill switch over a run, an agent or a
// tenant: new runs there start again. Runs it stopped stay stopped.
func Release(ctx context.Context, store Store, tenantID string, scope KillScope, target, by string) (KillSwitch, error) {
	ks, ok := store.(KillStore)
	if !ok {
		return KillSwitch{}, ErrNoKillStore
	}
	by = strings.TrimSpace(by)
	if err := checkKill(tenantID, scope, target); err != nil {
		return KillSwitch{}, err
	}
	if by == "" {
		return KillSwitch{}, errors.New("governance: release: who releases it (by) is required")
	}
	return ks.ReleaseKill(ctx, tenantID, scope, target, prevention.RecordableText(by), time.Now().UTC())
}

// ActiveKills lists the tenant's active kill switches, oldest first.
func ActiveKills(ctx context.Context, store Store, tenantID string) ([]KillSwitch, error) {
	ks, ok := store.(KillStore)
	if !ok {
		return nil, ErrNoKillStore
	}
	if tenantID == "" {
		return nil, errors.New("governance: active kills: a tenant id is required")
	}
	return ks.ActiveKills(ctx, tenantID)
}

func checkKill(tenantID string, scope KillScope, target string) error {
	switch {
	case tenantID == "" || !utf8.ValidString(tenantID):
		return errors.New("governance: kill switch: a tenant id (valid UTF-8) is required")
	case !scope.Valid():
		return fmt.Errorf("governance: kill switch: scope %q (want run, agent or tenant)", scope)
	case target == "" || !utf8.ValidString(target):
		return fmt.Errorf("governance: kill switch: a %s id (valid UTF-8) is required", scope)
	case scope == KillTenant && target != tenantID:
		return fmt.Errorf("governance: kill switch: scope tenant names tenant %q, not %q", target, tenantID)
	}
	return nil
}

func newKillID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "KILL-" + hex.EncodeToString(b[:])
}

// KillError is the error Start returns for a run in the scope of an
// active kill switch. It matches ErrKilled.
type KillError struct {
	Switch KillSwitch
}

func (e *KillError) Error() string {
	return fmt.Sprintf("governance: stopped by the kill switch %s on %s %q (pulled by %s: %s)", e.Switch.ID, e.Switch.Scope, e.Switch.Target, e.Switch.By, e.Switch.Reason)
}

// Is matches ErrKilled.
func (e *KillError) Is(target error) bool { return target == ErrKilled }

// killSet is the runner's view of the active switches, replaced whole by
// the watcher and read with one atomic load per step.
type killSet struct {
	tenants map[string]*KillSwitch
	agents  map[[2]string]*KillSwitch
	runs    map[[2]string]*KillSwitch
}

func newKillSet(ks []KillSwitch) *killSet {
	if len(ks) == 0 {
		return nil
	}
	s := &killSet{tenants: map[string]*KillSwitch{}, agents: map[[2]string]*KillSwitch{}, runs: map[[2]string]*KillSwitch{}}
	for i := range ks {
		k := &ks[i]
		switch k.Scope {
		case KillTenant:
			s.tenants[k.TenantID] = k
		case KillAgent:
			s.agents[[2]string{k.TenantID, agentKey(k.Target)}] = k
		case KillRun:
			s.runs[[2]string{k.TenantID, k.Target}] = k
		}
	}
	return s
}

// match returns the switch over the run, if any: the tenant's first,
// then the agent's, then the run's.
func (s *killSet) match(tenant, agent, run string) *KillSwitch {
	if s == nil {
		return nil
	}
	if k := s.tenants[tenant]; k != nil {
		return k
	}
	if agent != "" {
		if k := s.agents[[2]string{tenant, agent}]; k != nil {
			return k
		}
	}
	return s.runs[[2]string{tenant, run}]
}

// killWatch keeps a runner's view of the active switches fresh: it reads
// them on every signal of the store's Changes and every poll interval.
type killWatch struct {
	store  KillStore
	poll   time.Duration
	view   atomic.Pointer[killSet]
	loaded atomic.Int64 // unix nanoseconds of the last successful read
	stop   chan struct{}
	done   chan struct{}
	once   sync.Once
}

func (w *killWatch) load(ctx context.Context) error {
	ks, err := w.store.ActiveKills(ctx, "")
	if err != nil {
		return err
	}
	w.view.Store(newKillSet(ks))
	w.loaded.Store(time.Now().UnixNano())
	return nil
}

func (w *killWatch) run(changes <-chan struct{}, unsubscribe func(), onErr func(error)) {
	defer close(w.done)
	if unsubscribe != nil {
		defer unsubscribe()
	}
	t := time.NewTicker(w.poll)
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		case <-changes:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*w.poll+time.Second)
		if err := w.load(ctx); err != nil {
			onErr(err)
		}
		cancel()
	}
}

// killed returns the active switch over the run, if any: one atomic load
// when none is pulled anywhere.
func (r *Runner) killed(tenant, agent, run string) *KillSwitch {
	if r.kw == nil {
		return nil
	}
	return r.kw.view.Load().match(tenant, agent, run)
}

// refuseKilled returns a *KillError if a switch is pulled over a run
// about to start, read from the store itself (not the watcher's view),
// so that a switch pulled anywhere refuses it at once.
func (r *Runner) refuseKilled(ctx context.Context, tenant, agent, run string) error {
	if r.kw == nil {
		return nil
	}
	ks, err := r.kw.store.ActiveKills(ctx, tenant)
	if err != nil {
		return fmt.Errorf("governance: start: reading the kill switches of tenant %q: %w", tenant, err)
	}
	if k := newKillSet(ks).match(tenant, agent, run); k != nil {
		return &KillError{Switch: *k}
	}
	return nil
}

// Close stops the runner's kill-switch watcher (WithKillSwitch), if any.
// Runs already started keep working, without seeing switches pulled
// later. Close is idempotent.
func (r *Runner) Close() error {
	if r.kw == nil {
		return nil
	}
	r.kw.halt()
	return nil
}

// halt stops the watcher and waits for it. It is idempotent.
func (w *killWatch) halt() {
	w.once.Do(func() {
		close(w.stop)
		<-w.done
	})
}
