package export_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/store/sqlite"
)

// TestSQLiteStore exports from the SQLite store: the same runs give the
// same bundles, byte for byte, as from the in-memory store, and they
// verify.
func TestSQLiteStore(t *testing.T) {
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "stopline.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	fs, fm := fixture.New(t, st), fixture.New(t, memstore.New())
	for _, typ := range []bundle.Type{bundle.TypeEvidence, bundle.TypeSOC2, bundle.TypeExecutiveDebrief} {
		t.Run(string(typ), func(t *testing.T) {
			req := export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "alice", IncludeContent: typ != bundle.TypeExecutiveDebrief}
			a, err := fs.Exp.Export(ctx, typ, req, export.FormatJSON)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bundle.Verify(dataOf(t, a), fs.Pub); err != nil {
				t.Fatalf("bundle from SQLite does not verify: %v", err)
			}
			m, err := fm.Exp.Export(ctx, typ, req, export.FormatJSON)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(dataOf(t, a), dataOf(t, m)) {
				t.Errorf("SQLite and memstore bundles differ:\n%s\n%s", dataOf(t, a), dataOf(t, m))
			}
		})
	}
	log, err := st.Exports(ctx, governance.ExportFilter{TenantID: "acme"})
	if err != nil || len(log) != 3 {
		t.Errorf("SQLite export log: %d entries, %v", len(log), err)
	}
}
