package export_test

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/sqlite"
)

// kmsSigner is a crypto.Signer that is not an ed25519.PrivateKey, as a key
// held in a KMS is.
type kmsSigner struct{ key crypto.Signer }

func (k kmsSigner) Public() crypto.PublicKey { return k.key.Public() }
func (k kmsSigner) Sign(r io.Reader, msg []byte, o crypto.SignerOpts) ([]byte, error) {
	return k.key.Sign(r, msg, o)
}

// TestExportToWritesWhatExportHandsOut: ExportTo writes exactly the bytes
// Export hands out, and logs the same entry, for evidence JSON streamed
// from memstore and SQLite (signed by a key, by a KMS-like signer, by two
// keys, unsigned; with and without content; stopped, completed and
// running runs) and for the bundles and PDFs built in memory.
func TestExportToWritesWhatExportHandsOut(t *testing.T) {
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, f := range []*fixture.F{fixture.New(t, nil), fixture.New(t, st)} {
		// A run still going on.
		open, err := f.Runner.Start(ctx, governance.StartOptions{Snapshot: fixture.Policy(t, "acme", 50, fixture.T0)})
		if err != nil {
			t.Fatal(err)
		}
		f.Clock.Advance(1)
		if _, err := open.Step(ctx, governance.StepInput{Type: "llm_response", Output: "hello, and a long enough output to warn"}); err != nil {
			t.Fatal(err)
		}
		signers := map[string][]export.Option{
			"unsigned": nil,
			"kms":      {export.WithSigner(kmsSigner{fixture.Key("kms")})},
			"two keys": {export.WithSigner(fixture.Key("a")), export.WithSigner(fixture.Key("b"))},
		}
		for name, opts := range signers {
			clock := governance.NewFakeClock(fixture.T0)
			opts = append(opts, export.WithClock(clock), export.WithRenderer(fixture.Renderer(t)))
			exp, err := export.New(f.Store, opts...)
			if err != nil {
				t.Fatal(err)
			}
			checkSameExport(t, name, exp, bundle.TypeEvidence, export.Request{TenantID: "acme", RunID: open.ID()}, export.FormatJSON)
		}
		for _, req := range []export.Request{
			{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "alice", Reason: "review"},
			{TenantID: "acme", IncidentID: "INC-0002", IncludeContent: true},
			{TenantID: "acme", RunID: "RUN-0003", IncludeContent: true},
			{TenantID: "globex", IncidentID: "INC-0003"},
		} {
			checkSameExport(t, "key", f.Exp, bundle.TypeEvidence, req, export.FormatJSON)
		}
		req := export.Request{TenantID: "acme", IncidentID: "INC-0001"}
		checkSameExport(t, "key", f.Exp, bundle.TypeEvidence, req, export.FormatPDF)
		checkSameExport(t, "key", f.Exp, bundle.TypeSOC2, req, export.FormatJSON)
		checkSameExport(t, "key", f.Exp, bundle.TypeExecutiveDebrief, req, export.FormatJSON)
	}
}

func checkSameExport(t *testing.T, name string, exp *export.Exporter, typ bundle.Type, req export.Request, f export.Format) {
	t.Helper()
	a, err := exp.Export(ctx, typ, req, f)
	if err != nil {
		t.Fatalf("%s: Export %s %+v: %v", name, typ, req, err)
	}
	want := dataOf(t, a)
	var buf bytes.Buffer
	w, err := exp.ExportTo(ctx, &buf, typ, req, f)
	if err != nil {
		t.Fatalf("%s: ExportTo %s %+v: %v", name, typ, req, err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("%s: ExportTo %s %s %+v wrote %d bytes differing from Export's %d", name, typ, f, req, buf.Len(), len(want))
	}
	if w.Record != a.Record || w.Size != int64(len(want)) || w.Filename != a.Filename || w.ContentType != a.ContentType {
		t.Errorf("%s: ExportTo %+v, Export %+v", name, w, a.Record)
	}
}

// TestExportToRefusesTamperedStore: records that do not verify are not
// exported, and nothing is written.
func TestExportToRefusesTamperedStore(t *testing.T) {
	f := fixture.New(t, nil)
	bad := &tamperedRanges{RangeStore: f.Store.(governance.RangeStore)}
	exp, err := export.New(bad, export.WithSigner(f.Key))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, err = exp.ExportTo(ctx, &buf, bundle.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-0001"}, export.FormatJSON)
	if !errors.Is(err, export.ErrStoreIntegrity) || !errors.Is(err, bundle.ErrRecordChanged) || buf.Len() != 0 {
		t.Errorf("from a tampered store: got %v and %d bytes, want ErrStoreIntegrity and ErrRecordChanged, nothing written", err, buf.Len())
	}
	if log, _ := f.Store.Exports(ctx, governance.ExportFilter{TenantID: "acme"}); len(log) != 0 {
		t.Errorf("failed exports were logged: %+v", log)
	}
}

// tamperedRanges changes a step's tokens, as a writer with database
// access could, in what ReadRecords reads.
type tamperedRanges struct{ governance.RangeStore }

func (s *tamperedRanges) ReadRecords(c context.Context, tenant, run string, r governance.RecordRange) ([]governance.StoredRecord, error) {
	recs, err := s.RangeStore.ReadRecords(c, tenant, run, r)
	for i := range recs {
		if recs[i].Record.Seq == 2 {
			recs[i].Record.Tokens++
		}
	}
	return recs, err
}
