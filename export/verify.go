package export

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/stopline/stopline/internal/strictjson"
	"github.com/stopline/stopline/snapshot"
)

// Verified is a bundle envelope that passed verification.
type Verified struct {
	*Sealed
	// KeyID is the id of the key whose signature verified ("" after
	// VerifyUnsigned).
	KeyID string
}

// Verify checks a JSON export (an envelope, as Sealed.Envelope writes it)
// without any database, and returns the bundle it holds. It checks:
//
//   - the envelope: well-formed, known version and bundle type, no
//     unknown fields, nothing after it (ErrMalformed, ErrTrailingData);
//   - the bundle hash: the canonical JSON of the bundle hashes to
//     bundle_hash (ErrBundleHash, as a *BundleHashError);
//   - the signature: a valid ed25519 signature of bundle_hash by pub
//     (ErrSignature; ErrUnsigned, ErrKeyMismatch);
//   - the snapshot: its content hashes to its hash and id, and it is the
//     snapshot the run's chain is bound to (ErrSnapshot);
//   - the chain: every record recomputes with trace.Verify, in order, up
//     to the head and length the bundle states (ErrChain;
//     ErrRecordChanged, ErrRecordMissing, ErrRecordsReordered);
//   - the steps: exactly the chain's steps, each field as its record says
//     (ErrStepMismatch, as a *StepMismatchError), and included content
//     matching its content hash (ErrContent);
//   - the facts: run, incident, violation, totals, time to detect, cost,
//     compliance period and population counts agree with the chain
//     (ErrInconsistent).
//
// Every check runs; the error is a *VerificationError listing each
// failure, so that one changed byte reports both the hash mismatch and
// what changed. A signature proves who issued the bundle; the other
// checks prove it is internally sound, which matters when the issuing
// key or the store it was built from was compromised.
func Verify(data []byte, pub ed25519.PublicKey) (*Verified, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("export: Verify: public key of %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	return verify(data, pub)
}

// VerifyUnsigned runs every check of Verify except the signature. It
// proves that the bundle is internally sound, not who issued it.
func VerifyUnsigned(data []byte) (*Verified, error) {
	return verify(data, nil)
}

type envelope struct {
	Bundle     json.RawMessage `json:"bundle"`
	BundleHash string          `json:"bundle_hash"`
	Signatures []Signature     `json:"signatures"`
	Version    string          `json:"version"`
}

func verify(data []byte, pub ed25519.PublicKey) (*Verified, error) {
	var c checks
	malformed := func(sentinel error, format string, args ...any) (*Verified, error) {
		c.add(sentinel, format, args...)
		return nil, c.err()
	}
	// The first JSON value; anything but white space after it is
	// reported, and the value checked all the same.
	var raw json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return malformed(ErrMalformed, "%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		c.add(ErrTrailingData, "%d bytes after the envelope", len(data)-int(dec.InputOffset()))
	}
	// One reading for every reader of the file: no key twice, no key that
	// is a field's only ignoring case, valid UTF-8. encoding/json takes
	// the last of a duplicated key, a person or another parser the first:
	// the hash and signature would cover one, the reader see the other.
	var env envelope
	if err := decodeStrict(raw, &env); err != nil {
		c.fails = append(c.fails, err)
		return nil, c.err()
	}
	switch {
	case env.Version != EnvelopeVersion:
		return malformed(ErrMalformed, "version %q, want %q", env.Version, EnvelopeVersion)
	case len(env.Bundle) == 0 || string(env.Bundle) == "null":
		return malformed(ErrMalformed, "no bundle")
	case !isHash(env.BundleHash):
		return malformed(ErrMalformed, "bundle_hash %q is not 64 lower-case hex digits", env.BundleHash)
	}
	canon, err := canonical(env.Bundle)
	if err != nil {
		return malformed(ErrMalformed, "bundle: %v", err)
	}
	sum := sha256.Sum256(canon)
	hash := hex.EncodeToString(sum[:])
	if hash != env.BundleHash {
		c.fails = append(c.fails, &BundleHashError{Want: env.BundleHash, Got: hash})
	}
	keyID := ""
	if pub != nil {
		keyID = KeyID(pub)
		checkSignature(&c, &env, pub, keyID)
	}
	b, err := decodeBundle(env.Bundle)
	if err != nil {
		c.fails = append(c.fails, err)
		return nil, c.err()
	}
	// What was decoded (and is checked below) must be all the bundle
	// says, in the one spelling its fields have: the canonical bytes the
	// hash covers are those the decoded bundle encodes to.
	if err := sameBytes(b, canon); err != nil {
		c.fails = append(c.fails, err)
	}
	checkContent(&c, b, nil)
	if err := c.err(); err != nil {
		return nil, err
	}
	return &Verified{Sealed: &Sealed{Bundle: b, Canonical: canon, Hash: hash, Signatures: env.Signatures}, KeyID: keyID}, nil
}

// decodeStrict decodes JSON with internal/strictjson: no unknown field
// (ErrMalformed); no key twice, no key that matches a field only ignoring
// case, no invalid UTF-8 (ErrAmbiguous).
func decodeStrict(raw []byte, v any) error {
	if !utf8.Valid(raw) {
		return fmt.Errorf("%w: not valid UTF-8", ErrAmbiguous)
	}
	err := strictjson.Unmarshal(raw, v, strictjson.Options{DisallowUnknownFields: true})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, strictjson.ErrDuplicateKey) || errors.Is(err, strictjson.ErrCaseVariant):
		return fmt.Errorf("%w: %v", ErrAmbiguous, err)
	case errors.Is(err, snapshot.ErrHashMismatch):
		return fmt.Errorf("%w: %w", ErrSnapshot, err)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// sameBytes checks that the decoded bundle encodes to canon, the
// canonical form of the bundle as it was read.
func sameBytes(b Bundle, canon []byte) error {
	raw, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	again, err := canonical(raw)
	if err != nil {
		return fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	if bytes.Equal(again, canon) {
		return nil
	}
	i := 0
	for i < len(again) && i < len(canon) && again[i] == canon[i] {
		i++
	}
	from := max(0, i-40)
	return fmt.Errorf("%w: the bundle holds what its fields do not encode (a key or value spelled another way, or a value no field takes): at byte %d it reads %q, its fields encode %q",
		ErrAmbiguous, i, excerpt(canon, from, i), excerpt(again, from, i))
}

func excerpt(b []byte, from, at int) string {
	return string(b[from:min(len(b), at+40)])
}

func isHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func checkSignature(c *checks, env *envelope, pub ed25519.PublicKey, keyID string) {
	if len(env.Signatures) == 0 {
		c.add(ErrUnsigned, "envelope has no signatures")
		return
	}
	var others []string
	for _, s := range env.Signatures {
		if s.KeyID != keyID {
			others = append(others, s.KeyID)
			continue
		}
		if s.Algorithm != Algorithm {
			c.add(ErrSignature, "signature by key %s uses algorithm %q, want %q", keyID, s.Algorithm, Algorithm)
			return
		}
		sig, err := base64.StdEncoding.Strict().DecodeString(s.Signature)
		if err != nil || len(sig) != ed25519.SignatureSize {
			c.add(ErrSignature, "signature by key %s is not %d bytes of base64", keyID, ed25519.SignatureSize)
			return
		}
		if !ed25519.Verify(pub, signedMessage(env.BundleHash), sig) {
			c.add(ErrSignature, "signature by key %s does not verify for bundle hash %s", keyID, env.BundleHash)
		}
		return
	}
	c.add(ErrKeyMismatch, "signed by key %s, not by key %s", strings.Join(others, ", "), keyID)
}

// decodeBundle decodes a bundle strictly by its type: no unknown field,
// no key twice, no key that is a field's only ignoring case
// (decodeStrict).
func decodeBundle(raw json.RawMessage) (Bundle, error) {
	typ, err := peekType(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	var b Bundle
	switch typ {
	case TypeEvidence:
		b = new(EvidenceBundle)
	case TypeSOC2:
		b = new(SOC2Bundle)
	case TypeExecutiveDebrief:
		b = new(ExecutiveDebriefBundle)
	}
	if err := decodeStrict(raw, b); err != nil {
		return nil, fmt.Errorf("%s bundle: %w", typ, err)
	}
	h := b.header()
	if h.BundleType != typ { // a second bundle_type decodeStrict refused
		return nil, fmt.Errorf("%w: bundle_type %q decoded as %q", ErrMalformed, typ, h.BundleType)
	}
	return b, nil
}

// peekType reads the bundle's bundle_type (the first, which is what any
// reader takes; decodeStrict then refuses a second). It reads members
// only up to that key: in a canonical bundle it is the second.
func peekType(raw []byte) (BundleType, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", errors.New("not a JSON object")
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		if tok == "bundle_type" {
			var t BundleType
			err := dec.Decode(&t)
			return t, err
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return "", err
		}
	}
	return "", errors.New("no bundle_type")
}
