package governance

import (
	"context"

	"golang.org/x/mod/sumdb/tlog"
)

// TenantLogStore is implemented by stores that keep, per tenant, a
// transparency log: a Merkle tree (RFC 6962, golang.org/x/mod/sumdb/tlog)
// whose leaves are the final head of every run's chain, appended by
// CloseRun in the transaction that ends the run, and every checkpoint,
// appended by PutCheckpoint in the transaction that stores it (storing
// the same checkpoint again appends nothing). A run that ended, or a
// checkpoint that was stored, is therefore never missing from the log;
// appends of one tenant are serialized (from every process sharing the
// database), so leaf i is always the i-th append. Package tenantlog signs
// tree heads, proves inclusion and consistency and verifies a store
// against a signed head; it defines the leaf encoding. store/sqlite,
// store/postgres and store/memstore implement it.
//
// Reads see only committed appends and are scoped by tenant.
type TenantLogStore interface {
	Store
	// TenantLogSize returns how many leaves the tenant's log holds (0
	// for a tenant with none).
	TenantLogSize(ctx context.Context, tenantID string) (int64, error)
	// ReadTenantLogHashes returns the tree's stored hashes at the given
	// indexes (tlog.StoredHashIndex), as tlog.HashReader.ReadHashes does:
	// one hash per index, in order. An index the log does not hold is an
	// error.
	ReadTenantLogHashes(ctx context.Context, tenantID string, indexes []int64) ([]tlog.Hash, error)
	// TenantLogLeaves returns the leaves with index in [from, to), in
	// index order, at most to-from of them; with runID not empty, only
	// that run's leaves (any index in [from, to)).
	TenantLogLeaves(ctx context.Context, tenantID, runID string, from, to int64) ([]LogLeaf, error)
}

// LogLeaf is one leaf of a tenant's log, as stored. Kind is "run_end" (a
// run's final head, appended by CloseRun) or "checkpoint" (appended by
// PutCheckpoint); Seq is the seq of the record whose hash is Head;
// KeyName and NoteHash (hex SHA-256 of the signed note) are a
// checkpoint's. Package tenantlog encodes it.
type LogLeaf struct {
	Index    int64  `json:"index"`
	TenantID string `json:"tenant_id"`
	RunID    string `json:"run_id"`
	Kind     string `json:"kind"`
	Seq      int    `json:"seq"`
	Head     string `json:"head_hash"`
	KeyName  string `json:"key_name,omitempty"`
	NoteHash string `json:"note_hash,omitempty"`
}
