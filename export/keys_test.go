package export_test

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stopline/stopline/export"
)

func TestKeyFiles(t *testing.T) {
	pub, priv, err := export.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "signing.pem")
	if err := export.WriteKeyFiles(path, priv); err != nil {
		t.Fatal(err)
	}
	if err := export.WriteKeyFiles(path, priv); err == nil {
		t.Error("WriteKeyFiles overwrote an existing key")
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key file mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	gotPriv, err := export.ReadPrivateKeyFile(path)
	if err != nil || !gotPriv.Equal(priv) {
		t.Fatalf("private key round trip: %v", err)
	}
	gotPub, err := export.ReadPublicKeyFile(path + ".pub")
	if err != nil || !gotPub.Equal(pub) {
		t.Fatalf("public key round trip: %v", err)
	}
	text, _ := os.ReadFile(path + ".pub")
	if !strings.HasPrefix(string(text), "-----BEGIN PUBLIC KEY-----\n") {
		t.Errorf("public key file is not PEM:\n%s", text)
	}
	// The key id is the public key's fingerprint: 16 hex digits, the same
	// for the signer and for the key read back.
	s, err := export.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	if id := export.KeyID(pub); len(id) != 16 || s.KeyID() != id || export.KeyID(gotPub) != id || !s.Public().Equal(pub) {
		t.Errorf("key ids: %s %s %s", id, s.KeyID(), export.KeyID(gotPub))
	}
	other, _, _ := export.GenerateKey(nil)
	if export.KeyID(other) == export.KeyID(pub) {
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
	pub, priv, _ := export.GenerateKey(nil)
	privPEM, _ := export.MarshalPrivateKey(priv)
	pubPEM, _ := export.MarshalPublicKey(pub)
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
			_, err = export.ParsePublicKey(tc.data)
		} else {
			_, err = export.ParsePrivateKey(tc.data)
		}
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if _, err := export.NewSigner(ed25519.PrivateKey("short")); err == nil {
		t.Error("NewSigner accepted a short key")
	}
}
