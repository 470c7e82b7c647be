package export

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/edsign"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/trace"
)

// Written is an export ExportTo wrote: its format, content type and file
// name, how many bytes it wrote, and the export log's entry (bundle id
// and hash, key id, who, when).
type Written struct {
	Format      Format
	ContentType string
	Filename    string
	Size        int64
	Record      governance.ExportRecord
}

// ExportTo builds the bundle, seals it with the exporter's keys, writes it
// to w in format f and records the export in the store's export log, as
// Export does, and writes to w the same bytes Export hands out.
//
// An evidence bundle in JSON is written as its records are read from the
// store, in pages (bundle.EvidenceStream, bundle.SealStream): its memory
// does not grow with the run, and the records are read and checked again
// each time the payload is written (three times when signed, twice when
// not; see bundle.SealStream), from a store that implements
// governance.RangeStore (one that does not is read whole). A signer other
// than an ed25519.PrivateKey (a key in a KMS) signs the whole message at
// once: it is held in memory for it. Other bundles and PDFs are built in
// memory, as Export builds them, and written to w.
//
// Nothing is written to w unless the records verify (ErrStoreIntegrity),
// except if they change while the bundle is written: then ExportTo fails,
// and what it wrote is not a bundle.
func (e *Exporter) ExportTo(ctx context.Context, w io.Writer, t bundle.Type, req Request, f Format) (*Written, error) {
	if _, err := ParseFormat(string(f)); err != nil {
		return nil, err
	}
	if t != bundle.TypeEvidence || f != FormatJSON {
		a, err := e.Export(ctx, t, req, f)
		if err != nil {
			return nil, err
		}
		n, err := a.WriteTo(w)
		if err != nil {
			return nil, err
		}
		return &Written{Format: f, ContentType: a.ContentType, Filename: a.Filename, Size: n, Record: a.Record}, nil
	}
	s, err := e.EvidenceStream(ctx, req)
	if err != nil {
		return nil, err
	}
	signers, err := e.streamSigners()
	if err != nil {
		return nil, err
	}
	b := s.Evidence
	sealed, err := bundle.SealStream(w, s.WritePayload, signers...)
	if err != nil {
		var ve *bundle.VerificationError
		if errors.As(err, &ve) {
			return nil, fmt.Errorf("%w: %s %s of run %s: %w", ErrStoreIntegrity, b.Type(), b.ID(), b.RunID, err)
		}
		return nil, fmt.Errorf("export: %s %s of run %s: %w", b.Type(), b.ID(), b.RunID, err)
	}
	h := &b.Header
	out := &Written{Format: f, ContentType: "application/json", Filename: filename(h, f), Size: sealed.Size,
		Record: governance.ExportRecord{
			TenantID: h.TenantID, BundleID: h.BundleID, BundleType: string(h.BundleType), Format: string(f),
			BundleHash: sealed.Hash, RunID: h.RunID, IncidentID: h.IncidentID, KeyID: sealed.KeyID(),
			ExportedBy: h.ExportedBy, Reason: h.ExportReason, CreatedAt: h.CreatedAt,
		}}
	if err := e.store.RecordExport(ctx, out.Record); err != nil && !errors.Is(err, governance.ErrExportExists) {
		return nil, fmt.Errorf("export: recording export %s of %s: %w", h.BundleID, h.TenantID, err)
	}
	return out, nil
}

// EvidenceStream returns the evidence bundle of an incident
// (req.IncidentID) or of any run (req.RunID) as a bundle.EvidenceStream:
// its header, snapshot, run and incident read now, its chain and steps
// read from the store, in pages, each time it is written. Its records are
// those the run's row counted when it was read (a run still going on is
// exported as it was then), and they are checked as the bundle is
// written (see bundle.EvidenceStream).
func (e *Exporter) EvidenceStream(ctx context.Context, req Request) (*bundle.EvidenceStream, error) {
	if err := req.validate(bundle.TypeEvidence); err != nil {
		return nil, err
	}
	d, cps, err := e.loadRun(ctx, &req)
	if err != nil {
		return nil, err
	}
	n := d.run.ChainLength
	d.cpNote = latestCheckpoint(cps, n)
	if d.logProof, err = e.tenantLogProof(ctx, req.TenantID, d.run.RunID, n); err != nil {
		return nil, err
	}
	b := &bundle.Evidence{
		Header: d.header(bundle.TypeEvidence, &req, e.clock.Now()),
		Provenance: bundle.Provenance{PolicySnapshotID: d.snap.ID(), Snapshot: d.snap, ChainLength: n,
			HeadHash: d.run.HeadHash, Checkpoint: d.cpNote, TenantLog: d.logProof},
		Run: d.runSummary(), Incident: d.inc,
	}
	if b.BundleID, err = e.bundleID(&b.Header, b.HeadHash, &req); err != nil {
		return nil, err
	}
	if n > 0 {
		// The run's shadow snapshot, named by its run_start record: the
		// stream compares it with the chain as it is written.
		err := governance.ReadRecordPages(ctx, e.store, req.TenantID, d.run.RunID, governance.RecordRange{To: 1}, func(page []governance.StoredRecord) error {
			if len(page) == 0 {
				return nil
			}
			return e.loadShadow(ctx, d, &page[0].Record)
		})
		if err != nil {
			return nil, err
		}
		if d.shadow != nil {
			b.Shadow = &bundle.ShadowComparison{Snapshot: d.shadow}
		}
	}
	tenant, runID, include := req.TenantID, d.run.RunID, req.IncludeContent
	records := func(content bool, emit func(r *trace.Record, c *trace.Content) error) error {
		rr := governance.RecordRange{To: n, Content: content && include}
		if n == 0 {
			return nil
		}
		return governance.ReadRecordPages(ctx, e.store, tenant, runID, rr, func(page []governance.StoredRecord) error {
			for i := range page {
				if err := emit(&page[i].Record, page[i].Content); err != nil {
					return err
				}
			}
			return nil
		})
	}
	return &bundle.EvidenceStream{Evidence: b, Records: records}, nil
}

// streamSigners returns the exporter's signers as bundle.SealStream takes
// them.
func (e *Exporter) streamSigners() ([]bundle.StreamSigner, error) {
	out := make([]bundle.StreamSigner, 0, len(e.signers))
	for _, sg := range e.signers {
		if priv, ok := sg.(ed25519.PrivateKey); ok {
			s, err := edsign.New(priv)
			if err != nil {
				return nil, err
			}
			out = append(out, s)
			continue
		}
		out = append(out, &wholeSigner{signer: sg})
	}
	return out, nil
}

// wholeSigner is a crypto.Signer (a key in a KMS, say) as a
// bundle.StreamSigner: it holds the message and signs it whole.
type wholeSigner struct {
	signer crypto.Signer
	msg    bytes.Buffer
}

func (s *wholeSigner) Public() ed25519.PublicKey {
	pub, _ := s.signer.Public().(ed25519.PublicKey)
	return pub
}

func (s *wholeSigner) Nonce() io.Writer     { return io.Discard }
func (s *wholeSigner) Commit() error        { return nil }
func (s *wholeSigner) Challenge() io.Writer { return &s.msg }

func (s *wholeSigner) Sign() ([]byte, error) {
	sig, err := s.signer.Sign(rand.Reader, s.msg.Bytes(), crypto.Hash(0))
	if err != nil {
		return nil, fmt.Errorf("export: signing with key %s: %w", bundle.KeyID(s.Public()), err)
	}
	if !ed25519.Verify(s.Public(), s.msg.Bytes(), sig) {
		return nil, fmt.Errorf("export: signing with key %s: the signer's signature does not verify", bundle.KeyID(s.Public()))
	}
	return sig, nil
}
