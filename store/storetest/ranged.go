package storetest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/trace"
)

// testRanged: a store that reads a run's chain a part at a time
// (governance.RangeStore) reads exactly what its whole reads give, for
// every range: the records (Records), the columns beside them and their
// bodies (RecordIndexes) and their contents (Contents); ContentCount is
// the number of contents; other tenants' runs and unknown runs are not
// found. A store that does not implement it is skipped: Explain,
// VerifyRun and the exporter fall back to the whole reads.
func testRanged(t *testing.T, open Opener) {
	st := open(t)
	rs, ok := st.(governance.RangeStore)
	if !ok {
		t.Skipf("%T does not implement governance.RangeStore: reads of long chains read them whole", st)
	}
	as := auditOf(t, st)
	f := newAuditFixture(t, st)
	eqTime := cmp.Comparer(func(a, b time.Time) bool { return a.Equal(b) && a.Location() == b.Location() })
	for _, id := range []string{f.stopped, f.completed, f.open} {
		recs, err := st.Records(ctx, "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		idx, err := as.RecordIndexes(ctx, "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		contents, err := st.Contents(ctx, "acme", id)
		if err != nil {
			t.Fatal(err)
		}
		n := len(recs)
		for _, r := range [][2]int{{0, 0}, {0, 1}, {0, n}, {1, 3}, {2, 0}, {n - 1, n + 5}, {n, n + 1}, {n + 10, 0}, {-1, 2}, {3, 3}, {4, 2}} {
			for _, what := range []governance.RecordRange{{}, {Index: true}, {Content: true}, {Index: true, Content: true}} {
				rr := governance.RecordRange{From: r[0], To: r[1], Index: what.Index, Content: what.Content}
				got, err := rs.ReadRecords(ctx, "acme", id, rr)
				if err != nil {
					t.Fatalf("ReadRecords(%s, %+v): %v", id, rr, err)
				}
				from, to := max(rr.From, 0), n
				if rr.To > 0 && rr.To < n {
					to = rr.To
				}
				want := []governance.StoredRecord{}
				for i := from; i < to; i++ {
					w := governance.StoredRecord{Record: recs[i]}
					if rr.Index {
						w.Index = idx[i]
					}
					if c, ok := contents[recs[i].StepIndex]; ok && rr.Content && recs[i].Kind == trace.KindStep {
						w.Content = &c
					}
					want = append(want, w)
				}
				if diff := cmp.Diff(want, got, eqTime); diff != "" {
					t.Errorf("ReadRecords(%s, %+v) (-want +got):\n%s", id, rr, diff)
				}
			}
		}
		if c, err := rs.ContentCount(ctx, "acme", id); err != nil || c != len(contents) {
			t.Errorf("ContentCount(%s) = %d, %v; Contents holds %d", id, c, err, len(contents))
		}
	}
	for _, c := range []struct{ tenant, run string }{{"globex", f.open}, {"acme", "RUN-none"}, {"globex", f.stopped}} {
		what := fmt.Sprintf("run %s of tenant %s", c.run, c.tenant)
		if _, err := rs.ReadRecords(ctx, c.tenant, c.run, governance.RecordRange{Index: true, Content: true}); !errors.Is(err, governance.ErrNotFound) {
			t.Errorf("ReadRecords of %s: got %v, want ErrNotFound", what, err)
		}
		if _, err := rs.ReadRecords(ctx, c.tenant, c.run, governance.RecordRange{From: 100}); !errors.Is(err, governance.ErrNotFound) {
			t.Errorf("ReadRecords past the end of %s: got %v, want ErrNotFound", what, err)
		}
		if _, err := rs.ContentCount(ctx, c.tenant, c.run); !errors.Is(err, governance.ErrNotFound) {
			t.Errorf("ContentCount of %s: got %v, want ErrNotFound", what, err)
		}
	}
}
