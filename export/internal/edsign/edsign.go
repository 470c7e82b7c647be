// Package edsign signs with pure Ed25519 (RFC 8032) a message read twice
// as a stream, so that a message of any size is signed in constant
// memory, with exactly the signatures crypto/ed25519 makes. It is built on
// filippo.io/edwards25519, the group arithmetic crypto/ed25519 itself is
// built on; package export uses it to seal bundles too large to hold.
package edsign

import (
	"crypto/ed25519"
	"crypto/sha512"
	"errors"
	"hash"
	"io"

	"filippo.io/edwards25519"
)

// Signer makes a pure Ed25519 signature (RFC 8032, exactly as
// crypto/ed25519.Sign makes it) of a message read twice, each time as a
// stream, so that a message of any size is signed in constant memory.
// Ed25519 reads its message twice by design: once for the nonce
// r = SHA-512(prefix || M), once for the challenge
// k = SHA-512(R || A || M). Ed25519ph, which reads it once, is another
// signature scheme that DSSE verifiers do not take; this is not it.
//
// Use: write M to Nonce(); call Commit; write M again to Challenge(); call
// Sign. The two Ms must be the same bytes: Sign's signature verifies only
// over the second (see Verify).
type Signer struct {
	s      *edwards25519.Scalar // the secret scalar
	pub    []byte               // A
	nonce  hash.Hash            // SHA-512(prefix || M)
	r      *edwards25519.Scalar
	R      []byte
	chall  hash.Hash // SHA-512(R || A || M)
	k      *edwards25519.Scalar
	signed bool
}

func New(priv ed25519.PrivateKey) (*Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("edsign: ed25519 private key of the wrong size")
	}
	h := sha512.Sum512(priv[:ed25519.SeedSize])
	s, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	if err != nil {
		return nil, err
	}
	ss := &Signer{s: s, pub: priv[ed25519.SeedSize:], nonce: sha512.New()}
	ss.nonce.Write(h[32:]) // the prefix
	return ss, nil
}

// Public returns the signer's public key.
func (ss *Signer) Public() ed25519.PublicKey { return ed25519.PublicKey(ss.pub) }

// Nonce is where the first reading of the message goes.
func (ss *Signer) Nonce() io.Writer { return ss.nonce }

// Commit ends the first reading: it fixes the nonce r and R = rB.
func (ss *Signer) Commit() error {
	r, err := edwards25519.NewScalar().SetUniformBytes(ss.nonce.Sum(nil))
	if err != nil {
		return err
	}
	ss.r = r
	ss.R = (&edwards25519.Point{}).ScalarBaseMult(r).Bytes()
	ss.chall = sha512.New()
	ss.chall.Write(ss.R)
	ss.chall.Write(ss.pub)
	return nil
}

// Challenge is where the second reading of the message goes.
func (ss *Signer) Challenge() io.Writer { return ss.chall }

// Sign ends the second reading and returns the signature R || S, with
// S = k s + r, which it has checked verifies over the message of the
// second reading (Verify).
func (ss *Signer) Sign() ([]byte, error) {
	sig, err := ss.sign()
	if err != nil {
		return nil, err
	}
	if !ss.Verify(sig) {
		return nil, errors.New("edsign: the signature does not verify")
	}
	return sig, nil
}

func (ss *Signer) sign() ([]byte, error) {
	k, err := edwards25519.NewScalar().SetUniformBytes(ss.chall.Sum(nil))
	if err != nil {
		return nil, err
	}
	ss.k = k
	S := edwards25519.NewScalar().MultiplyAdd(k, ss.s, ss.r)
	ss.signed = true
	return append(append(make([]byte, 0, ed25519.SignatureSize), ss.R...), S.Bytes()...), nil
}

// Verify checks sig as ed25519.Verify does, against the message of the
// second reading (whose challenge k Sign computed): [S]B = R + [k]A.
func (ss *Signer) Verify(sig []byte) bool {
	if !ss.signed || len(sig) != ed25519.SignatureSize {
		return false
	}
	return verifyWithChallenge(ss.pub, ss.k, sig)
}

// verifyWithChallenge is ed25519.Verify for a message whose challenge
// k = SHA-512(R || A || M) is known.
func verifyWithChallenge(pub []byte, k *edwards25519.Scalar, sig []byte) bool {
	A, err := (&edwards25519.Point{}).SetBytes(pub)
	if err != nil {
		return false
	}
	S, err := edwards25519.NewScalar().SetCanonicalBytes(sig[32:])
	if err != nil {
		return false
	}
	minusA := (&edwards25519.Point{}).Negate(A)
	R := (&edwards25519.Point{}).VarTimeDoubleScalarBaseMult(k, minusA, S)
	return string(R.Bytes()) == string(sig[:32])
}
