package bundle

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/stopline/stopline/internal/checkpoint"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// EvidenceStream is an evidence bundle too long to hold in memory: its
// header, snapshot, run and incident are held, and its chain and steps are
// written from the run's records as they are read, each time the bundle
// is written (WritePayload, SealStream). Whatever the length of the run,
// writing it holds a few records at a time.
//
// It is checked as it is written, as Check checks a bundle in memory: the
// snapshot against its hash; the records, each time they are read,
// recomputed from the genesis hash (trace.Verifier) up to the length and
// head the bundle states; the chain bound to the snapshot, tenant and run;
// the checkpoint the bundle carries; each included content against its
// content hash; and the bundle's facts — run, incident — against the
// chain. The violation and the totals are the chain's. A check that
// fails stops the writing with an error matching ErrStoreIntegrity's
// sentinels (a *VerificationError).
type EvidenceStream struct {
	// Evidence holds the bundle's header, provenance (snapshot, chain
	// length, head hash, checkpoint), run and incident, and for a run with
	// a shadow snapshot that snapshot (Shadow.Snapshot). Its Chain, Steps,
	// violation, totals and the rest of its Outlook are ignored: they are
	// written from Records.
	Evidence *Evidence
	// Records calls emit with each record of the run's chain in order,
	// from its first, and, when content is set, with each step's content
	// (nil when none), and returns emit's first error. It is called
	// twice each time the bundle is written (for the chain, then for the
	// steps), and must give the same records each time.
	Records func(content bool, emit func(r *trace.Record, c *trace.Content) error) error
}

// WritePayload writes the bundle's canonical JSON (the DSSE payload, as
// Seal would make it of the same bundle in memory) to w, and returns how
// many bytes it wrote.
func (s *EvidenceStream) WritePayload(w io.Writer) (int64, error) {
	jw := newJSONWriter(w)
	b := *s.Evidence
	var (
		facts  chainFacts
		hashes = map[int]string{} // the hashes of the records the checkpoint and the tenant log need
		want   = -1
		logSeq = -1
	)
	p, h := &b.Provenance, &b.Header
	fail := func(sentinel error, format string, args ...any) error {
		var c checks
		c.add(sentinel, format, args...)
		return c.err()
	}
	if p.Checkpoint != "" {
		if st, err := checkpoint.Parse([]byte(p.Checkpoint)); err == nil {
			want = st.Size - 1
		}
	}
	if p.TenantLog != nil {
		logSeq = p.TenantLog.Seq
	}
	var c checks
	if !checkSnapshot(&c, p, h) {
		return 0, c.err()
	}
	// read reads the records once, recomputing the chain, and calls fn
	// with each.
	read := func(content bool, fn func(r *trace.Record, body []byte, c *trace.Content) error) error {
		var v trace.Verifier
		err := s.Records(content, func(r *trace.Record, c *trace.Content) error {
			if v.Len() >= p.ChainLength {
				return fail(ErrInconsistent, "the run's chain has more than the %d records the bundle states", p.ChainLength)
			}
			if err := v.Add(r); err != nil {
				return fmt.Errorf("%w: %w", ErrRecordChanged, err)
			}
			return fn(r, v.Body(), c)
		})
		if err != nil {
			var ve *VerificationError
			if !errors.As(err, &ve) && (errors.Is(err, ErrChain) || errors.Is(err, ErrContent)) {
				return &VerificationError{Failures: []error{err}}
			}
			return err
		}
		switch {
		case v.Len() < p.ChainLength:
			return fail(ErrRecordMissing, "chain holds %d records, the bundle states %d (head %s)", v.Len(), p.ChainLength, p.HeadHash)
		case v.Head() != p.HeadHash:
			return fail(ErrInconsistent, "chain of %d records ends in %s, the bundle states %d records ending in %s", v.Len(), v.Head(), p.ChainLength, p.HeadHash)
		}
		return nil
	}
	pt := parts{encoded: true}
	var scan *outlookScan
	pt.chain = func(emit func(*ChainRecord) error) error {
		facts = chainFacts{}
		var err error
		if scan, err = newOutlookScan(p.Snapshot, &b.Run); err != nil {
			return fail(ErrSnapshot, "measuring snapshot %s: %v", p.Snapshot.ID(), err)
		}
		return read(false, func(r *trace.Record, body []byte, _ *trace.Content) error {
			facts.add(r)
			scan.add(r)
			if facts.n-1 == want || facts.n-1 == logSeq {
				hashes[facts.n-1] = r.Hash
			}
			return emit(&ChainRecord{PrevHash: r.PrevHash, Hash: r.Hash, Record: body})
		})
	}
	pt.afterChain = func() error {
		// The facts the chain gives, then every check of them.
		b.ViolatedPolicyID, b.ViolationStepIndex = "", nil
		if facts.stopped {
			idx := facts.inf.StepIndex
			b.ViolatedPolicyID, b.ViolationStepIndex = facts.inf.PolicyID, &idx
		}
		b.Totals = facts.totals(runStart(&b.Run))
		var c checks
		first := &facts.first
		if first.SnapshotID != p.Snapshot.ID() || first.SnapshotHash != p.Snapshot.ContentHash() {
			c.add(ErrSnapshot, "the run's chain is bound to snapshot %s (hash %s), the bundle holds %s (hash %s)",
				first.SnapshotID, first.SnapshotHash, p.Snapshot.ID(), p.Snapshot.ContentHash())
		}
		if first.TenantID != h.TenantID || first.RunID != h.RunID {
			c.add(ErrInconsistent, "bundle is about run %s of tenant %q, chain is run %s of tenant %q", h.RunID, h.TenantID, first.RunID, first.TenantID)
		}
		if p.Checkpoint != "" {
			st, err := checkpoint.Parse([]byte(p.Checkpoint))
			if err != nil {
				c.fails = append(c.fails, fmt.Errorf("%w: %w", ErrCheckpoint, err))
			} else if err := ofChainOf(st, h, facts.n, func(i int) string { return hashes[i] }); err != nil {
				c.fails = append(c.fails, err)
			}
		}
		if p.TenantLog != nil {
			if err := checkTenantLog(p, h, facts.n, func(i int) string { return hashes[i] }); err != nil {
				c.fails = append(c.fails, err)
			}
		}
		checkEvidenceFacts(&c, &b, &facts)
		// The outlook is the chain's, with the shadow snapshot the stream
		// was given (Evidence.Shadow.Snapshot).
		var shadow *snapshot.PolicySnapshot
		if s.Evidence.Shadow != nil {
			shadow = s.Evidence.Shadow.Snapshot
		}
		out, err := scan.outlook(shadow)
		if err != nil {
			c.add(ErrInconsistent, "%v", err)
		}
		b.Outlook = out
		return c.err()
	}
	pt.steps = func(emit func(*TraceStepEvidence) error) error {
		return read(true, func(r *trace.Record, _ []byte, content *trace.Content) error {
			if r.Kind != trace.KindStep {
				return nil
			}
			st := StepOf(r)
			if content != nil {
				if got := trace.ContentHashOf(*content); got != r.ContentHash {
					return fail(ErrContent, "step %d: content hashes to %q, the record binds %q", r.StepIndex, got, r.ContentHash)
				}
				st.Content = content
			}
			return emit(&st)
		})
	}
	err := writeBundle(jw, &b, pt)
	return jw.n, err
}

// StreamSigner signs a message it reads twice, each time as a stream: a
// pure Ed25519 signature (RFC 8032), which reads its message once for its
// nonce and once for its challenge. SealStream writes the message to
// Nonce, calls Commit, writes the same message to Challenge, then calls
// Sign. Package export's signers are made with internal/edsign.
type StreamSigner interface {
	// Public is the signer's ed25519 public key.
	Public() ed25519.PublicKey
	Nonce() io.Writer
	Commit() error
	Challenge() io.Writer
	// Sign returns the signature of the message written to Challenge,
	// which it has checked verifies.
	Sign() ([]byte, error)
}

// StreamSealed is what SealStream wrote: the envelope's size, the bundle
// hash, and the signatures.
type StreamSealed struct {
	Size       int64       // bytes of the envelope written
	PayloadLen int64       // bytes of the payload
	Hash       string      // hex SHA-256 of the payload: the bundle hash
	Signatures []Signature // as in the envelope
}

// KeyID returns the key id of the first signature, or "" when unsigned.
func (s *StreamSealed) KeyID() string {
	if len(s.Signatures) == 0 {
		return ""
	}
	return s.Signatures[0].KeyID
}

// SealStream writes the JSON export of a bundle whose payload is written
// by payload (which must write the same bytes each time it is called) to
// w: a DSSE envelope exactly as Seal and Sealed.WriteTo make it of the
// same bundle, signed by each signer, in memory that does not grow with
// the payload.
//
// A pure Ed25519 signature reads its message twice, and the envelope
// holds the payload before the signatures, so the payload is written
// three times when signed (its length and hash; the signers' nonces; the
// envelope, with their challenges and the hash again), twice when not
// (its hash; the envelope). Each writing after the first must have the
// first's hash, else SealStream fails. Nothing is written to w before
// the last writing; if that one fails, what was written to w is not a
// bundle.
func SealStream(w io.Writer, payload func(io.Writer) (int64, error), signers ...StreamSigner) (*StreamSealed, error) {
	// The length and the hash.
	h := sha256.New()
	n, err := payload(h)
	if err != nil {
		return nil, err
	}
	hash := hex.EncodeToString(h.Sum(nil))
	again := func(w io.Writer) error {
		h := sha256.New()
		m, err := payload(io.MultiWriter(h, w))
		if err != nil {
			return err
		}
		if m != n || hex.EncodeToString(h.Sum(nil)) != hash {
			return errors.New("bundle: the payload written again is not the one hashed: the records changed while the bundle was written")
		}
		return nil
	}
	header := paeHeader(PayloadType, n)
	// The nonces.
	if len(signers) > 0 {
		ws := make([]io.Writer, len(signers))
		for i, sg := range signers {
			if sg == nil {
				return nil, errors.New("bundle: SealStream: nil signer")
			}
			ws[i] = sg.Nonce()
			ws[i].Write(header)
		}
		if err := again(io.MultiWriter(ws...)); err != nil {
			return nil, err
		}
		for _, sg := range signers {
			if err := sg.Commit(); err != nil {
				return nil, err
			}
		}
	}
	// The envelope, with the challenges.
	chall := make([]io.Writer, len(signers))
	for i, sg := range signers {
		chall[i] = sg.Challenge()
		chall[i].Write(header)
	}
	var signed []Signature
	size, err := writeEnvelope(w, func(pw io.Writer) error {
		return again(io.MultiWriter(append(chall, pw)...))
	}, func() ([]Signature, error) {
		sigs := []Signature{}
		for _, sg := range signers {
			sig, err := sg.Sign()
			if err != nil {
				return nil, err
			}
			pub := sg.Public()
			sigs = append(sigs, Signature{KeyID: KeyID(pub), Sig: base64.StdEncoding.EncodeToString(sig)})
		}
		signed = sigs
		return sigs, nil
	})
	if err != nil {
		return nil, err
	}
	return &StreamSealed{Size: size, PayloadLen: n, Hash: hash, Signatures: signed}, nil
}

// paeHeader is what PAE puts before the payload: "DSSEv1" SP LEN(type)
// SP type SP LEN(payload) SP.
func paeHeader(payloadType string, n int64) []byte {
	out := make([]byte, 0, len(payloadType)+48)
	out = append(out, "DSSEv1 "...)
	out = strconv.AppendInt(out, int64(len(payloadType)), 10)
	out = append(out, ' ')
	out = append(out, payloadType...)
	out = append(out, ' ')
	out = strconv.AppendInt(out, n, 10)
	return append(out, ' ')
}

// writeEnvelope writes a DSSE envelope in the one form Sealed.WriteTo
// writes: the payload written by payload, in standard base64 as it is
// written, then the payload type, then the signatures sigs gives once the
// payload is written.
func writeEnvelope(w io.Writer, payload func(io.Writer) error, sigs func() ([]Signature, error)) (int64, error) {
	cw := &countingWriter{w: w}
	io.WriteString(cw, `{"payload":"`)
	enc := base64.NewEncoder(base64.StdEncoding, cw)
	if err := payload(enc); err != nil {
		return cw.n, err
	}
	if err := enc.Close(); err != nil {
		return cw.n, err
	}
	list, err := sigs()
	if err != nil {
		return cw.n, err
	}
	out := append([]byte(`","payloadType":`), snapshot.AppendString(nil, PayloadType)...)
	out = append(out, `,"signatures":[`...)
	for i, sg := range list {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"keyid":`...)
		out = snapshot.AppendString(out, sg.KeyID)
		out = append(out, `,"sig":`...)
		out = snapshot.AppendString(out, sg.Sig)
		out = append(out, '}')
	}
	out = append(out, "]}"...)
	cw.Write(out)
	return cw.n, cw.err
}

type countingWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}
