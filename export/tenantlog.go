package export

import (
	"context"
	"errors"
	"fmt"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/tenantlog"
)

// WithTenantLogSigner signs the tenant log tree head every bundle carries
// (bundle.TenantLogProof.SignedHead) with signer, a key held outside the
// database (stopline keygen --checkpoint), so that the head can be checked
// on its own (bundle.VerifyTenantLogHead) and kept for stopline verify
// --log-head. Without it the head is stated unsigned, vouched for by the
// bundle's own signature.
func WithTenantLogSigner(signer note.Signer) Option {
	return func(e *Exporter) error {
		if signer == nil {
			return errors.New("WithTenantLogSigner: nil signer")
		}
		e.logSigner = signer
		return nil
	}
}

// tenantLogProof returns the run's proof in its tenant's log, proved
// against the log's head now: the leaf of the run's end, else of its
// latest checkpoint within the first n records. It is nil when the store
// keeps no log (not a governance.TenantLogStore) or the run has no such
// leaf yet.
func (e *Exporter) tenantLogProof(ctx context.Context, tenantID, runID string, n int) (*bundle.TenantLogProof, error) {
	if _, ok := e.store.(governance.TenantLogStore); !ok {
		return nil, nil
	}
	fail := func(err error) (*bundle.TenantLogProof, error) {
		return nil, fmt.Errorf("export: tenant log proof of run %s: %w", runID, err)
	}
	leaves, err := tenantlog.RunLeaves(ctx, e.store, tenantID, runID)
	if err != nil {
		return fail(err)
	}
	var leaf *governance.LogLeaf
	for i := range leaves {
		l := &leaves[i]
		switch {
		case l.Seq >= n:
		case l.Kind == tenantlog.KindRunEnd:
			leaf = l
		case leaf == nil || (leaf.Kind != tenantlog.KindRunEnd && l.Seq >= leaf.Seq):
			leaf = l
		}
	}
	if leaf == nil {
		return nil, nil
	}
	head, err := tenantlog.Current(ctx, e.store, tenantID)
	if err != nil {
		return fail(err)
	}
	p, err := tenantlog.Prove(ctx, e.store, head, *leaf)
	if err != nil {
		return fail(err)
	}
	out := &bundle.TenantLogProof{LeafIndex: leaf.Index, Kind: leaf.Kind, Seq: leaf.Seq, Head: leaf.Head, KeyName: leaf.KeyName,
		NoteHash: leaf.NoteHash, TreeSize: p.TreeSize, RootHash: p.Root, Proof: p.Hashes}
	if e.logSigner != nil {
		h, err := tenantlog.NewHead(e.logSigner, tenantID, head.Size, head.Root, e.clock.Now())
		if err != nil {
			return fail(err)
		}
		out.SignedHead = h.Note
	}
	return out, nil
}
