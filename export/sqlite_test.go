package export_test

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/stopline/stopline/export"
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
	fs, fm := newFixture(t, st), newFixture(t, memstore.New())
	for _, typ := range []export.BundleType{export.TypeEvidence, export.TypeSOC2, export.TypeExecutiveDebrief} {
		t.Run(string(typ), func(t *testing.T) {
			req := export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "alice", IncludeContent: typ != export.TypeExecutiveDebrief}
			a, err := fs.exp.Export(ctx, typ, req, export.FormatJSON)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := export.Verify(a.Data, fs.pub); err != nil {
				t.Fatalf("bundle from SQLite does not verify: %v", err)
			}
			m, err := fm.exp.Export(ctx, typ, req, export.FormatJSON)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a.Data, m.Data) {
				t.Errorf("SQLite and memstore bundles differ:\n%s\n%s", a.Data, m.Data)
			}
		})
	}
	log, err := st.Exports(ctx, governance.ExportFilter{TenantID: "acme"})
	if err != nil || len(log) != 3 {
		t.Errorf("SQLite export log: %d entries, %v", len(log), err)
	}
}
