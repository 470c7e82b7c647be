package governance

import (
	"context"
	"errors"
	"time"

	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// Store errors. Stores wrap them (with %w) so callers match with errors.Is.
var (
	// ErrNotFound: no such run, incident, snapshot or policy version for
	// this tenant. A record of another tenant is not found, never shown.
	ErrNotFound = errors.New("governance: not found")
	// ErrSnapshotConflict: a snapshot with this id but different content
	// is already stored. Snapshots are never overwritten.
	ErrSnapshotConflict = errors.New("governance: snapshot id already stored with different content")
	// ErrRunExists: a run with this id is already stored.
	ErrRunExists = errors.New("governance: run already exists")
	// ErrRunEnded: the store refused to append to or close a run that
	// has already ended.
	ErrRunEnded = errors.New("governance: run already ended")
	// ErrExportExists: an export with this bundle id and format is
	// already in the export log.
	ErrExportExists = errors.New("governance: export already recorded")
	// ErrChainConflict: the record does not extend the stored chain (its
	// seq is taken or its prev_hash is not the stored head).
	ErrChainConflict = errors.New("governance: record does not extend the chain")
)

// Store is where a Runner records runs, their hash-chained trace, policy
// snapshots and versions, and incidents. Packages store/sqlite and
// store/postgres implement it; store/storetest is the conformance suite
// every implementation must pass.
//
// Every method takes the tenant (directly or in its argument) and reads or
// writes only that tenant's rows. Implementations must be safe for
// concurrent use. Writes must be durable when the method returns nil:
// the Runner acknowledges a step to the agent only after AppendStep or
// CloseRun returned. Methods should honour ctx cancellation; the Runner
// passes a context that outlives the caller's cancellation for final
// records.
type Store interface {
	// PutSnapshot stores snap if its id is new for its tenant. Storing
	// the same snapshot again is a no-op; the same id with another
	// content hash is ErrSnapshotConflict.
	PutSnapshot(ctx context.Context, snap *snapshot.PolicySnapshot) error
	// Snapshot returns a stored snapshot (not verified: callers Verify).
	Snapshot(ctx context.Context, tenantID, snapshotID string) (*snapshot.PolicySnapshot, error)

	// PublishPolicy stores snap (as PutSnapshot) and appends a policy
	// version that makes it the tenant's active policy set. The store
	// assigns Version (1, 2, ...) and returns the stored version.
	PublishPolicy(ctx context.Context, snap *snapshot.PolicySnapshot, v PolicyVersion) (PolicyVersion, error)
	// ActivePolicy returns the tenant's latest policy version, or
	// ErrNotFound when none was published.
	ActivePolicy(ctx context.Context, tenantID string) (PolicyVersion, error)
	// PolicyVersions returns the tenant's versions, oldest first.
	PolicyVersions(ctx context.Context, tenantID string) ([]PolicyVersion, error)

	// CreateRun stores a new run and the run_start record of its chain
	// (seq 0) in one transaction. The run's snapshot must be stored.
	CreateRun(ctx context.Context, run RunRecord, start StepWrite) error
	// AppendStep appends one step record (Kind step) to a run's chain:
	// its Seq must be the next and its PrevHash the stored head, else
	// ErrChainConflict; a run that has ended is ErrRunEnded. If MarkRunning is
	// set, the run's status goes from queued to running in the same
	// transaction.
	AppendStep(ctx context.Context, w StepWrite) error
	// CloseRun ends a run in ONE transaction: the blocking step (if any)
	// as the inflection point, the incident (if any), the run_end record
	// that closes the chain, and the run's final status, reason,
	// stopped-at step, violating policy, incident id, end time and head
	// hash. Either all of it is stored or none. A run already ended is
	// ErrRunEnded.
	CloseRun(ctx context.Context, c Close) error

	// Run returns one run. While a run is open, StepCount, totals and
	// HeadHash reflect its stored records.
	Run(ctx context.Context, tenantID, runID string) (RunRecord, error)
	// Runs lists a tenant's runs, newest first, filtered.
	Runs(ctx context.Context, f RunFilter) ([]RunRecord, error)
	// Records returns a run's chain in seq order.
	Records(ctx context.Context, tenantID, runID string) ([]trace.Record, error)
	// Contents returns the stored content of a run's steps, by step index.
	Contents(ctx context.Context, tenantID, runID string) (map[int]trace.Content, error)

	// Incident returns one incident.
	Incident(ctx context.Context, tenantID, incidentID string) (incident.Incident, error)
	// Incidents lists a tenant's incidents, newest first, filtered.
	Incidents(ctx context.Context, f IncidentFilter) ([]incident.Incident, error)
	// UpdateIncident stores a lifecycle change made with
	// incident.Incident.Transition (status, acknowledged and resolved
	// fields only; links and facts never change).
	UpdateIncident(ctx context.Context, inc incident.Incident) error

	// Tenants lists every tenant that has runs or policy versions, for
	// tools that verify a whole store.
	Tenants(ctx context.Context) ([]string, error)

	// RecordExport appends an entry to the tenant's export log (which
	// bundle was handed out, by whom, when). The log is append-only.
	RecordExport(ctx context.Context, e ExportRecord) error
	// Exports lists a tenant's export log, newest first, filtered.
	Exports(ctx context.Context, f ExportFilter) ([]ExportRecord, error)

	// PutCheckpoint stores a signed checkpoint of a run's chain. Storing
	// the same checkpoint again is a no-op; another note for the same
	// run, size and key is ErrChainConflict. Checkpoints are append-only.
	PutCheckpoint(ctx context.Context, c Checkpoint) error
	// Checkpoints returns a run's checkpoints, smallest size first.
	Checkpoints(ctx context.Context, tenantID, runID string) ([]Checkpoint, error)
}

// Checkpoint is a signed statement of a run's chain at one point: how
// many records it had (Size) and the hash of the last of them (Head), in
// the signed-note format of golang.org/x/mod/sumdb/note, signed with a key
// held outside the database. A writer who can rewrite the database and
// recompute every hash cannot make the records it covers match it again.
type Checkpoint struct {
	TenantID string    `json:"tenant_id"`
	RunID    string    `json:"run_id"`
	Size     int       `json:"size"`
	Head     string    `json:"head_hash"`
	At       time.Time `json:"at"`
	KeyName  string    `json:"key_name"`
	Note     string    `json:"note"` // the signed note, verbatim
}

// ExportRecord is one entry of the export log: an evidence bundle that was
// produced and handed out.
type ExportRecord struct {
	TenantID   string    `json:"tenant_id"`
	BundleID   string    `json:"bundle_id"`
	BundleType string    `json:"bundle_type"` // evidence, soc2, executive_debrief
	Format     string    `json:"format"`      // json, pdf
	BundleHash string    `json:"bundle_hash"` // hex SHA-256 of the canonical bundle
	RunID      string    `json:"run_id,omitempty"`
	IncidentID string    `json:"incident_id,omitempty"`
	KeyID      string    `json:"key_id,omitempty"` // signing key, when signed
	ExportedBy string    `json:"exported_by"`
	Reason     string    `json:"export_reason,omitempty"`
	CreatedAt  time.Time `json:"created_at"`
}

// ExportFilter selects export log entries of one tenant.
type ExportFilter struct {
	TenantID   string
	RunID      string // empty: any
	IncidentID string // empty: any
	Limit      int
}

// RunRecord is a run as stored.
type RunRecord struct {
	RunID             string                          `json:"run_id"`
	TenantID          string                          `json:"tenant_id"`
	TraceID           string                          `json:"trace_id"`
	SnapshotID        string                          `json:"policy_snapshot_id"`
	PolicyVersion     int                             `json:"policy_version,omitempty"` // 0 when the snapshot was given explicitly
	Status            RunStatus                       `json:"status"`
	TerminationReason prevention.RunTerminationReason `json:"termination_reason,omitempty"`
	StoppedAtStep     *int                            `json:"stopped_at_step"`
	ViolationPolicyID string                          `json:"violation_policy_id,omitempty"`
	IncidentID        string                          `json:"incident_id,omitempty"`
	Message           string                          `json:"message,omitempty"`
	Labels            map[string]string               `json:"labels,omitempty"`
	CreatedAt         time.Time                       `json:"created_at"`
	StartedAt         *time.Time                      `json:"started_at,omitempty"`
	EndedAt           *time.Time                      `json:"ended_at,omitempty"`
	StepCount         int                             `json:"step_count"`
	TotalTokens       int64                           `json:"total_tokens"`
	TotalCostCents    float64                         `json:"total_cost_cents"`
	HeadHash          string                          `json:"head_hash"`
	ChainLength       int                             `json:"chain_length"`
}

// PolicyVersion is one published version of a tenant's active policy set.
type PolicyVersion struct {
	TenantID    string    `json:"tenant_id"`
	Version     int       `json:"version"`
	SnapshotID  string    `json:"snapshot_id"`
	ContentHash string    `json:"content_hash"`
	PublishedBy string    `json:"published_by"`
	PublishedAt time.Time `json:"published_at"`
	Note        string    `json:"note,omitempty"`
}

// StepWrite is one record to append, with its canonical body (as
// trace.Encode wrote it; stores keep these exact bytes) and, for steps,
// the content it binds by ContentHash. The Body's memory is the runner's
// and is reused after the call returns: a store that keeps the bytes in
// memory must copy them.
type StepWrite struct {
	Record      trace.Record
	Body        []byte
	Content     *trace.Content
	MarkRunning bool
}

// Close is everything CloseRun writes in its one transaction.
type Close struct {
	TenantID string
	RunID    string
	// Step is the blocking step, recorded as the inflection point; nil
	// when the run ended between steps.
	Step *StepWrite
	// Incident is created with the stop; nil when none.
	Incident *incident.Incident
	// End is the run_end record that closes the chain.
	End StepWrite

	Status            RunStatus
	Reason            prevention.RunTerminationReason
	StoppedAtStep     *int
	ViolationPolicyID string
	IncidentID        string
	Message           string
	EndedAt           time.Time
	// MarkRunning: the run was queued and its first step is the blocking one.
	MarkRunning bool
	// Deliveries are outbox rows to store with the end (a Runner made
	// WithOutbox fills them). Only an OutboxStore stores them; other
	// stores may ignore the field, and a Runner never fills it for them.
	Deliveries []Delivery
}

// RunFilter selects runs of one tenant.
type RunFilter struct {
	TenantID string
	Status   RunStatus // empty: any
	// Runs created in [From, To); zero values leave that side open.
	From, To time.Time
	Limit    int // 0: no limit
}

// IncidentFilter selects incidents of one tenant.
type IncidentFilter struct {
	TenantID string
	RunID    string          // empty: any
	Status   incident.Status // empty: any
	From, To time.Time
	Limit    int
}
