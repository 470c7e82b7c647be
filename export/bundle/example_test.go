package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stopline/stopline/export/bundle"
)

// An auditor verifies an evidence bundle offline, with the issuer's
// public key and nothing else: no database, no stopline service.
func ExampleVerify() {
	pub, err := bundle.ReadPublicKeyFile("testdata/evidence.pub")
	if err != nil {
		fmt.Println(err)
		return
	}
	data, err := os.ReadFile("testdata/evidence.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	v, err := bundle.Verify(data, pub)
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := v.Bundle.(*bundle.Evidence)
	inf, _ := ev.Inflection()
	fmt.Println("verified:", v.Bundle.Type(), v.Bundle.ID(), "signed by", v.KeyID)
	fmt.Println("run:", ev.RunID, "of", ev.TenantID, "stopped at step", inf.StepIndex, "by", inf.Decision.PolicyID)
	fmt.Println("chain:", len(ev.Chain), "records, head", ev.HeadHash[:16]+"…")

	// A copy whose chain was changed and signed again: still refused.
	forged, _ := os.ReadFile("testdata/tampered-step-changed.json")
	_, err = bundle.Verify(forged, pub)
	fmt.Println(errors.Is(err, bundle.ErrRecordChanged))
	// Output:
	// verified: evidence BND-4869e192774f7cd6 signed by 366dfca11e47c21f
	// run: RUN-0001 of acme stopped at step 3 by tools
	// chain: 6 records, head 6a6b02ad8ed564ee…
	// true
}

// Seal signs a bundle as a DSSE envelope; WriteTo writes it. Here the
// bundle is one read back from a file, sealed again with another key.
func ExampleSeal() {
	data, _ := os.ReadFile("testdata/evidence.json")
	v, err := bundle.VerifyUnsigned(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	seed := sha256.Sum256([]byte("example key"))
	key := ed25519.NewKeyFromSeed(seed[:]) // a real key: bundle.ReadPrivateKeyFile
	s, err := bundle.Seal(v.Bundle, key)
	if err != nil {
		fmt.Println(err)
		return
	}
	var envelope bytes.Buffer
	s.WriteTo(&envelope)
	fmt.Println("same bundle hash:", s.Hash == v.Hash)
	fmt.Println("signed by:", s.KeyID())

	again, err := bundle.Verify(envelope.Bytes(), key.Public().(ed25519.PublicKey))
	fmt.Println("verifies:", err == nil && again.Hash == s.Hash)
	// Output:
	// same bundle hash: true
	// signed by: 1a8f706786d41630
	// verifies: true
}

// GenerateKey makes a signing key; WriteKeyFiles writes it as PEM files
// (what stopline keygen does), and the public key file is what an
// auditor is given. The key id names the key on signatures and PDFs.
func ExampleGenerateKey() {
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize) // nil reads crypto/rand
	pub, priv, err := bundle.GenerateKey(bytes.NewReader(seed))
	if err != nil {
		fmt.Println(err)
		return
	}
	dir, _ := os.MkdirTemp("", "keys")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "export.key")
	if err := bundle.WriteKeyFiles(path, priv); err != nil {
		fmt.Println(err)
		return
	}
	read, err := bundle.ReadPublicKeyFile(path + ".pub")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("key id:", bundle.KeyID(pub))
	fmt.Println("read back:", read.Equal(pub))
	// Output:
	// key id: fe812c12f3ab4ce6
	// read back: true
}
