package governance

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/stopline/stopline/trace"
)

// RangeStore is implemented by stores that read a run's chain a part at a
// time, so that a read costs what it returns: Explain reads the records
// up to the instant it explains, VerifyRun and the exporter read long
// chains in pages instead of holding them whole. store/sqlite,
// store/postgres and store/memstore implement it; for a Store that does
// not, the same reads fall back to Records, RecordIndexes and Contents.
type RangeStore interface {
	Store
	// ReadRecords returns the records of a run with From <= seq < To, in
	// seq order (To <= 0: to the end of the chain), each decoded from its
	// stored body as Records decodes it; with Index, the columns the
	// store keeps beside each record and its body as stored (as
	// RecordIndexes returns them); with Content, the content stored with
	// each record (as Contents returns it, nil when none). Past the end
	// of the chain it returns fewer records, or none. An unknown run (of
	// this tenant) is ErrNotFound.
	ReadRecords(ctx context.Context, tenantID, runID string, r RecordRange) ([]StoredRecord, error)
	// ContentCount returns how many step contents are stored for the run:
	// the size of the map Contents returns. An unknown run is
	// ErrNotFound.
	ContentCount(ctx context.Context, tenantID, runID string) (int, error)
}

// RecordRange says which records ReadRecords reads, and what of them.
type RecordRange struct {
	From, To int  // seq in [From, To); To <= 0 reads to the end
	Index    bool // also the stored columns and body (StoredRecord.Index)
	Content  bool // also the stored content (StoredRecord.Content)
}

// StoredRecord is one record of a run as its store holds it.
type StoredRecord struct {
	Record trace.Record
	// Index is what the store keeps beside the record, its Body the
	// record's body as stored; zero unless RecordRange.Index.
	Index RecordIndex
	// Content is the content stored with the record (a step's input,
	// output and metadata); nil unless RecordRange.Content, or when none
	// is stored.
	Content *trace.Content
}

// readRecords reads a range of a run's records from store, through
// ReadRecords when the store is a RangeStore, else from the whole reads
// of Store (and AuditStore for the index).
func readRecords(ctx context.Context, store Store, tenantID, runID string, rr RecordRange) ([]StoredRecord, error) {
	if rs, ok := store.(RangeStore); ok {
		return rs.ReadRecords(ctx, tenantID, runID, rr)
	}
	recs, err := store.Records(ctx, tenantID, runID)
	if err != nil {
		return nil, err
	}
	from, to := max(rr.From, 0), len(recs)
	if rr.To > 0 && rr.To < to {
		to = rr.To
	}
	if from >= to {
		return []StoredRecord{}, nil
	}
	out := make([]StoredRecord, to-from)
	for i := range out {
		out[i].Record = recs[from+i]
	}
	if rr.Index {
		as, ok := store.(AuditStore)
		if !ok {
			return nil, fmt.Errorf("%w: %T: reading the columns beside its records", ErrAuditUnsupported, store)
		}
		idx, err := as.RecordIndexes(ctx, tenantID, runID)
		if err != nil {
			return nil, err
		}
		for i := range out {
			if from+i < len(idx) {
				out[i].Index = idx[from+i]
			}
		}
	}
	if rr.Content {
		contents, err := store.Contents(ctx, tenantID, runID)
		if err != nil {
			return nil, err
		}
		for i := range out {
			if r := &out[i].Record; r.Kind == trace.KindStep {
				if c, ok := contents[r.StepIndex]; ok {
					out[i].Content = &c
				}
			}
		}
	}
	return out, nil
}

// errStopPages, returned by readPages' fn, stops reading without error.
var errStopPages = errors.New("governance: enough pages read")

// ReadRecordPages reads the records of a run in rr (with what rr asks of
// them) a page at a time, and calls fn with each page in order, until the
// range's end, the chain's end, or fn's first error, which it returns.
// From a RangeStore it reads pages of up to 8,192 records, the next while
// fn works on the one before, so that a run of any length is read in
// bounded memory; from another Store it reads the run whole (Records,
// RecordIndexes, Contents) and calls fn once.
func ReadRecordPages(ctx context.Context, store Store, tenantID, runID string, rr RecordRange, fn func([]StoredRecord) error) error {
	return readPages(ctx, store, tenantID, runID, rr, 1024, 8192, 1, fn)
}

// readPages reads a run's records from rr.From to rr.To (to the end when
// rr.To <= 0) in pages, the first of first records and each next one twice
// as large up to most, and calls fn with each page in order. From a
// RangeStore it reads the next pages (up to readers at once) while fn
// works on the one before, so that the store's reading and the caller's
// work overlap; from another
// Store it reads the whole chain at once (readRecords). It stops at the
// end of the chain, at the first error of a read or of fn (errStopPages
// stops it without error), and returns that error. The first page is
// read alone: a caller that needs no more reads no more.
func readPages(ctx context.Context, store Store, tenantID, runID string, rr RecordRange, first, most, readers int, fn func([]StoredRecord) error) error {
	rs, ok := store.(RangeStore)
	if !ok {
		page, err := readRecords(ctx, store, tenantID, runID, rr)
		if err != nil {
			return err
		}
		if err := fn(page); err != nil && err != errStopPages {
			return err
		}
		return nil
	}
	// The first page alone: a caller that needs no more reads no more.
	from := max(rr.From, 0)
	r := rr
	r.From, r.To = from, from+first
	if rr.To > 0 {
		r.To = min(r.To, rr.To)
	}
	page, err := rs.ReadRecords(ctx, tenantID, runID, r)
	if err != nil {
		return err
	}
	if err := fn(page); err != nil || len(page) < r.To-r.From || r.To == rr.To {
		if err == errStopPages {
			return nil
		}
		return err
	}
	// The reads take the caller's context, not one this function
	// cancels: a driver may watch a cancellable context at every row
	// (go-sqlite3 does). stop tells the reader to stop instead.
	stop := make(chan struct{})
	defer close(stop)
	type result struct {
		page []StoredRecord
		err  error
		want int
	}
	// Up to readers pages are read at once, and handed to fn in order.
	futures := make(chan chan result, readers)
	var ended atomic.Bool
	go func() {
		defer close(futures)
		for from, n := r.To, min(2*first, most); rr.To <= 0 || from < rr.To; from, n = from+n, min(2*n, most) {
			if ended.Load() {
				return
			}
			r := rr
			r.From, r.To = from, from+n
			if rr.To > 0 {
				r.To = min(r.To, rr.To)
			}
			f := make(chan result, 1)
			select {
			case futures <- f:
			case <-stop:
				return
			}
			go func() {
				page, err := rs.ReadRecords(ctx, tenantID, runID, r)
				if err != nil || len(page) < r.To-r.From {
					ended.Store(true)
				}
				f <- result{page, err, r.To - r.From}
			}()
		}
	}()
	for f := range futures {
		res := <-f
		if res.err != nil {
			return res.err
		}
		if err := fn(res.page); err == errStopPages {
			return nil
		} else if err != nil {
			return err
		}
		if len(res.page) < res.want {
			return nil // the end of the chain
		}
	}
	return nil
}
