package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stopline/stopline/export/bundle"
)

func TestKeyFiles(t *testing.T) {
	pub, priv, err := bundle.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.pem")
	if err := bundle.WriteKeyFiles(path, priv); err != nil {
		t.Fatal(err)
	}
	if err := bundle.WriteKeyFiles(path, priv); err == nil {
		t.Error("WriteKeyFiles overwrote an existing key")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	gotPriv, err := bundle.ReadPrivateKeyFile(path)
	if err != nil || !gotPriv.Equal(priv) {
		t.Fatalf("private key round trip: %v", err)
	}
	gotPub, err := bundle.ReadPublicKeyFile(path + ".pub")
	if err != nil || !gotPub.Equal(pub) {
		t.Fatalf("public key round trip: %v", err)
	}
	text, _ := os.ReadFile(path + ".pub")
	if !strings.HasPrefix(string(text), "-----BEGIN PUBLIC KEY-----\n") {
		t.Errorf("public key file is not PEM:\n%s", text)
	}
	// The key id is the public key's fingerprint: 16 hex digits, the same
	// for the key read back.
	if id := bundle.KeyID(pub); len(id) != 16 || bundle.KeyID(gotPub) != id || bundle.KeyID(gotPriv.Public().(ed25519.PublicKey)) != id {
		t.Errorf("key ids: %s %s", id, bundle.KeyID(gotPub))
	}
	other, _, _ := bundle.GenerateKey(nil)
	if bundle.KeyID(other) == bundle.KeyID(pub) {
		t.Error("two keys with one id")
	}
	// OpenSSL reads the files, when it is installed.
	if _, err := exec.LookPath("openssl"); err == nil {
		out, err := exec.Command("openssl", "pkey", "-in", path, "-pubout").CombinedOutput()
		if err != nil || !bytes.Equal(out, text) {
			t.Errorf("openssl pkey -pubout: %v\n%s\nwant\n%s", err, out, text)
		}
	}
}

func TestParseKeyErrors(t *testing.T) {
	pub, priv, _ := bundle.GenerateKey(nil)
	privPEM, _ := bundle.MarshalPrivateKey(priv)
	pubPEM, _ := bundle.MarshalPublicKey(pub)
	tests := []struct {
		name string
		data []byte
		pub  bool
	}{
		{"empty", nil, false},
		{"not PEM", []byte("hello"), true},
		{"public key as private", pubPEM, false},
		{"private key as public", privPEM, true},
		{"trailing data", append(bytes.Clone(pubPEM), "junk"...), true},
		{"corrupt", bytes.Replace(privPEM, []byte("BCIEI"), nil, 1), false},
	}
	for _, tc := range tests {
		var err error
		if tc.pub {
			_, err = bundle.ParsePublicKey(tc.data)
		} else {
			_, err = bundle.ParsePrivateKey(tc.data)
		}
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if err := bundle.WriteKeyFiles(t.TempDir()+"/k", ed25519.PrivateKey("short")); err == nil {
		t.Error("WriteKeyFiles accepted a short key")
	}
}
