package bundle_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"testing"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/fixture"
)

// ed25519SV is an ed25519 signer and verifier for go-securesystemslib's
// dsse package, written against its Signer and Verifier interfaces: what
// a generic DSSE tool brings, knowing nothing of stopline but the key.
type ed25519SV struct {
	priv ed25519.PrivateKey // nil for a verifier only
	pub  ed25519.PublicKey
	id   string
}

var (
	_ dsse.Signer   = ed25519SV{}
	_ dsse.Verifier = ed25519SV{}
)

func (s ed25519SV) Sign(_ context.Context, data []byte) ([]byte, error) {
	return ed25519.Sign(s.priv, data), nil
}

func (s ed25519SV) Verify(_ context.Context, data, sig []byte) error {
	if !ed25519.Verify(s.pub, data, sig) {
		return errors.New("ed25519: invalid signature")
	}
	return nil
}

func (s ed25519SV) KeyID() (string, error)   { return s.id, nil }
func (s ed25519SV) Public() crypto.PublicKey { return s.pub }

// TestDSSEVerifiesOurBundles: every bundle stopline exports verifies
// with go-securesystemslib's DSSE verifier and the issuer's ed25519 key,
// whose payload is the bundle's canonical JSON (its SHA-256 the bundle
// hash); another key does not verify it, nor a changed payload.
func TestDSSEVerifiesOurBundles(t *testing.T) {
	f := fixture.New(t, nil)
	// The verifier knows the key and its id (bundle.KeyID, printed by
	// stopline keygen). The id matters to this library: a Verifier that
	// states none is given an SSH fingerprint as its id, and signatures
	// under another keyid are skipped.
	verifier, err := dsse.NewEnvelopeVerifier(ed25519SV{pub: f.Pub, id: bundle.KeyID(f.Pub)})
	if err != nil {
		t.Fatal(err)
	}
	for _, typ := range []bundle.Type{bundle.TypeEvidence, bundle.TypeSOC2, bundle.TypeExecutiveDebrief} {
		t.Run(string(typ), func(t *testing.T) {
			data, a := exportJSON(t, f.Exp, typ, inc1("alice"))
			var env dsse.Envelope
			if err := json.Unmarshal(data, &env); err != nil {
				t.Fatal(err)
			}
			if env.PayloadType != bundle.PayloadType {
				t.Errorf("payloadType %q", env.PayloadType)
			}
			keys, payload, err := verifier.VerifyAndDecode(ctx, &env)
			if err != nil || len(keys) != 1 || keys[0].KeyID != bundle.KeyID(f.Pub) {
				t.Fatalf("go-securesystemslib does not verify our bundle: %v", err)
			}
			if !bytes.Equal(payload, a.Sealed.Payload) || sha256Hex(payload) != a.Sealed.Hash {
				t.Errorf("the DSSE payload is not the bundle's canonical JSON")
			}
			// Another key, and a changed payload, do not verify.
			otherPub := fixture.Key("someone else").Public().(ed25519.PublicKey)
			other, _ := dsse.NewEnvelopeVerifier(ed25519SV{pub: otherPub, id: bundle.KeyID(f.Pub)})
			if _, err := other.Verify(ctx, &env); err == nil {
				t.Error("another key verifies the bundle")
			}
			e := decodeEnv(t, data)
			e.bundle()["exported_by"] = "mallory"
			e.encode(t)
			var changed dsse.Envelope
			if err := json.Unmarshal(e.bytes(t), &changed); err != nil {
				t.Fatal(err)
			}
			if _, err := verifier.Verify(ctx, &changed); err == nil {
				t.Error("a changed payload verifies")
			}
		})
	}
}

// TestOurVerifyAcceptsDSSESignedBundles: a bundle's payload signed by
// go-securesystemslib's EnvelopeSigner (with the issuer's key, with and
// without a key id, beside another key's signature) verifies with
// bundle.Verify: the format is DSSE, not a look-alike.
func TestOurVerifyAcceptsDSSESignedBundles(t *testing.T) {
	f := fixture.New(t, nil)
	data, a := exportJSON(t, f.Exp, bundle.TypeEvidence, inc1("alice"))
	other := fixture.Key("someone else")
	tests := []struct {
		name    string
		signers []dsse.Signer
		keyID   string
	}{
		{"with our key id", []dsse.Signer{ed25519SV{priv: f.Key, pub: f.Pub, id: bundle.KeyID(f.Pub)}}, bundle.KeyID(f.Pub)},
		{"without a key id", []dsse.Signer{ed25519SV{priv: f.Key, pub: f.Pub}}, ""},
		{"beside another key's signature", []dsse.Signer{
			ed25519SV{priv: other, pub: other.Public().(ed25519.PublicKey), id: "other"},
			ed25519SV{priv: f.Key, pub: f.Pub, id: "issuer-key-in-kms"},
		}, "other"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			signer, err := dsse.NewEnvelopeSigner(tc.signers...)
			if err != nil {
				t.Fatal(err)
			}
			env, err := signer.SignPayload(ctx, bundle.PayloadType, a.Sealed.Payload)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := json.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(raw, data) {
				t.Fatal("the library wrote our bytes exactly: the test proves nothing")
			}
			if tc.name == "beside another key's signature" {
				// A key id that is not ours is not tried: the signature
				// under "issuer-key-in-kms" is ours only if named so or
				// not named. Name it ours, as the issuer's DSSE tooling
				// would, and it verifies.
				env.Signatures[1].KeyID = bundle.KeyID(f.Pub)
				if raw, err = json.Marshal(env); err != nil {
					t.Fatal(err)
				}
			}
			v, err := bundle.Verify(raw, f.Pub)
			if err != nil {
				t.Fatalf("bundle.Verify refuses a DSSE envelope signed by go-securesystemslib: %v", err)
			}
			if v.Hash != a.Sealed.Hash || v.KeyID != bundle.KeyID(f.Pub) || v.Bundle.ID() != a.Sealed.Bundle.ID() {
				t.Errorf("verified %s %s by %s", v.Bundle.ID(), v.Hash, v.KeyID)
			}
			if _, err := bundle.Verify(raw, other.Public().(ed25519.PublicKey)); tc.keyID != "other" && !errors.Is(err, bundle.ErrSignature) {
				t.Errorf("verified with another key: %v", err)
			}
		})
	}
	// Another payload type, signed as such, is refused: the type is part
	// of what is signed, and of what a bundle is.
	signer, _ := dsse.NewEnvelopeSigner(ed25519SV{priv: f.Key, pub: f.Pub, id: bundle.KeyID(f.Pub)})
	env, _ := signer.SignPayload(ctx, "application/vnd.in-toto+json", a.Sealed.Payload)
	raw, _ := json.Marshal(env)
	if _, err := bundle.Verify(raw, f.Pub); !errors.Is(err, bundle.ErrMalformed) {
		t.Errorf("another payload type: %v", err)
	}
}

// TestPAEVector: the signature covers DSSE's pre-authentication encoding,
// checked against the specification's example and the library's PAE.
func TestPAEVector(t *testing.T) {
	want := "DSSEv1 29 http://example.com/HelloWorld 11 hello world"
	if got := string(pae("http://example.com/HelloWorld", []byte("hello world"))); got != want {
		t.Errorf("pae: %q", got)
	}
	if got := string(dsse.PAE("http://example.com/HelloWorld", []byte("hello world"))); got != want {
		t.Errorf("dsse.PAE: %q", got)
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
