package tenantlog

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/translog"
)

// The first lines of every leaf encoding and every tree head.
const (
	LeafOrigin = translog.LeafOrigin
	HeadOrigin = translog.HeadOrigin
)

// Leaf kinds (governance.LogLeaf.Kind).
const (
	KindRunEnd     = string(translog.KindRunEnd)
	KindCheckpoint = string(translog.KindCheckpoint)
)

var (
	// ErrUnsupported: the store does not implement
	// governance.TenantLogStore.
	ErrUnsupported = errors.New("tenantlog: the store does not implement governance.TenantLogStore")
	// ErrInvalid: a leaf or tree head not in its canonical form, or a head
	// note that does not open with the keys given.
	ErrInvalid = translog.ErrInvalid
	// ErrProof: an inclusion or consistency proof that does not verify.
	ErrProof = translog.ErrProof
	// ErrMismatch: the store does not hold what a signed tree head
	// commits to: a run or checkpoint it covers is missing or changed
	// (a *LeafError), or the log was rewritten or shrank.
	ErrMismatch = errors.New("tenantlog: the store does not match the signed tree head")
)

// Head is a tenant log's tree head: the log had Size leaves whose tree
// hash is Root (hex) at At. KeyName and Note are the signer's name and
// the signed note, for a signed head (empty for one read from a store).
type Head struct {
	TenantID string    `json:"tenant_id"`
	Size     int64     `json:"size"`
	Root     string    `json:"root_hash"`
	At       time.Time `json:"at"`
	KeyName  string    `json:"key_name,omitempty"`
	Note     string    `json:"note,omitempty"`
}

// EncodeLeaf returns a leaf's canonical encoding (see the package
// documentation); its hash in the tree is tlog.RecordHash of it.
func EncodeLeaf(l governance.LogLeaf) ([]byte, error) { return internalLeaf(l).Encode() }

func internalLeaf(l governance.LogLeaf) translog.Leaf {
	return translog.Leaf{Index: l.Index, TenantID: l.TenantID, RunID: l.RunID, Kind: translog.Kind(l.Kind),
		Seq: l.Seq, Head: l.Head, KeyName: l.KeyName, NoteHash: l.NoteHash}
}

func logStore(store governance.Store) (governance.TenantLogStore, error) {
	ls, ok := store.(governance.TenantLogStore)
	if !ok {
		return nil, fmt.Errorf("%w (a %T)", ErrUnsupported, store)
	}
	return ls, nil
}

// reader reads a tenant log's stored hashes for tlog.
func reader(ctx context.Context, ls governance.TenantLogStore, tenantID string) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return ls.ReadTenantLogHashes(ctx, tenantID, idx)
	})
}

// Current returns the tenant's tree head as the store holds it now,
// unsigned: its size and the tree hash of its stored hashes.
func Current(ctx context.Context, store governance.Store, tenantID string) (Head, error) {
	ls, err := logStore(store)
	if err != nil {
		return Head{}, err
	}
	n, err := ls.TenantLogSize(ctx, tenantID)
	if err != nil {
		return Head{}, err
	}
	root, err := tlog.TreeHash(n, reader(ctx, ls, tenantID))
	if err != nil {
		return Head{}, fmt.Errorf("tenantlog: tree hash of tenant %s's log of %d leaves: %w", tenantID, n, err)
	}
	return Head{TenantID: tenantID, Size: n, Root: translog.HexHash(root)}, nil
}

// SignHead signs the tenant's current tree head (Current) with signer,
// stating time at. Keep the note outside the database: Verify later
// proves the store still holds everything it covers.
func SignHead(ctx context.Context, store governance.Store, signer note.Signer, tenantID string, at time.Time) (Head, error) {
	h, err := Current(ctx, store, tenantID)
	if err != nil {
		return Head{}, err
	}
	return NewHead(signer, tenantID, h.Size, h.Root, at)
}

// NewHead signs a tree head of size leaves and tree hash root.
func NewHead(signer note.Signer, tenantID string, size int64, root string, at time.Time) (Head, error) {
	text, err := translog.HeadText(tenantID, size, root, at)
	if err != nil {
		return Head{}, err
	}
	msg, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		return Head{}, fmt.Errorf("tenantlog: signing the tree head of tenant %s: %w", tenantID, err)
	}
	return Head{TenantID: tenantID, Size: size, Root: root, At: at.UTC(), KeyName: signer.Name(), Note: string(msg)}, nil
}

// OpenHead verifies a signed tree head with verifiers and returns what it
// states. A bad or unknown signature, or a text that is not a tree head
// in its canonical form, matches ErrInvalid.
func OpenHead(msg []byte, verifiers note.Verifiers) (Head, error) {
	h, err := translog.OpenHead(msg, verifiers)
	return Head(h), err
}

// ParseHead returns what a tree head note states WITHOUT checking its
// signature (it proves nothing about who signed it); the form is checked
// as OpenHead checks it.
func ParseHead(msg []byte) (Head, error) {
	h, err := translog.ParseHead(msg)
	return Head(h), err
}

// Proof is an inclusion proof: Leaf is at Leaf.Index in the tree of
// TreeSize leaves whose hash is Root, by the hashes of Hashes (hex,
// tlog.RecordProof's order).
type Proof struct {
	Leaf     governance.LogLeaf `json:"leaf"`
	TreeSize int64              `json:"tree_size"`
	Root     string             `json:"root_hash"`
	Hashes   []string           `json:"hashes"`
}

// RunLeaves returns the leaves of a run in its tenant's log, in index
// order: its checkpoints and, once it ended, its run_end leaf.
func RunLeaves(ctx context.Context, store governance.Store, tenantID, runID string) ([]governance.LogLeaf, error) {
	ls, err := logStore(store)
	if err != nil {
		return nil, err
	}
	n, err := ls.TenantLogSize(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	return ls.TenantLogLeaves(ctx, tenantID, runID, 0, n)
}

// Prove returns the inclusion proof of leaf in the tree of head.Size
// leaves (a head read with Current or signed earlier), read from the
// store's stored hashes. The proof is checked against head before it is
// returned: a store whose hashes do not give head's root fails with
// ErrProof.
func Prove(ctx context.Context, store governance.Store, head Head, leaf governance.LogLeaf) (Proof, error) {
	ls, err := logStore(store)
	if err != nil {
		return Proof{}, err
	}
	p, err := tlog.ProveRecord(head.Size, leaf.Index, reader(ctx, ls, head.TenantID))
	if err != nil {
		return Proof{}, fmt.Errorf("tenantlog: proving leaf %d of tenant %s's log of %d leaves: %w", leaf.Index, head.TenantID, head.Size, err)
	}
	out := Proof{Leaf: leaf, TreeSize: head.Size, Root: head.Root, Hashes: make([]string, len(p))}
	for i, h := range p {
		out.Hashes[i] = translog.HexHash(h)
	}
	return out, CheckProof(out)
}

// CheckProof checks, offline, that p.Leaf is in the tree p states.
func CheckProof(p Proof) error {
	root, err := translog.ParseHexHash(p.Root)
	if err != nil {
		return err
	}
	rp := make(tlog.RecordProof, len(p.Hashes))
	for i, s := range p.Hashes {
		if rp[i], err = translog.ParseHexHash(s); err != nil {
			return fmt.Errorf("%w: proof hash %d: %w", ErrProof, i, err)
		}
	}
	return translog.CheckInclusion(rp, p.TreeSize, root, internalLeaf(p.Leaf))
}

// ProveConsistency returns the proof (hex, tlog.TreeProof's order) that
// the tree of old.Size leaves is a prefix of the store's tree of
// newer.Size leaves, checked against both heads' roots.
func ProveConsistency(ctx context.Context, store governance.Store, old, newer Head) ([]string, error) {
	ls, err := logStore(store)
	if err != nil {
		return nil, err
	}
	p, err := tlog.ProveTree(newer.Size, old.Size, reader(ctx, ls, old.TenantID))
	if err != nil {
		return nil, fmt.Errorf("tenantlog: proving tenant %s's log of %d leaves consistent with %d: %w", old.TenantID, newer.Size, old.Size, err)
	}
	out := make([]string, len(p))
	for i, h := range p {
		out[i] = translog.HexHash(h)
	}
	return out, CheckConsistency(old, newer, out)
}

// CheckConsistency checks, offline, that the tree of old is a prefix of
// the tree of newer, by proof.
func CheckConsistency(old, newer Head, proof []string) error {
	if old.TenantID != newer.TenantID {
		return fmt.Errorf("%w: heads of tenants %q and %q", ErrProof, old.TenantID, newer.TenantID)
	}
	or, err := translog.ParseHexHash(old.Root)
	if err != nil {
		return err
	}
	nr, err := translog.ParseHexHash(newer.Root)
	if err != nil {
		return err
	}
	tp := make(tlog.TreeProof, len(proof))
	for i, s := range proof {
		if tp[i], err = translog.ParseHexHash(s); err != nil {
			return fmt.Errorf("%w: proof hash %d: %w", ErrProof, i, err)
		}
	}
	if old.Size > newer.Size {
		return fmt.Errorf("%w: tenant %s's log shrank from %d to %d leaves", ErrProof, old.TenantID, old.Size, newer.Size)
	}
	if err := tlog.CheckTree(tp, newer.Size, nr, old.Size, or); err != nil {
		return fmt.Errorf("%w: tenant %s's log of %d leaves (root %s) does not extend the one of %d leaves (root %s): %w",
			ErrProof, old.TenantID, newer.Size, newer.Root, old.Size, old.Root, err)
	}
	return nil
}
