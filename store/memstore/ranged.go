package memstore

import (
	"bytes"
	"context"
	"fmt"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/trace"
)

var _ governance.RangeStore = (*Store)(nil)

// ReadRecords implements governance.RangeStore: the records of a run with
// seq in [r.From, r.To), decoded again from the stored bodies as Records
// decodes them, with their index (as RecordIndexes) and content (as
// Contents) when asked.
func (s *Store) ReadRecords(ctx context.Context, tenantID, runID string, rr governance.RecordRange) ([]governance.StoredRecord, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.runs[key{tenantID, runID}]
	if !ok {
		return nil, notFound("run", tenantID, runID)
	}
	from, to := max(rr.From, 0), len(st.records)
	if rr.To > 0 && rr.To < to {
		to = rr.To
	}
	if from >= to {
		return []governance.StoredRecord{}, nil
	}
	out := make([]governance.StoredRecord, to-from)
	var dec trace.Decoder
	for i := from; i < to; i++ {
		o := &out[i-from]
		r := &st.records[i]
		d, err := dec.Decode(st.bodies[i], r.PrevHash, r.Hash)
		if err != nil {
			return nil, fmt.Errorf("run %q record %d: %w", runID, i, err)
		}
		o.Record = d
		if rr.Index {
			o.Index = governance.IndexOf(r)
			o.Index.Body = bytes.Clone(st.bodies[i])
		}
		if rr.Content && r.Kind == trace.KindStep {
			if c, ok := st.contents[r.StepIndex]; ok {
				c.Metadata = cloneMap(c.Metadata)
				o.Content = &c
			}
		}
	}
	return out, nil
}

// ContentCount implements governance.RangeStore: how many step contents
// the run has stored.
func (s *Store) ContentCount(ctx context.Context, tenantID, runID string) (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	st, ok := s.runs[key{tenantID, runID}]
	if !ok {
		return 0, notFound("run", tenantID, runID)
	}
	return len(st.contents), nil
}
