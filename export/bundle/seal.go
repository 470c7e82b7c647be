package bundle

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/stopline/stopline/snapshot"
)

// PayloadType is the DSSE payload type of every bundle: the payload is
// the bundle's canonical JSON (RFC 8785), version 1 of the format this
// package defines. It is part of what every signature covers.
const PayloadType = "application/vnd.stopline.bundle+json; version=1"

// Sealed is a bundle with its canonical JSON, the SHA-256 of that JSON
// and its signatures: what the JSON export hands out (WriteTo) and what
// every page of the PDF cites. A Sealed is not changed after Seal or
// Verify returns it; it is safe for concurrent reads.
type Sealed struct {
	// Bundle is the bundle: *Evidence, *SOC2 or *ExecutiveDebrief.
	Bundle Bundle
	// Payload is the bundle's canonical JSON (RFC 8785, as
	// snapshot.Canonical writes it: keys sorted, no white space, one
	// spelling per number): the DSSE payload.
	Payload []byte
	// Hash is the hex SHA-256 of Payload: the bundle hash.
	Hash string
	// Signatures are the DSSE signatures: ed25519 over
	// PAE(PayloadType, Payload).
	Signatures []Signature
}

// Signature is one DSSE signature.
type Signature struct {
	// KeyID is the KeyID of the signing key: a hint of which key signed,
	// not itself signed.
	KeyID string `json:"keyid"`
	// Sig is the ed25519 signature of PAE(PayloadType, payload), in
	// standard base64.
	Sig string `json:"sig"`
}

// Seal encodes b as canonical JSON and signs it with each signer: an
// ed25519.PrivateKey, or any crypto.Signer whose public key is ed25519
// (a key in a KMS or an HSM). Each signature is checked before Seal
// returns. With no signer the bundle is sealed unsigned: its hash still
// names it, and VerifyUnsigned checks it.
func Seal(b Bundle, signers ...crypto.Signer) (*Sealed, error) {
	if b == nil {
		return nil, errors.New("bundle: Seal: nil bundle")
	}
	payload, err := encode(b)
	if err != nil {
		return nil, fmt.Errorf("bundle: sealing bundle %s: %w", b.ID(), err)
	}
	sum := sha256.Sum256(payload)
	s := &Sealed{Bundle: b, Payload: payload, Hash: hex.EncodeToString(sum[:]), Signatures: []Signature{}}
	msg := pae(PayloadType, payload)
	for _, sg := range signers {
		if sg == nil {
			return nil, errors.New("bundle: Seal: nil signer")
		}
		pub, ok := sg.Public().(ed25519.PublicKey)
		if !ok || len(pub) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("bundle: Seal: a %T key, want ed25519", sg.Public())
		}
		sig, err := sg.Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil {
			return nil, fmt.Errorf("bundle: signing bundle %s with key %s: %w", b.ID(), KeyID(pub), err)
		}
		if !ed25519.Verify(pub, msg, sig) {
			return nil, fmt.Errorf("bundle: signing bundle %s with key %s: the signer's signature does not verify", b.ID(), KeyID(pub))
		}
		s.Signatures = append(s.Signatures, Signature{KeyID: KeyID(pub), Sig: base64.StdEncoding.EncodeToString(sig)})
	}
	return s, nil
}

// Header returns the header of the bundle: its id, type, tenant, run,
// incident, and who exported it, when and why.
func (s *Sealed) Header() *Header { return s.Bundle.header() }

// KeyID returns the key id of the first signature, or "" when unsigned.
func (s *Sealed) KeyID() string {
	if len(s.Signatures) == 0 {
		return ""
	}
	return s.Signatures[0].KeyID
}

// WriteTo writes the JSON export to w: a DSSE envelope
// (https://github.com/secure-systems-lab/dsse), itself canonical JSON,
//
//	{"payload": "<standard base64 of Payload>",
//	 "payloadType": "application/vnd.stopline.bundle+json; version=1",
//	 "signatures": [{"keyid": "<KeyID>", "sig": "<standard base64>"}]}
//
// that any DSSE verifier checks with the issuer's ed25519 public key, and
// Verify checks in full. An unsigned bundle has an empty signatures list.
func (s *Sealed) WriteTo(w io.Writer) (int64, error) {
	return writeEnvelope(w, func(pw io.Writer) error {
		_, err := pw.Write(s.Payload)
		return err
	}, func() ([]Signature, error) { return s.Signatures, nil })
}

// pae is DSSE's pre-authentication encoding, what a signature covers:
// "DSSEv1" SP LEN(type) SP type SP LEN(payload) SP payload, lengths in
// ASCII decimal.
func pae(payloadType string, payload []byte) []byte {
	return append(paeHeader(payloadType, int64(len(payload))), payload...)
}

// encode returns the canonical JSON of b: snapshot.Canonical of its
// encoding/json encoding, written straight from its typed values
// (writeBundle).
func encode(b Bundle) ([]byte, error) {
	var buf bytes.Buffer
	if err := writeBundle(newJSONWriter(&buf), b, partsOf(b)); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// canonicalSplit appends snapshot.Canonical(raw) to dst, computed part by
// part: with levels > 0, an object's values, or an array's elements, are
// made canonical one at a time and joined in canonical order. The bytes
// are the same (a canonical object is its sorted keys with canonical
// values, a canonical array its canonical elements), but a long array is
// never held as one tree of Go values.
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
