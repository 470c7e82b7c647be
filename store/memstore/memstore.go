// Package memstore is an in-memory governance.Store: a test double for
// code that governs agents, and the reference the conformance suite is
// written against. It keeps nothing after the process ends. It is safe for
// concurrent use. It implements governance.AuditStore, LedgerStore,
// RangeStore and OutboxStore as the SQL stores do.
package memstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"sync"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/internal/changes"
	"github.com/stopline/stopline/internal/translog"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

var _ governance.Store = (*Store)(nil)

type key struct{ tenant, id string }

type runState struct {
	run      governance.RunRecord
	records  []trace.Record
	bodies   [][]byte
	contents map[int]trace.Content
	seq      int // creation order, for newest-first listing
}

// Store is an in-memory governance.Store.
type Store struct {
	mu        sync.RWMutex
	snapshots map[key]*snapshot.PolicySnapshot
	versions  map[string][]governance.PolicyVersion
	runs      map[key]*runState
	incidents map[key]incident.Incident
	incSeq    map[key]int
	exports   map[string][]governance.ExportRecord
	checkpts  map[key][]governance.Checkpoint
	logs      map[string]*tenantLog // tenant logs (tenantlog.go)
	n         int
	ledger    ledgerState // tenant counters (ledger.go); its own lock

	// Holds and kill switches (holds.go), under their own lock.
	ops       sync.Mutex
	holds     map[key]governance.Hold
	holdOrder []key
	kills     []governance.KillSwitch
	hub       changes.Hub
	outbox    map[key]*outboxRow

	// API tokens (tokens.go), under their own lock.
	tmu    sync.Mutex
	tokens tokenState
}

// New returns an empty Store.
func New() *Store {
	return &Store{
		snapshots: map[key]*snapshot.PolicySnapshot{},
		versions:  map[string][]governance.PolicyVersion{},
		runs:      map[key]*runState{},
		incidents: map[key]incident.Incident{},
		incSeq:    map[key]int{},
		exports:   map[string][]governance.ExportRecord{},
		checkpts:  map[key][]governance.Checkpoint{},
		holds:     map[key]governance.Hold{},
		logs:      map[string]*tenantLog{},
	}
}

func notFound(what, tenant, id string) error {
	return fmt.Errorf("%s %q of tenant %q: %w", what, id, tenant, governance.ErrNotFound)
}

// PutSnapshot implements governance.Store.
func (s *Store) PutSnapshot(ctx context.Context, snap *snapshot.PolicySnapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putSnapshot(snap)
}

func (s *Store) putSnapshot(snap *snapshot.PolicySnapshot) error {
	k := key{snap.TenantID(), snap.ID()}
	if old, ok := s.snapshots[k]; ok {
		if old.ContentHash() != snap.ContentHash() {
			return fmt.Errorf("snapshot %s of tenant %q: %w", snap.ID(), snap.TenantID(), governance.ErrSnapshotConflict)
		}
		return nil
	}
	s.snapshots[k] = snap // immutable: safe to share
	return nil
}

// Snapshot implements governance.Store.
func (s *Store) Snapshot(ctx context.Context, tenantID, snapshotID string) (*snapshot.PolicySnapshot, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	snap, ok := s.snapshots[key{tenantID, snapshotID}]
	if !ok {
		return nil, notFound("snapshot", tenantID, snapshotID)
	}
	return snap, nil
}

// PublishPolicy implements governance.Store.
func (s *Store) PublishPolicy(ctx context.Context, snap *snapshot.PolicySnapshot, v governance.PolicyVersion) (governance.PolicyVersion, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.putSnapshot(snap); err != nil {
		return governance.PolicyVersion{}, err
	}
	v.TenantID, v.SnapshotID, v.ContentHash = snap.TenantID(), snap.ID(), snap.ContentHash()
	v.Version = len(s.versions[v.TenantID]) + 1
	s.versions[v.TenantID] = append(s.versions[v.TenantID], v)
	return v, nil
}

// ActivePolicy implements governance.Store.
func (s *Store) ActivePolicy(ctx context.Context, tenantID string) (governance.PolicyVersion, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	vs := s.versions[tenantID]
	if len(vs) == 0 {
		return governance.PolicyVersion{}, fmt.Errorf("active policy of tenant %q: %w", tenantID, governance.ErrNotFound)
	}
	return vs[len(vs)-1], nil
}

// PolicyVersions implements governance.Store.
func (s *Store) PolicyVersions(ctx context.Context, tenantID string) ([]governance.PolicyVersion, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return slices.Clone(s.versions[tenantID]), nil
}

// CreateRun implements governance.Store.
func (s *Store) CreateRun(ctx context.Context, run governance.RunRecord, start governance.StepWrite) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{run.TenantID, run.RunID}
	if _, ok := s.runs[k]; ok {
		return fmt.Errorf("run %q of tenant %q: %w", run.RunID, run.TenantID, governance.ErrRunExists)
	}
	if _, ok := s.snapshots[key{run.TenantID, run.SnapshotID}]; !ok {
		return notFound("snapshot", run.TenantID, run.SnapshotID)
	}
	if err := checkAppend(nil, start, run.TenantID, run.RunID); err != nil {
		return err
	}
	s.n++
	run.Labels = cloneMap(run.Labels)
	st := &runState{run: run, contents: map[int]trace.Content{}, seq: s.n}
	st.append(start)
	s.runs[k] = st
	return nil
}

func checkAppend(st *runState, w governance.StepWrite, tenant, runID string) error {
	r := w.Record
	if r.TenantID != tenant || r.RunID != runID {
		return fmt.Errorf("record of run %q/%q appended to run %q/%q: %w", r.TenantID, r.RunID, tenant, runID, governance.ErrChainConflict)
	}
	next, head := 0, trace.GenesisHash
	if st != nil {
		next, head = len(st.records), st.records[len(st.records)-1].Hash
		if st.run.Status.Ended() {
			return fmt.Errorf("run %q of tenant %q: %w", runID, tenant, governance.ErrRunEnded)
		}
	}
	if r.Seq != next || r.PrevHash != head {
		return fmt.Errorf("run %q record %d (prev %s): next is %d after %s: %w", runID, r.Seq, r.PrevHash, next, head, governance.ErrChainConflict)
	}
	return nil
}

func (st *runState) append(w governance.StepWrite) {
	st.records = append(st.records, w.Record)
	st.bodies = append(st.bodies, bytes.Clone(w.Body))
	if w.Content != nil && w.Record.Kind == trace.KindStep {
		st.contents[w.Record.StepIndex] = trace.Content{Input: w.Content.Input, Output: w.Content.Output, Metadata: cloneMap(w.Content.Metadata)}
	}
	r := w.Record
	if r.Kind == trace.KindStep {
		st.run.StepCount = r.StepIndex + 1
		st.run.TotalTokens, st.run.TotalCostCents = r.TotalTokens, r.TotalCostCents
	}
	st.run.HeadHash, st.run.ChainLength = r.Hash, len(st.records)
}

// AppendStep implements governance.Store.
func (s *Store) AppendStep(ctx context.Context, w governance.StepWrite) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.runs[key{w.Record.TenantID, w.Record.RunID}]
	if !ok {
		return notFound("run", w.Record.TenantID, w.Record.RunID)
	}
	if err := checkAppend(st, w, st.run.TenantID, st.run.RunID); err != nil {
		return err
	}
	if w.MarkRunning && st.run.Status == governance.StatusQueued {
		at := w.Record.At
		st.run.Status, st.run.StartedAt = governance.StatusRunning, &at
	}
	st.append(w)
	return nil
}

// CloseRun implements governance.Store.
func (s *Store) CloseRun(ctx context.Context, c governance.Close) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.runs[key{c.TenantID, c.RunID}]
	if !ok {
		return notFound("run", c.TenantID, c.RunID)
	}
	// Check everything before changing anything: all or nothing.
	if st.run.Status.Ended() {
		return fmt.Errorf("run %q of tenant %q: %w", c.RunID, c.TenantID, governance.ErrRunEnded)
	}
	tmp := *st
	tmp.records = slices.Clone(st.records)
	if c.Step != nil {
		if err := checkAppend(&tmp, *c.Step, c.TenantID, c.RunID); err != nil {
			return err
		}
		tmp.records = append(tmp.records, c.Step.Record)
	}
	if err := checkAppend(&tmp, c.End, c.TenantID, c.RunID); err != nil {
		return err
	}
	if c.Incident != nil {
		if _, dup := s.incidents[key{c.TenantID, c.Incident.ID}]; dup {
			return fmt.Errorf("incident %q already exists: %w", c.Incident.ID, governance.ErrChainConflict)
		}
	}
	if _, err := c.Validate(); err != nil {
		return err
	}
	if err := s.checkDeliveries(c.Deliveries); err != nil {
		return err
	}
	logged, err := s.prepareAppend(translog.Leaf{TenantID: c.TenantID, RunID: c.RunID, Kind: translog.KindRunEnd,
		Seq: c.End.Record.Seq, Head: c.End.Record.Hash})
	if err != nil {
		return fmt.Errorf("run %q of tenant %q: appending to the tenant log: %w", c.RunID, c.TenantID, err)
	}
	s.apply(logged)
	if c.MarkRunning && st.run.Status == governance.StatusQueued {
		at := c.EndedAt
		if c.Step != nil {
			at = c.Step.Record.At
		}
		st.run.StartedAt = &at
	}
	if c.Step != nil {
		st.append(*c.Step)
	}
	st.append(c.End)
	if c.Incident != nil {
		s.n++
		s.incidents[key{c.TenantID, c.Incident.ID}] = *c.Incident
		s.incSeq[key{c.TenantID, c.Incident.ID}] = s.n
	}
	s.addDeliveries(c.Deliveries)
	r := &st.run
	endedAt := c.EndedAt
	r.Status, r.TerminationReason, r.StoppedAtStep = c.Status, c.Reason, copyInt(c.StoppedAtStep)
	r.ViolationPolicyID, r.IncidentID, r.Message, r.EndedAt = c.ViolationPolicyID, c.IncidentID, c.Message, &endedAt
	return nil
}

// Run implements governance.Store.
func (s *Store) Run(ctx context.Context, tenantID, runID string) (governance.RunRecord, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.runs[key{tenantID, runID}]
	if !ok {
		return governance.RunRecord{}, notFound("run", tenantID, runID)
	}
	return copyRun(st.run), nil
}

func copyRun(r governance.RunRecord) governance.RunRecord {
	r.Labels = cloneMap(r.Labels)
	r.StoppedAtStep = copyInt(r.StoppedAtStep)
	return r
}

// Runs implements governance.Store.
func (s *Store) Runs(ctx context.Context, f governance.RunFilter) ([]governance.RunRecord, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var sts []*runState
	for k, st := range s.runs {
		if k.tenant != f.TenantID || (f.Status != "" && st.run.Status != f.Status) ||
			(!f.From.IsZero() && st.run.CreatedAt.Before(f.From)) || (!f.To.IsZero() && !st.run.CreatedAt.Before(f.To)) {
			continue
		}
		sts = append(sts, st)
	}
	sort.Slice(sts, func(i, j int) bool { return sts[i].seq > sts[j].seq })
	if f.Limit > 0 && len(sts) > f.Limit {
		sts = sts[:f.Limit]
	}
	out := make([]governance.RunRecord, len(sts))
	for i, st := range sts {
		out[i] = copyRun(st.run)
	}
	return out, nil
}

// Records implements governance.Store. Records are decoded again from the
// stored bodies, as a database store would.
func (s *Store) Records(ctx context.Context, tenantID, runID string) ([]trace.Record, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.runs[key{tenantID, runID}]
	if !ok {
		return nil, notFound("run", tenantID, runID)
	}
	out := make([]trace.Record, len(st.records))
	for i, r := range st.records {
		d, err := trace.DecodeRecord(st.bodies[i], r.PrevHash, r.Hash)
		if err != nil {
			return nil, fmt.Errorf("run %q record %d: %w", runID, i, err)
		}
		out[i] = d
	}
	return out, nil
}

// Contents implements governance.Store.
func (s *Store) Contents(ctx context.Context, tenantID, runID string) (map[int]trace.Content, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.runs[key{tenantID, runID}]
	if !ok {
		return nil, notFound("run", tenantID, runID)
	}
	out := make(map[int]trace.Content, len(st.contents))
	for i, c := range st.contents {
		c.Metadata = cloneMap(c.Metadata)
		out[i] = c
	}
	return out, nil
}

// Incident implements governance.Store.
func (s *Store) Incident(ctx context.Context, tenantID, incidentID string) (incident.Incident, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	inc, ok := s.incidents[key{tenantID, incidentID}]
	if !ok {
		return incident.Incident{}, notFound("incident", tenantID, incidentID)
	}
	return inc, nil
}

// Incidents implements governance.Store.
func (s *Store) Incidents(ctx context.Context, f governance.IncidentFilter) ([]incident.Incident, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []incident.Incident
	for k, inc := range s.incidents {
		if k.tenant != f.TenantID || (f.RunID != "" && inc.RunID != f.RunID) || (f.Status != "" && inc.Status != f.Status) ||
			(!f.From.IsZero() && inc.CreatedAt.Before(f.From)) || (!f.To.IsZero() && !inc.CreatedAt.Before(f.To)) {
			continue
		}
		out = append(out, inc)
	}
	sort.Slice(out, func(i, j int) bool {
		return s.incSeq[key{f.TenantID, out[i].ID}] > s.incSeq[key{f.TenantID, out[j].ID}]
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out, nil
}

// UpdateIncident implements governance.Store.
func (s *Store) UpdateIncident(ctx context.Context, inc incident.Incident) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{inc.TenantID, inc.ID}
	old, ok := s.incidents[k]
	if !ok {
		return notFound("incident", inc.TenantID, inc.ID)
	}
	old.Status = inc.Status
	old.AcknowledgedAt, old.AcknowledgedBy = inc.AcknowledgedAt, inc.AcknowledgedBy
	old.ResolvedAt, old.ResolvedBy, old.Resolution = inc.ResolvedAt, inc.ResolvedBy, inc.Resolution
	s.incidents[k] = old
	return nil
}

// Tenants implements governance.Store.
func (s *Store) Tenants(ctx context.Context) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	set := map[string]bool{}
	for k := range s.runs {
		set[k.tenant] = true
	}
	for t := range s.versions {
		set[t] = true
	}
	out := make([]string, 0, len(set))
	for t := range set {
		out = append(out, t)
	}
	sort.Strings(out)
	return out, nil
}

func cloneMap(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func copyInt(p *int) *int {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// RecordExport implements governance.Store.
func (s *Store) RecordExport(ctx context.Context, e governance.ExportRecord) error {
	if e.TenantID == "" || e.BundleID == "" || e.BundleHash == "" {
		return fmt.Errorf("memstore: export record needs tenant, bundle id and bundle hash")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, old := range s.exports[e.TenantID] {
		if old.BundleID == e.BundleID && old.Format == e.Format {
			return fmt.Errorf("export %q (%s) of tenant %q already recorded: %w", e.BundleID, e.Format, e.TenantID, governance.ErrExportExists)
		}
	}
	s.exports[e.TenantID] = append(s.exports[e.TenantID], e)
	return nil
}

// Exports implements governance.Store.
func (s *Store) Exports(ctx context.Context, f governance.ExportFilter) ([]governance.ExportRecord, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []governance.ExportRecord
	all := s.exports[f.TenantID]
	for i := len(all) - 1; i >= 0; i-- {
		e := all[i]
		if (f.RunID != "" && e.RunID != f.RunID) || (f.IncidentID != "" && e.IncidentID != f.IncidentID) {
			continue
		}
		out = append(out, e)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// PutCheckpoint implements governance.Store.
func (s *Store) PutCheckpoint(ctx context.Context, c governance.Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{c.TenantID, c.RunID}
	if _, ok := s.runs[k]; !ok {
		return notFound("run", c.TenantID, c.RunID)
	}
	for _, old := range s.checkpts[k] {
		if old.Size == c.Size && old.KeyName == c.KeyName {
			if old.Note == c.Note {
				return nil
			}
			return fmt.Errorf("checkpoint of run %q at size %d by key %q already stored with another note: %w",
				c.RunID, c.Size, c.KeyName, governance.ErrChainConflict)
		}
	}
	logged, err := s.prepareAppend(translog.Leaf{TenantID: c.TenantID, RunID: c.RunID, Kind: translog.KindCheckpoint,
		Seq: c.Size - 1, Head: c.Head, KeyName: c.KeyName, NoteHash: translog.NoteHash(c.Note)})
	if err != nil {
		return fmt.Errorf("checkpoint of run %q at size %d: appending to the tenant log: %w", c.RunID, c.Size, err)
	}
	s.apply(logged)
	s.checkpts[k] = append(s.checkpts[k], c)
	sort.SliceStable(s.checkpts[k], func(i, j int) bool { return s.checkpts[k][i].Size < s.checkpts[k][j].Size })
	return nil
}

// Checkpoints implements governance.Store.
func (s *Store) Checkpoints(ctx context.Context, tenantID, runID string) ([]governance.Checkpoint, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.runs[key{tenantID, runID}]; !ok {
		return nil, notFound("run", tenantID, runID)
	}
	return slices.Clone(s.checkpts[key{tenantID, runID}]), nil
}

var _ governance.AuditStore = (*Store)(nil)

// Orphans implements governance.AuditStore: the incidents and checkpoints
// whose run the store does not hold. (A run's records and contents live
// with its row: they cannot outlive it here.)
func (s *Store) Orphans(ctx context.Context) ([]governance.Orphan, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []governance.Orphan
	for k, inc := range s.incidents {
		if _, ok := s.runs[key{k.tenant, inc.RunID}]; !ok {
			out = append(out, governance.Orphan{TenantID: k.tenant, RunID: inc.RunID, Kind: governance.OrphanIncident, Seq: -1, ID: inc.ID})
		}
	}
	for k, cps := range s.checkpts {
		if _, ok := s.runs[k]; ok {
			continue
		}
		for _, c := range cps {
			out = append(out, governance.Orphan{TenantID: k.tenant, RunID: k.id, Kind: governance.OrphanCheckpoint, Seq: c.Size, ID: c.KeyName})
		}
	}
	return out, nil
}

// RecordIndexes implements governance.AuditStore: the records as the
// store keeps them beside their bodies (it answers Run and Contents from
// them).
func (s *Store) RecordIndexes(ctx context.Context, tenantID, runID string) ([]governance.RecordIndex, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.runs[key{tenantID, runID}]
	if !ok {
		return nil, notFound("run", tenantID, runID)
	}
	out := make([]governance.RecordIndex, len(st.records))
	for i := range st.records {
		out[i] = governance.IndexOf(&st.records[i])
		out[i].Body = bytes.Clone(st.bodies[i])
	}
	return out, nil
}
