package postgres

import (
	"golang.org/x/mod/sumdb/tlog"

	"context"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// The Store methods whose work is the shared SQL layer's
// (internal/sqlstore), over this package's dialect and connections.

var (
	_ governance.Store       = (*Store)(nil)
	_ governance.AuditStore  = (*Store)(nil)
	_ governance.LedgerStore = (*Store)(nil)
)

// Tenants lists every tenant that has runs or policy versions, sorted.
func (s *Store) Tenants(ctx context.Context) ([]string, error) { return s.db.Tenants(ctx) }

// PutSnapshot stores snap if its id is new for its tenant; storing it
// again is a no-op, and the same id with another content hash is
// governance.ErrSnapshotConflict. A snapshot already stored is found
// without writing; a new one is one INSERT ... ON CONFLICT DO NOTHING,
// so replicas storing the same snapshot at once do not conflict.
func (s *Store) PutSnapshot(ctx context.Context, snap *snapshot.PolicySnapshot) error {
	return s.db.PutSnapshot(ctx, snap)
}

// Snapshot returns a stored snapshot, as stored: callers Verify it.
func (s *Store) Snapshot(ctx context.Context, tenantID, snapshotID string) (*snapshot.PolicySnapshot, error) {
	return s.db.Snapshot(ctx, tenantID, snapshotID)
}

// PublishPolicy stores snap (as PutSnapshot) and appends the tenant's next
// policy version for it, in one transaction that holds a per-tenant
// advisory lock, so that concurrent publishes, from any replica, get
// consecutive versions (other tenants are not held up). The version's tenant,
// snapshot id and content hash are snap's (v may leave them empty, but
// not contradict them); Version is assigned. It returns the version as
// stored.
func (s *Store) PublishPolicy(ctx context.Context, snap *snapshot.PolicySnapshot, v governance.PolicyVersion) (governance.PolicyVersion, error) {
	return s.db.PublishPolicy(ctx, snap, v)
}

// ActivePolicy returns the tenant's latest policy version, or
// governance.ErrNotFound when none was published.
func (s *Store) ActivePolicy(ctx context.Context, tenantID string) (governance.PolicyVersion, error) {
	return s.db.ActivePolicy(ctx, tenantID)
}

// PolicyVersions returns the tenant's policy versions, oldest first.
func (s *Store) PolicyVersions(ctx context.Context, tenantID string) ([]governance.PolicyVersion, error) {
	return s.db.PolicyVersions(ctx, tenantID)
}

// Run returns one run of the tenant, or governance.ErrNotFound. While a
// run is open, its StepCount, totals, HeadHash and ChainLength come from
// its last record, read in the same statement (one snapshot).
func (s *Store) Run(ctx context.Context, tenantID, runID string) (governance.RunRecord, error) {
	return s.db.Run(ctx, tenantID, runID)
}

// Runs lists a tenant's runs, newest (by CreatedAt, then by insertion)
// first, with the filter's status, creation interval [From, To) and limit.
func (s *Store) Runs(ctx context.Context, f governance.RunFilter) ([]governance.RunRecord, error) {
	return s.db.Runs(ctx, f)
}

// Records returns a run's chain in seq order, each record decoded from its
// stored body with its stored prev_hash and hash (trace.DecodeRecord), for
// trace.Verify to check. An unknown run is governance.ErrNotFound.
func (s *Store) Records(ctx context.Context, tenantID, runID string) ([]trace.Record, error) {
	return s.db.Records(ctx, tenantID, runID)
}

// Contents returns the stored content of a run's steps, by step index. An
// unknown run is governance.ErrNotFound; a run without content gives an
// empty map.
func (s *Store) Contents(ctx context.Context, tenantID, runID string) (map[int]trace.Content, error) {
	return s.db.Contents(ctx, tenantID, runID)
}

// Incident returns one incident of the tenant, or governance.ErrNotFound.
func (s *Store) Incident(ctx context.Context, tenantID, incidentID string) (incident.Incident, error) {
	return s.db.Incident(ctx, tenantID, incidentID)
}

// Incidents lists a tenant's incidents, newest (by CreatedAt, then by
// insertion) first, with the filter's run, status, creation interval
// [From, To) and limit.
func (s *Store) Incidents(ctx context.Context, f governance.IncidentFilter) ([]incident.Incident, error) {
	return s.db.Incidents(ctx, f)
}

// UpdateIncident stores a lifecycle change made with
// incident.Incident.Transition: it writes the status, acknowledged and
// resolved columns only (inc's other fields are ignored; links and facts
// never change). An unknown incident is governance.ErrNotFound; moving
// the status back (resolved → open, acknowledged → open) is
// incident.ErrInvalidTransition (the incidents_guard trigger refuses it,
// SQLSTATE SL003).
func (s *Store) UpdateIncident(ctx context.Context, inc incident.Incident) error {
	return s.db.UpdateIncident(ctx, inc)
}

// RecordExport appends an entry to the tenant's export log. The same
// bundle id and format twice is governance.ErrExportExists; the log is
// append-only (triggers refuse UPDATE, DELETE and TRUNCATE).
func (s *Store) RecordExport(ctx context.Context, e governance.ExportRecord) error {
	return s.db.RecordExport(ctx, e)
}

// Exports lists a tenant's export log, newest (by CreatedAt, then by
// insertion) first, with the filter's run, incident and limit.
func (s *Store) Exports(ctx context.Context, f governance.ExportFilter) ([]governance.ExportRecord, error) {
	return s.db.Exports(ctx, f)
}

// PutCheckpoint stores a signed checkpoint of a run's chain. The same
// checkpoint again is a no-op; another note for the same run, size and key
// is governance.ErrChainConflict; an unknown run is governance.ErrNotFound.
func (s *Store) PutCheckpoint(ctx context.Context, c governance.Checkpoint) error {
	return s.db.PutCheckpoint(ctx, c)
}

// Checkpoints returns a run's checkpoints, smallest size first. An
// unknown run is governance.ErrNotFound.
func (s *Store) Checkpoints(ctx context.Context, tenantID, runID string) ([]governance.Checkpoint, error) {
	return s.db.Checkpoints(ctx, tenantID, runID)
}

// Orphans implements governance.AuditStore: records, step contents,
// checkpoints and incidents whose run has no row, in every tenant.
func (s *Store) Orphans(ctx context.Context) ([]governance.Orphan, error) { return s.db.Orphans(ctx) }

// RecordIndexes implements governance.AuditStore: the columns stored
// beside each record's body (seq, kind, step_index, at_ns, status,
// inflection, policy_id, total_tokens, total_cost_cents) and the body
// itself, in seq order. An unknown run is governance.ErrNotFound.
func (s *Store) RecordIndexes(ctx context.Context, tenantID, runID string) ([]governance.RecordIndex, error) {
	return s.db.RecordIndexes(ctx, tenantID, runID)
}

// Ledger returns the store's ledger of tenant counters, for limits that
// span runs. Every charge is one statement, atomic across all replicas
// (see the package documentation).
func (s *Store) Ledger() prevention.Ledger { return s.ledger }

// CreateRun stores a new run and its run_start record (seq 0, prev_hash
// the genesis hash) in one round trip: both statements go in one batch,
// which PostgreSQL runs as one implicit transaction. The run's snapshot
// must be stored (else governance.ErrNotFound); a run id already stored
// for the tenant is governance.ErrRunExists. An empty Status is stored as
// queued; a run cannot be created ended.
func (s *Store) CreateRun(ctx context.Context, run governance.RunRecord, start governance.StepWrite) error {
	return s.db.CreateRun(ctx, run, start)
}

var _ governance.TenantLogStore = (*Store)(nil)

// TenantLogSize implements governance.TenantLogStore: how many leaves the
// tenant's log holds (CloseRun and PutCheckpoint append them in their own
// transactions).
func (s *Store) TenantLogSize(ctx context.Context, tenantID string) (int64, error) {
	return s.db.TenantLogSize(ctx, tenantID)
}

// ReadTenantLogHashes implements governance.TenantLogStore: the tenant
// log's stored hashes at indexes, in order.
func (s *Store) ReadTenantLogHashes(ctx context.Context, tenantID string, indexes []int64) ([]tlog.Hash, error) {
	return s.db.ReadTenantLogHashes(ctx, tenantID, indexes)
}

// TenantLogLeaves implements governance.TenantLogStore: the leaves with
// index in [from, to), in index order; with runID, only that run's.
func (s *Store) TenantLogLeaves(ctx context.Context, tenantID, runID string, from, to int64) ([]governance.LogLeaf, error) {
	return s.db.TenantLogLeaves(ctx, tenantID, runID, from, to)
}
