package bundle

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/stopline/stopline/snapshot"
)

// Type says which bundle a JSON document is.
type Type string

// Bundle types.
const (
	TypeEvidence         Type = "evidence"
	TypeSOC2             Type = "soc2"
	TypeExecutiveDebrief Type = "executive_debrief"
)

// Valid reports whether t is one of the three bundle types.
func (t Type) Valid() bool {
	return t == TypeEvidence || t == TypeSOC2 || t == TypeExecutiveDebrief
}

func (t Type) String() string { return string(t) }

// MarshalText implements encoding.TextMarshaler, rejecting unknown types.
func (t Type) MarshalText() ([]byte, error) {
	if !t.Valid() {
		return nil, fmt.Errorf("bundle: unknown bundle type %q", string(t))
	}
	return []byte(t), nil
}

// UnmarshalText implements encoding.TextUnmarshaler, rejecting unknown types.
func (t *Type) UnmarshalText(b []byte) error {
	v := Type(b)
	if !v.Valid() {
		return fmt.Errorf("bundle: unknown bundle type %q (want evidence, soc2 or executive_debrief)", b)
	}
	*t = v
	return nil
}

// Bundle is one of *Evidence, *SOC2 and *ExecutiveDebrief. The set is
// closed.
type Bundle interface {
	// Type returns the bundle's type.
	Type() Type
	// ID returns the bundle id ("BND-" and 16 hex digits).
	ID() string

	header() *Header
	provenance() *Provenance
}

// Header holds the facts every bundle has: what it is, when it was made,
// whose run and incident it is about, who exported it and why.
type Header struct {
	BundleID   string    `json:"bundle_id"`
	BundleType Type      `json:"bundle_type"`
	CreatedAt  time.Time `json:"created_at"`

	TenantID   string `json:"tenant_id"`
	RunID      string `json:"run_id"`
	IncidentID string `json:"incident_id,omitempty"`
	TraceID    string `json:"trace_id"`

	ExportedBy   string `json:"exported_by"`
	ExportReason string `json:"export_reason,omitempty"`
}

// Provenance is what makes a bundle verifiable without the database: the
// whole policy snapshot the run was bound to and every record of the run's
// hash chain, from run_start to run_end. Every bundle type carries it.
type Provenance struct {
	// PolicySnapshotID is the id of Snapshot.
	PolicySnapshotID string `json:"policy_snapshot_id"`
	// Snapshot is the policy snapshot, in its own JSON form (id, content
	// hash, policies, thresholds); Verify recomputes its hash.
	Snapshot *snapshot.PolicySnapshot `json:"snapshot"`
	// Chain is every record of the run's chain, in order.
	Chain []ChainRecord `json:"chain"`
	// HeadHash is the hash of the chain's last record and ChainLength the
	// number of records, as the store held them at export.
	HeadHash    string `json:"head_hash"`
	ChainLength int    `json:"chain_length"`
	// Checkpoint is the latest signed checkpoint of the log that covers
	// this run (a signed note), when one is available.
	Checkpoint string `json:"checkpoint,omitempty"`
	// TenantLog is the run's inclusion proof in its tenant's
	// transparency log and the tree head it is proved against, when the
	// store keeps a log and the run has a leaf in it (tenantlog.go).
	TenantLog *TenantLogProof `json:"tenant_log,omitempty"`
}

// ChainRecord is one record of a run's chain: its body, exactly as
// trace.Encode writes it (canonical JSON, without the hashes), and the
// hashes that link it. trace.DecodeRecord(Record, PrevHash, Hash) decodes
// it, and trace.Verify recomputes the chain.
type ChainRecord struct {
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
	Record   json.RawMessage `json:"record"`
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func number(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// The run statuses a bundle states (governance.RunStatus's values).
var runStatuses = map[string]bool{
	"queued": false, "running": false, // not ended
	"succeeded": true, "failed": true, "failed_policy": true, "cancelled": true, // ended
}

func validStatus(s string) bool { _, ok := runStatuses[s]; return ok }

func ended(s string) bool { return runStatuses[s] }
