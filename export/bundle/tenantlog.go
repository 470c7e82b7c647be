package bundle

import (
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/stopline/stopline/internal/translog"
)

// ErrTenantLog: the tenant log proof a bundle carries does not prove its
// leaf, the leaf is not of the bundle's chain, or the signed tree head it
// carries is not that of the proof (VerifyTenantLogHead: or does not
// verify with the keys given).
var ErrTenantLog = errors.New("bundle: tenant log proof does not verify")

// ErrNoTenantLog is returned by VerifyTenantLogHead for a bundle that
// carries no tenant log proof, or no signed tree head.
var ErrNoTenantLog = errors.New("bundle: bundle carries no signed tenant log head")

// TenantLogProof is the run's place in its tenant's transparency log (see
// package tenantlog): the leaf — the run's final head (kind run_end) or,
// for a run not ended, its latest checkpoint (kind checkpoint), of the
// bundle's tenant and run, at LeafIndex —, the tree head it is proved
// against (TreeSize leaves, tree hash RootHash) and the inclusion proof
// (hex hashes, RFC 6962 / golang.org/x/mod/sumdb/tlog). SignedHead is
// that tree head as a signed note, when the exporter signs heads. Verify
// checks, offline, that the leaf is of the bundle's chain and that the
// proof proves it in the tree; VerifyTenantLogHead also checks the signed
// head's signature.
type TenantLogProof struct {
	LeafIndex  int64    `json:"leaf_index"`
	Kind       string   `json:"kind"`
	Seq        int      `json:"seq"`
	Head       string   `json:"head_hash"`
	KeyName    string   `json:"key_name,omitempty"`
	NoteHash   string   `json:"note_hash,omitempty"`
	TreeSize   int64    `json:"tree_size"`
	RootHash   string   `json:"root_hash"`
	Proof      []string `json:"inclusion_proof"`
	SignedHead string   `json:"signed_tree_head,omitempty"`
}

// checkTenantLog checks the proof p carries against a chain of n records
// whose record i hashes to hash(i).
func checkTenantLog(p *Provenance, h *Header, n int, hash func(i int) string) error {
	lp := p.TenantLog
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: run %s: %s", ErrTenantLog, h.RunID, fmt.Sprintf(format, args...))
	}
	leaf := translog.Leaf{Index: lp.LeafIndex, TenantID: h.TenantID, RunID: h.RunID, Kind: translog.Kind(lp.Kind),
		Seq: lp.Seq, Head: lp.Head, KeyName: lp.KeyName, NoteHash: lp.NoteHash}
	switch {
	case lp.Seq < 0 || lp.Seq >= n:
		return fail("the leaf states record %d, the bundle holds %d records", lp.Seq, n)
	case hash(lp.Seq) != lp.Head:
		return fail("the leaf states head %s at record %d, the bundle's record hashes to %s", lp.Head, lp.Seq, hash(lp.Seq))
	case leaf.Kind == translog.KindRunEnd && lp.Seq != n-1:
		return fail("the run_end leaf states record %d, the bundle's chain ends at %d", lp.Seq, n-1)
	}
	root, err := translog.ParseHexHash(lp.RootHash)
	if err != nil {
		return fail("%v", err)
	}
	proof := make(tlog.RecordProof, len(lp.Proof))
	for i, s := range lp.Proof {
		if proof[i], err = translog.ParseHexHash(s); err != nil {
			return fail("proof hash %d: %v", i, err)
		}
	}
	if err := translog.CheckInclusion(proof, lp.TreeSize, root, leaf); err != nil {
		return fmt.Errorf("%w: %w", ErrTenantLog, err)
	}
	if lp.SignedHead != "" {
		head, err := translog.ParseHead([]byte(lp.SignedHead))
		if err != nil {
			return fmt.Errorf("%w: signed tree head: %w", ErrTenantLog, err)
		}
		if err := headOfProof(head, lp, h); err != nil {
			return err
		}
	}
	return nil
}

func headOfProof(head translog.Head, lp *TenantLogProof, h *Header) error {
	if head.TenantID != h.TenantID || head.Size != lp.TreeSize || head.Root != lp.RootHash {
		return fmt.Errorf("%w: the signed tree head (tenant %q, %d leaves, root %s) is not the proof's (tenant %q, %d leaves, root %s)",
			ErrTenantLog, head.TenantID, head.Size, head.Root, h.TenantID, lp.TreeSize, lp.RootHash)
	}
	return nil
}

// TenantLogHead is what the signed tree head a bundle carries states.
type TenantLogHead struct {
	TenantID string
	Size     int64
	Root     string
	KeyName  string
}

// VerifyTenantLogHead checks, offline, the signed tree head a verified
// bundle carries with its tenant log proof: its signature with
// verifiers, and that it is the head the proof proves the run's leaf in
// (Verify checked the proof). A bundle without one is ErrNoTenantLog.
func VerifyTenantLogHead(v *Verified, verifiers note.Verifiers) (TenantLogHead, error) {
	p, h := v.Bundle.provenance(), v.Bundle.header()
	if p.TenantLog == nil || p.TenantLog.SignedHead == "" {
		return TenantLogHead{}, ErrNoTenantLog
	}
	head, err := translog.OpenHead([]byte(p.TenantLog.SignedHead), verifiers)
	if err != nil {
		return TenantLogHead{}, fmt.Errorf("%w: signed tree head: %w", ErrTenantLog, err)
	}
	out := TenantLogHead{TenantID: head.TenantID, Size: head.Size, Root: head.Root, KeyName: head.KeyName}
	return out, headOfProof(head, p.TenantLog, h)
}
