package export

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stopline/stopline/snapshot"
)

// EnvelopeVersion is the version field of every envelope this package
// writes; Verify accepts only it.
const EnvelopeVersion = "stopline-export/v1"

// Sealed is a bundle with its canonical JSON, the SHA-256 of that JSON
// and its signatures: what the JSON export hands out (Envelope) and what
// every page of the PDF cites. A Sealed is not changed after Seal or
// Verify returns it; it is safe for concurrent reads.
type Sealed struct {
	// Bundle is the bundle: *EvidenceBundle, *SOC2Bundle or
	// *ExecutiveDebriefBundle.
	Bundle Bundle
	// Canonical is the bundle's canonical JSON (snapshot.Canonical: keys
	// sorted, no white space, one spelling per number).
	Canonical []byte
	// Hash is the hex SHA-256 of Canonical.
	Hash string
	// Signatures are ed25519 signatures of Hash (see Signer.Sign).
	Signatures []Signature
}

// Signature is one signature of a bundle hash.
type Signature struct {
	KeyID     string `json:"key_id"`    // KeyID of the public key
	Algorithm string `json:"algorithm"` // "ed25519"
	Signature string `json:"signature"` // standard base64
}

// Seal encodes b as canonical JSON, hashes it and signs the hash with
// each signer.
func Seal(b Bundle, signers ...*Signer) (*Sealed, error) {
	if b == nil {
		return nil, errors.New("export: Seal: nil bundle")
	}
	raw, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("export: sealing bundle %s: %w", b.ID(), err)
	}
	canon, err := canonical(raw)
	if err != nil {
		return nil, fmt.Errorf("export: sealing bundle %s: %w", b.ID(), err)
	}
	sum := sha256.Sum256(canon)
	s := &Sealed{Bundle: b, Canonical: canon, Hash: hex.EncodeToString(sum[:])}
	for _, sg := range signers {
		if sg == nil {
			return nil, errors.New("export: Seal: nil signer")
		}
		s.Signatures = append(s.Signatures, sg.Sign(s.Hash))
	}
	return s, nil
}

// KeyID returns the key id of the first signature, or "" when unsigned.
func (s *Sealed) KeyID() string {
	if len(s.Signatures) == 0 {
		return ""
	}
	return s.Signatures[0].KeyID
}

// Envelope returns the JSON export: a canonical JSON object
//
//	{"bundle": <the canonical bundle>, "bundle_hash": "<hex sha256>",
//	 "signatures": [{"algorithm": "ed25519", "key_id": "...", "signature": "<base64>"}],
//	 "version": "stopline-export/v1"}
//
// whose bundle hashes, in canonical form, to bundle_hash. Verify checks it.
func (s *Sealed) Envelope() []byte {
	out := make([]byte, 0, len(s.Canonical)+256)
	out = append(out, `{"bundle":`...)
	out = append(out, s.Canonical...)
	out = append(out, `,"bundle_hash":`...)
	out = snapshot.AppendString(out, s.Hash)
	out = append(out, `,"signatures":[`...)
	for i, sg := range s.Signatures {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"algorithm":`...)
		out = snapshot.AppendString(out, sg.Algorithm)
		out = append(out, `,"key_id":`...)
		out = snapshot.AppendString(out, sg.KeyID)
		out = append(out, `,"signature":`...)
		out = snapshot.AppendString(out, sg.Signature)
		out = append(out, '}')
	}
	out = append(out, `],"version":`...)
	out = snapshot.AppendString(out, EnvelopeVersion)
	return append(out, '}')
}

// canonical returns snapshot.Canonical(raw), computed part by part: the
// top-level object's values, and the elements of arrays among them, are
// made canonical one at a time and joined in canonical order. The bytes
// are the same (a canonical object is its sorted keys with canonical
// values, a canonical array its canonical elements), but a bundle of
// 10,000 steps is never held as one tree of Go values.
func canonical(raw []byte) ([]byte, error) {
	return canonicalSplit(make([]byte, 0, len(raw)), raw, 2)
}

func canonicalSplit(dst, raw []byte, levels int) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if levels == 0 || len(raw) == 0 || (raw[0] != '{' && raw[0] != '[') {
		c, err := snapshot.Canonical(raw)
		return append(dst, c...), err
	}
	if raw[0] == '[' {
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return dst, fmt.Errorf("%w: %v", snapshot.ErrNotCanonicalizable, err)
		}
		dst = append(dst, '[')
		for i, e := range elems {
			if i > 0 {
				dst = append(dst, ',')
			}
			var err error
			if dst, err = canonicalSplit(dst, e, levels-1); err != nil {
				return dst, err
			}
		}
		return append(dst, ']'), nil
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return dst, fmt.Errorf("%w: %v", snapshot.ErrNotCanonicalizable, err)
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	snapshot.SortKeys(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = snapshot.AppendString(dst, k)
		dst = append(dst, ':')
		var err error
		if dst, err = canonicalSplit(dst, fields[k], levels-1); err != nil {
			return dst, err
		}
	}
	return append(dst, '}'), nil
}
