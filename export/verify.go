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
	malformed := func(format string, args ...any) (*Verified, error) {
		c.add(ErrMalformed, format, args...)
		return nil, c.err()
	}
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		return malformed("%v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		c.add(ErrTrailingData, "%d bytes after the envelope", len(data)-int(dec.InputOffset()))
	}
	switch {
	case env.Version != EnvelopeVersion:
		return malformed("version %q, want %q", env.Version, EnvelopeVersion)
	case len(env.Bundle) == 0 || string(env.Bundle) == "null":
		return malformed("no bundle")
	case !isHash(env.BundleHash):
		return malformed("bundle_hash %q is not 64 lower-case hex digits", env.BundleHash)
	}
	canon, err := canonical(env.Bundle)
	if err != nil {
		return malformed("bundle: %v", err)
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
	checkContent(&c, b, nil)
	if err := c.err(); err != nil {
		return nil, err
	}
	return &Verified{Sealed: &Sealed{Bundle: b, Canonical: canon, Hash: hash, Signatures: env.Signatures}, KeyID: keyID}, nil
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

// decodeBundle decodes a bundle strictly (no unknown fields) by its type.
func decodeBundle(raw json.RawMessage) (Bundle, error) {
	var peek struct {
		BundleType BundleType `json:"bundle_type"`
	}
	if err := json.Unmarshal(raw, &peek); err != nil {
		return nil, fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	var b Bundle
	switch peek.BundleType {
	case TypeEvidence:
		b = new(EvidenceBundle)
	case TypeSOC2:
		b = new(SOC2Bundle)
	case TypeExecutiveDebrief:
		b = new(ExecutiveDebriefBundle)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(b); err != nil {
		if errors.Is(err, snapshot.ErrHashMismatch) {
			return nil, fmt.Errorf("%w: %w", ErrSnapshot, err)
		}
		return nil, fmt.Errorf("%w: %s bundle: %v", ErrMalformed, peek.BundleType, err)
	}
	h := b.header()
	if h.BundleType != peek.BundleType {
		return nil, fmt.Errorf("%w: bundle_type %q decoded as %q", ErrMalformed, peek.BundleType, h.BundleType)
	}
	return b, nil
}
