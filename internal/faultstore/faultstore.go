// Package faultstore wraps a governance.Store so that tests can make it
// fail on purpose: the N-th call fails, once (Transient) or from then on
// (Persistent), either before it reaches the wrapped store or after it
// (a write that was made but whose success was never reported: the
// ambiguous commit of a connection that dropped at the wrong moment).
//
// It is for tests of the runner's fail-closed behaviour and of recovery,
// over any Store:
//
//	fs := faultstore.New(memstore.New(), faultstore.Fault{N: 3, Mode: faultstore.Persistent})
//	runner, _ := governance.NewRunner(fs)
//	... // the third store call and every later one fail with ErrInjected
//	fs.Heal() // the disk came back: recover and verify
//
// A Store is safe for concurrent use; calls are numbered in the order they
// take its lock. It implements governance.Store and governance.AuditStore
// (passed to the wrapped store, so that verification over a Store sees
// everything), but not governance.LedgerStore: a runner over it refuses
// runs whose policies limit a tenant across runs.
package faultstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

var _ governance.Store = (*Store)(nil)

// ErrInjected is matched by every failure the Store injects.
var ErrInjected = errors.New("faultstore: injected fault")

// Mode says how long a fault lasts.
type Mode int

const (
	// Off injects nothing.
	Off Mode = iota
	// Transient fails the N-th counted call only; later calls pass.
	Transient
	// Persistent fails the N-th counted call and every later one, until
	// Heal: a disk that filled up, a database that went away.
	Persistent
)

func (m Mode) String() string {
	switch m {
	case Off:
		return "off"
	case Transient:
		return "transient"
	case Persistent:
		return "persistent"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// WriteMethods are the names of the Store methods that write.
var WriteMethods = []string{
	"PutSnapshot", "PublishPolicy", "CreateRun", "AppendStep", "CloseRun",
	"UpdateIncident", "RecordExport", "PutCheckpoint",
}

// ReadMethods are the names of the Store methods that only read.
var ReadMethods = []string{
	"Snapshot", "ActivePolicy", "PolicyVersions", "Run", "Runs", "Records", "Contents",
	"Incident", "Incidents", "Tenants", "Exports", "Checkpoints",
}

// Fault says which call fails and how.
type Fault struct {
	// N is the counted call that fails first, from 1; 0 fails nothing.
	N    int
	Mode Mode
	// Methods limits counting (and failing) to the methods named, e.g.
	// WriteMethods for a disk that still reads; nil counts every call.
	Methods []string
	// After lets a failing call reach the wrapped store first and then
	// reports it failed, as when a commit succeeded but the connection
	// dropped before its result arrived. Only the first failing call
	// (call N) goes through; under Persistent the later ones do not.
	After bool
	// Err is the cause reported (wrapped so that it also matches
	// ErrInjected); nil reports ErrInjected alone.
	Err error
}

// Call is one call the Store saw.
type Call struct {
	Seq     int    // order of arrival among all calls, from 1
	Method  string // the Store method
	Counted int    // its number among counted calls, 0 if not counted
	Failed  bool   // a fault was injected
	Applied bool   // the call reached the wrapped store
}

// FaultError is the error of an injected fault. It matches ErrInjected and
// unwraps to Fault.Err.
type FaultError struct {
	Method  string
	Counted int  // the call's number among counted calls
	Applied bool // the call took effect in the wrapped store all the same
	Err     error
}

func (e *FaultError) Error() string {
	what := "not applied"
	if e.Applied {
		what = "applied, then reported failed"
	}
	msg := fmt.Sprintf("faultstore: %s (counted call %d) failed, %s", e.Method, e.Counted, what)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

// Unwrap returns ErrInjected and the configured cause.
func (e *FaultError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrInjected}
	}
	return []error{ErrInjected, e.Err}
}

// Store is a governance.Store that injects faults into the calls it passes
// to another one.
type Store struct {
	inner governance.Store

	mu      sync.Mutex
	fault   Fault
	counted map[string]bool // nil: every method
	seq     int
	n       int // counted calls so far
	calls   []Call
}

// New wraps inner with fault f.
func New(inner governance.Store, f Fault) *Store {
	s := &Store{inner: inner}
	s.SetFault(f)
	return s
}

// SetFault replaces the fault and restarts the count of counted calls.
func (s *Store) SetFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
	s.n = 0
	s.counted = nil
	if f.Methods != nil {
		s.counted = make(map[string]bool, len(f.Methods))
		for _, m := range f.Methods {
			s.counted[m] = true
		}
	}
}

// Heal stops injecting faults; calls pass from now on.
func (s *Store) Heal() { s.SetFault(Fault{}) }

// Unwrap returns the wrapped store.
func (s *Store) Unwrap() governance.Store { return s.inner }

// Calls returns every call seen so far, in order.
func (s *Store) Calls() []Call {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Counted returns how many counted calls were seen since the fault was set.
func (s *Store) Counted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// Failures returns how many faults were injected so far.
func (s *Store) Failures() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		if c.Failed {
			n++
		}
	}
	return n
}

// decide numbers a call and says whether it fails and whether it is
// applied first. It returns the call's index in s.calls.
func (s *Store) decide(method string) (i int, fail, apply bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	c := Call{Seq: s.seq, Method: method}
	f := s.fault
	if s.counted == nil || s.counted[method] {
		s.n++
		c.Counted = s.n
		if f.N > 0 {
			switch f.Mode {
			case Transient:
				fail = s.n == f.N
			case Persistent:
				fail = s.n >= f.N
			}
		}
	}
	apply = !fail || (f.After && c.Counted == f.N)
	c.Failed, c.Applied = fail, apply
	s.calls = append(s.calls, c)
	return len(s.calls) - 1, fail, apply
}

func (s *Store) faultError(i int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls[i]
	return &FaultError{Method: c.Method, Counted: c.Counted, Applied: c.Applied, Err: s.fault.Err}
}

// do runs a call that returns only an error.
func (s *Store) do(method string, f func() error) error {
	_, err := call(s, method, func() (struct{}, error) { return struct{}{}, f() })
	return err
}

// call runs a call through the fault decision. A call that is applied and
// then failed reports the fault, not the wrapped store's answer.
func call[T any](s *Store, method string, f func() (T, error)) (T, error) {
	i, fail, apply := s.decide(method)
	var (
		v   T
		err error
	)
	if apply {
		v, err = f()
	}
	if fail {
		var zero T
		return zero, s.faultError(i)
	}
	return v, err
}

// PutSnapshot implements governance.Store.
func (s *Store) PutSnapshot(ctx context.Context, snap *snapshot.PolicySnapshot) error {
	return s.do("PutSnapshot", func() error { return s.inner.PutSnapshot(ctx, snap) })
}

// Snapshot implements governance.Store.
func (s *Store) Snapshot(ctx context.Context, tenantID, snapshotID string) (*snapshot.PolicySnapshot, error) {
	return call(s, "Snapshot", func() (*snapshot.PolicySnapshot, error) { return s.inner.Snapshot(ctx, tenantID, snapshotID) })
}

// PublishPolicy implements governance.Store.
func (s *Store) PublishPolicy(ctx context.Context, snap *snapshot.PolicySnapshot, v governance.PolicyVersion) (governance.PolicyVersion, error) {
	return call(s, "PublishPolicy", func() (governance.PolicyVersion, error) { return s.inner.PublishPolicy(ctx, snap, v) })
}

// ActivePolicy implements governance.Store.
func (s *Store) ActivePolicy(ctx context.Context, tenantID string) (governance.PolicyVersion, error) {
	return call(s, "ActivePolicy", func() (governance.PolicyVersion, error) { return s.inner.ActivePolicy(ctx, tenantID) })
}

// PolicyVersions implements governance.Store.
func (s *Store) PolicyVersions(ctx context.Context, tenantID string) ([]governance.PolicyVersion, error) {
	return call(s, "PolicyVersions", func() ([]governance.PolicyVersion, error) { return s.inner.PolicyVersions(ctx, tenantID) })
}

// CreateRun implements governance.Store.
func (s *Store) CreateRun(ctx context.Context, run governance.RunRecord, start governance.StepWrite) error {
	return s.do("CreateRun", func() error { return s.inner.CreateRun(ctx, run, start) })
}

// AppendStep implements governance.Store.
func (s *Store) AppendStep(ctx context.Context, w governance.StepWrite) error {
	return s.do("AppendStep", func() error { return s.inner.AppendStep(ctx, w) })
}

// CloseRun implements governance.Store.
func (s *Store) CloseRun(ctx context.Context, c governance.Close) error {
	return s.do("CloseRun", func() error { return s.inner.CloseRun(ctx, c) })
}

// Run implements governance.Store.
func (s *Store) Run(ctx context.Context, tenantID, runID string) (governance.RunRecord, error) {
	return call(s, "Run", func() (governance.RunRecord, error) { return s.inner.Run(ctx, tenantID, runID) })
}

// Runs implements governance.Store.
func (s *Store) Runs(ctx context.Context, f governance.RunFilter) ([]governance.RunRecord, error) {
	return call(s, "Runs", func() ([]governance.RunRecord, error) { return s.inner.Runs(ctx, f) })
}

// Records implements governance.Store.
func (s *Store) Records(ctx context.Context, tenantID, runID string) ([]trace.Record, error) {
	return call(s, "Records", func() ([]trace.Record, error) { return s.inner.Records(ctx, tenantID, runID) })
}

// Contents implements governance.Store.
func (s *Store) Contents(ctx context.Context, tenantID, runID string) (map[int]trace.Content, error) {
	return call(s, "Contents", func() (map[int]trace.Content, error) { return s.inner.Contents(ctx, tenantID, runID) })
}

// Incident implements governance.Store.
func (s *Store) Incident(ctx context.Context, tenantID, incidentID string) (incident.Incident, error) {
	return call(s, "Incident", func() (incident.Incident, error) { return s.inner.Incident(ctx, tenantID, incidentID) })
}

// Incidents implements governance.Store.
func (s *Store) Incidents(ctx context.Context, f governance.IncidentFilter) ([]incident.Incident, error) {
	return call(s, "Incidents", func() ([]incident.Incident, error) { return s.inner.Incidents(ctx, f) })
}

// UpdateIncident implements governance.Store.
func (s *Store) UpdateIncident(ctx context.Context, inc incident.Incident) error {
	return s.do("UpdateIncident", func() error { return s.inner.UpdateIncident(ctx, inc) })
}

// Tenants implements governance.Store.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	return call(s, "Tenants", func() ([]string, error) { return s.inner.Tenants(ctx) })
}

// RecordExport implements governance.Store.
func (s *Store) RecordExport(ctx context.Context, e governance.ExportRecord) error {
	return s.do("RecordExport", func() error { return s.inner.RecordExport(ctx, e) })
}

// Exports implements governance.Store.
func (s *Store) Exports(ctx context.Context, f governance.ExportFilter) ([]governance.ExportRecord, error) {
	return call(s, "Exports", func() ([]governance.ExportRecord, error) { return s.inner.Exports(ctx, f) })
}

// PutCheckpoint implements governance.Store.
func (s *Store) PutCheckpoint(ctx context.Context, c governance.Checkpoint) error {
	return s.do("PutCheckpoint", func() error { return s.inner.PutCheckpoint(ctx, c) })
}

// Checkpoints implements governance.Store.
func (s *Store) Checkpoints(ctx context.Context, tenantID, runID string) ([]governance.Checkpoint, error) {
	return call(s, "Checkpoints", func() ([]governance.Checkpoint, error) { return s.inner.Checkpoints(ctx, tenantID, runID) })
}

// AuditMethods are the names of the governance.AuditStore methods, which
// only read.
var AuditMethods = []string{"Orphans", "RecordIndexes"}

var _ governance.AuditStore = (*Store)(nil)

// Orphans implements governance.AuditStore for a wrapped store that does;
// for one that does not, it fails with governance.ErrAuditUnsupported.
func (s *Store) Orphans(ctx context.Context) ([]governance.Orphan, error) {
	return call(s, "Orphans", func() ([]governance.Orphan, error) {
		as, ok := s.inner.(governance.AuditStore)
		if !ok {
			return nil, fmt.Errorf("faultstore: %T: %w", s.inner, governance.ErrAuditUnsupported)
		}
		return as.Orphans(ctx)
	})
}

// RecordIndexes implements governance.AuditStore, as Orphans does.
func (s *Store) RecordIndexes(ctx context.Context, tenantID, runID string) ([]governance.RecordIndex, error) {
	return call(s, "RecordIndexes", func() ([]governance.RecordIndex, error) {
		as, ok := s.inner.(governance.AuditStore)
		if !ok {
			return nil, fmt.Errorf("faultstore: %T: %w", s.inner, governance.ErrAuditUnsupported)
		}
		return as.RecordIndexes(ctx, tenantID, runID)
	})
}
