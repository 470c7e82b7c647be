package bundle

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

// Verify checks a JSON export (a DSSE envelope, as Sealed.WriteTo writes
// it) without any database, and returns the bundle it holds. It checks:
//
//   - the envelope: JSON that every reader reads the same way (no key
//     twice, no key in another case, valid UTF-8, nothing after it), the
//     three DSSE fields and no other, the payload type PayloadType, the
//     payload in standard base64 (ErrMalformed, ErrAmbiguous,
//     ErrTrailingData);
//   - the signature: a signature by pub, ed25519 over DSSE's
//     PAE(payloadType, payload). Signatures whose keyid names another key
//     are not tried; one with no keyid is (ErrSignature; ErrUnsigned,
//     ErrKeyMismatch);
//   - the payload: JSON that every reader reads the same way, exactly the
//     canonical encoding (RFC 8785) of the bundle it decodes to, with no
//     unknown field (ErrAmbiguous, ErrMalformed);
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
//     (ErrInconsistent);
//   - the checkpoint it carries, if any: a well-formed checkpoint of this
//     tenant, run and chain (ErrCheckpoint; VerifyCheckpoint also checks
//     who signed it);
//   - the tenant log proof it carries, if any: its leaf is of this
//     tenant, run and chain, and the inclusion proof proves it in the
//     tree head it states; a signed tree head, if any, is that head
//     (ErrTenantLog; VerifyTenantLogHead also checks who signed it).
//
// Every check runs; the error is a *VerificationError listing each
// failure, so that one changed byte reports both the signature and what
// changed. A signature proves who issued the bundle; the other checks
// prove it is internally sound, which matters when the issuing key or the
// store it was built from was compromised. The bundle hash (Verified.Hash)
// is the SHA-256 of the payload.
func Verify(data []byte, pub ed25519.PublicKey) (*Verified, error) {
	if len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("bundle: Verify: public key of %d bytes, want %d", len(pub), ed25519.PublicKeySize)
	}
	return verify(data, pub)
}

// VerifyUnsigned runs every check of Verify except the signature. It
// proves that the bundle is internally sound, not who issued it; compare
// Verified.Hash with the bundle hash from a trusted place (the PDF's
// footer, the export log, the X-Stopline-Bundle-Hash header) to know it
// is the bundle that was issued.
func VerifyUnsigned(data []byte) (*Verified, error) {
	return verify(data, nil)
}

// envelope is a DSSE envelope.
type envelope struct {
	Payload     string      `json:"payload"`
	PayloadType string      `json:"payloadType"`
	Signatures  []Signature `json:"signatures"`
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
	// the signature would cover one, the reader see the other.
	var env envelope
	if err := decodeStrict(raw, &env); err != nil {
		c.fails = append(c.fails, err)
		return nil, c.err()
	}
	if env.PayloadType != PayloadType {
		return malformed(ErrMalformed, "payloadType %q, want %q", env.PayloadType, PayloadType)
	}
	if env.Signatures == nil {
		return malformed(ErrMalformed, "no signatures list")
	}
	payload, err := decodeBase64(env.Payload)
	if err != nil {
		return malformed(ErrMalformed, "payload: %v", err)
	}
	if len(payload) == 0 {
		return malformed(ErrMalformed, "empty payload")
	}
	sum := sha256.Sum256(payload)
	hash := hex.EncodeToString(sum[:])
	keyID := ""
	if pub != nil {
		keyID = KeyID(pub)
		checkSignature(&c, env.Signatures, payload, pub, keyID)
	}
	b, err := decodeBundle(payload)
	if err != nil {
		c.fails = append(c.fails, err)
		return nil, c.err()
	}
	// What was decoded (and is checked below) must be all the payload
	// says, in the one spelling its fields have: the payload is exactly
	// the canonical encoding of the decoded bundle.
	if err := sameBytes(b, payload); err != nil {
		c.fails = append(c.fails, err)
	}
	checkContent(&c, b)
	if err := c.err(); err != nil {
		return nil, err
	}
	return &Verified{Sealed: &Sealed{Bundle: b, Payload: payload, Hash: hash, Signatures: env.Signatures}, KeyID: keyID}, nil
}

// decodeBase64 decodes DSSE's base64: standard or URL-safe, padded, in
// its one canonical spelling (no line breaks, no stray bits), so that
// every decoder reads the same bytes.
func decodeBase64(s string) ([]byte, error) {
	// Strict decoding refuses stray bits and misplaced padding but skips
	// line breaks; without them, text of the encoded length is the one
	// spelling of what it decodes to.
	if strings.ContainsAny(s, "\r\n") {
		return nil, errors.New("not base64 in its canonical form")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		b, err := enc.Strict().DecodeString(s)
		if err == nil && enc.EncodedLen(len(b)) == len(s) {
			return b, nil
		}
	}
	return nil, errors.New("not base64 in its canonical form")
}

// decodeStrict decodes JSON with internal/strictjson: no unknown field
// (ErrMalformed); no key twice, no key that matches a field only ignoring
// case, no invalid UTF-8, no unpaired surrogate escape (ErrAmbiguous).
func decodeStrict(raw []byte, v any) error {
	if !utf8.Valid(raw) {
		return fmt.Errorf("%w: not valid UTF-8", ErrAmbiguous)
	}
	if err := strictjson.CheckSurrogates(raw); err != nil {
		return fmt.Errorf("%w: %v", ErrAmbiguous, err)
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

// sameBytes checks that the decoded bundle encodes to payload. The
// encoding is compared with the payload as it is written, not held.
func sameBytes(b Bundle, payload []byte) error {
	cw := &compareWriter{want: payload}
	if err := writeBundle(newJSONWriter(cw), b, partsOf(b)); err != nil {
		return fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	if !cw.differs && cw.n == len(payload) {
		return nil
	}
	// Where they differ, from the whole encoding.
	again, err := encode(b)
	if err != nil {
		return fmt.Errorf("%w: bundle: %v", ErrMalformed, err)
	}
	i := 0
	for i < len(again) && i < len(payload) && again[i] == payload[i] {
		i++
	}
	from := max(0, i-40)
	return fmt.Errorf("%w: the payload is not the canonical encoding of the bundle it holds (a key or value spelled another way, white space, or a value no field takes): at byte %d it reads %q, its fields encode %q",
		ErrAmbiguous, i, excerpt(payload, from, i), excerpt(again, from, i))
}

func excerpt(b []byte, from, at int) string {
	return string(b[from:min(len(b), at+40)])
}

func checkSignature(c *checks, sigs []Signature, payload []byte, pub ed25519.PublicKey, keyID string) {
	if len(sigs) == 0 {
		c.add(ErrUnsigned, "envelope has no signatures")
		return
	}
	msg := pae(PayloadType, payload)
	var others []string
	tried := 0
	for _, s := range sigs {
		// The keyid is an unsigned hint (DSSE): a signature that names
		// another key is not tried, one that names none is.
		if s.KeyID != "" && s.KeyID != keyID {
			others = append(others, s.KeyID)
			continue
		}
		tried++
		sig, err := decodeBase64(s.Sig)
		if err == nil && len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, msg, sig) {
			return
		}
	}
	if tried == 0 {
		c.add(ErrKeyMismatch, "signed by key %s, not by key %s", strings.Join(others, ", "), keyID)
		return
	}
	c.add(ErrSignature, "no signature by key %s verifies for this payload (%d tried)", keyID, tried)
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
		b = new(Evidence)
	case TypeSOC2:
		b = new(SOC2)
	case TypeExecutiveDebrief:
		b = new(ExecutiveDebrief)
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
func peekType(raw []byte) (Type, error) {
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
			var t Type
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

// compareWriter compares what is written with want.
type compareWriter struct {
	want    []byte
	n       int
	differs bool
}

func (c *compareWriter) Write(p []byte) (int, error) {
	if !c.differs {
		end := c.n + len(p)
		if end > len(c.want) || !bytes.Equal(c.want[c.n:end], p) {
			c.differs = true
		}
	}
	c.n += len(p)
	return len(p), nil
}
