package memstore

import (
	"context"
	"fmt"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/translog"
)

var _ governance.TenantLogStore = (*Store)(nil)

// tenantLog is one tenant's transparency log: its leaves, the tree's
// stored hashes (tlog.StoredHashIndex order) and the frontier an append
// reads.
type tenantLog struct {
	leaves   []governance.LogLeaf
	hashes   []tlog.Hash
	frontier translog.Frontier
}

// logAppend is an append computed but not yet applied, so that CloseRun
// and PutCheckpoint can check everything before changing anything.
type logAppend struct {
	tenant   string
	leaf     governance.LogLeaf
	stored   []tlog.Hash
	frontier translog.Frontier
}

// prepareAppend computes the append of leaf to its tenant's log. The
// caller holds s.mu.
func (s *Store) prepareAppend(leaf translog.Leaf) (logAppend, error) {
	lg := s.logs[leaf.TenantID]
	var n int64
	var f translog.Frontier
	if lg != nil {
		n, f = int64(len(lg.leaves)), lg.frontier
	}
	leaf.Index = n
	h, err := leaf.Hash()
	if err != nil {
		return logAppend{}, err
	}
	stored, next, err := f.Append(n, h)
	if err != nil {
		return logAppend{}, err
	}
	return logAppend{leaf.TenantID, governance.LogLeaf(leafOut(leaf)), stored, next}, nil
}

// apply stores a prepared append. The caller holds s.mu.
func (s *Store) apply(a logAppend) {
	lg := s.logs[a.tenant]
	if lg == nil {
		lg = &tenantLog{}
		s.logs[a.tenant] = lg
	}
	lg.leaves = append(lg.leaves, a.leaf)
	lg.hashes = append(lg.hashes, a.stored...)
	lg.frontier = a.frontier
}

type leafFields struct {
	Index    int64
	TenantID string
	RunID    string
	Kind     string
	Seq      int
	Head     string
	KeyName  string
	NoteHash string
}

func leafOut(l translog.Leaf) leafFields {
	return leafFields{l.Index, l.TenantID, l.RunID, string(l.Kind), l.Seq, l.Head, l.KeyName, l.NoteHash}
}

// TenantLogSize implements governance.TenantLogStore.
func (s *Store) TenantLogSize(ctx context.Context, tenantID string) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if lg := s.logs[tenantID]; lg != nil {
		return int64(len(lg.leaves)), nil
	}
	return 0, nil
}

// ReadTenantLogHashes implements governance.TenantLogStore.
func (s *Store) ReadTenantLogHashes(ctx context.Context, tenantID string, indexes []int64) ([]tlog.Hash, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	lg := s.logs[tenantID]
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		if lg == nil || x < 0 || x >= int64(len(lg.hashes)) {
			return nil, fmt.Errorf("memstore: tenant %q's log has no stored hash %d: %w", tenantID, x, governance.ErrNotFound)
		}
		out[i] = lg.hashes[x]
	}
	return out, nil
}

// TenantLogLeaves implements governance.TenantLogStore.
func (s *Store) TenantLogLeaves(ctx context.Context, tenantID, runID string, from, to int64) ([]governance.LogLeaf, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	lg := s.logs[tenantID]
	if lg == nil {
		return nil, nil
	}
	from, to = max(from, 0), min(to, int64(len(lg.leaves)))
	var out []governance.LogLeaf
	for i := from; i < to; i++ {
		if runID == "" || lg.leaves[i].RunID == runID {
			out = append(out, lg.leaves[i])
		}
	}
	return out, nil
}
