package bundle

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
)

// Key files are PEM text, readable by OpenSSL and any PKCS#8/PKIX library:
//
//	-----BEGIN PRIVATE KEY-----      (PKCS#8, RFC 8410 Ed25519; file mode 0600)
//	MC4CAQAwBQYDK2VwBCIEI...
//	-----END PRIVATE KEY-----
//
//	-----BEGIN PUBLIC KEY-----       (PKIX SubjectPublicKeyInfo)
//	MCowBQYDK2VwAyEA...
//	-----END PUBLIC KEY-----
//
// `openssl pkey -in key.pem -pubout` derives the public key file from the
// private one.
const (
	pemPrivate = "PRIVATE KEY"
	pemPublic  = "PUBLIC KEY"
)

// GenerateKey makes a new ed25519 key pair from rand (crypto/rand.Reader
// when nil).
func GenerateKey(random io.Reader) (ed25519.PublicKey, ed25519.PrivateKey, error) {
	if random == nil {
		random = rand.Reader
	}
	pub, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, nil, fmt.Errorf("bundle: generating key: %w", err)
	}
	return pub, priv, nil
}

// KeyID is the fingerprint that names a public key in signatures (the
// DSSE keyid) and on PDF pages: the first 16 hex digits of the SHA-256
// of the 32-byte key.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// MarshalPrivateKey encodes key as a PEM "PRIVATE KEY" block (PKCS#8).
func MarshalPrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("bundle: encoding private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPrivate, Bytes: der}), nil
}

// MarshalPublicKey encodes pub as a PEM "PUBLIC KEY" block (PKIX).
func MarshalPublicKey(pub ed25519.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("bundle: encoding public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemPublic, Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM "PRIVATE KEY" block holding an ed25519 key.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	der, err := pemBlock(data, pemPrivate)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("bundle: private key: %w", err)
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("bundle: private key is %T, not ed25519", k)
	}
	return ek, nil
}

// ParsePublicKey decodes a PEM "PUBLIC KEY" block holding an ed25519 key.
func ParsePublicKey(data []byte) (ed25519.PublicKey, error) {
	der, err := pemBlock(data, pemPublic)
	if err != nil {
		return nil, err
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("bundle: public key: %w", err)
	}
	ek, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("bundle: public key is %T, not ed25519", k)
	}
	return ek, nil
}

func pemBlock(data []byte, typ string) ([]byte, error) {
	b, rest := pem.Decode(data)
	switch {
	case b == nil:
		return nil, fmt.Errorf("bundle: no PEM %q block", typ)
	case b.Type != typ:
		return nil, fmt.Errorf("bundle: PEM block is %q, want %q", b.Type, typ)
	case len(b.Headers) > 0:
		return nil, fmt.Errorf("bundle: PEM %q block has headers (encrypted keys are not supported)", typ)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("bundle: data after the PEM %q block", typ)
	}
	return b.Bytes, nil
}

// WriteKeyFiles writes a key pair: the private key to privPath (mode
// 0600, refusing to overwrite an existing file) and its public key to
// privPath + ".pub" (mode 0644).
func WriteKeyFiles(privPath string, key ed25519.PrivateKey) error {
	if len(key) != ed25519.PrivateKeySize {
		return errors.New("bundle: WriteKeyFiles: not an ed25519 private key")
	}
	privPEM, err := MarshalPrivateKey(key)
	if err != nil {
		return err
	}
	pubPEM, err := MarshalPublicKey(key.Public().(ed25519.PublicKey))
	if err != nil {
		return err
	}
	if err := writeNew(privPath, privPEM, 0o600); err != nil {
		return err
	}
	return writeNew(privPath+".pub", pubPEM, 0o644)
}

func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("bundle: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("bundle: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("bundle: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bundle: writing %s: %w", path, err)
	}
	return nil
}

// ReadPrivateKeyFile reads a private key file written by WriteKeyFiles
// (or by `openssl genpkey -algorithm ed25519`).
func ReadPrivateKeyFile(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	k, err := ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return k, nil
}

// ReadPublicKeyFile reads a public key file written by WriteKeyFiles.
func ReadPublicKeyFile(path string) (ed25519.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bundle: %w", err)
	}
	k, err := ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return k, nil
}
