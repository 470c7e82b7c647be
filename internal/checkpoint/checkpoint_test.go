package checkpoint_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/internal/checkpoint"
)

// TestOpenAndParseAgree: a signed note reads the same with its key
// (Open) and without (Parse); another key or a changed line is refused.
// governance's checkpoint tests and fuzz targets probe the format in depth.
func TestOpenAndParseAgree(t *testing.T) {
	skey, vkey, err := note.GenerateKey(nil, "test-key")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	at := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	head := strings.Repeat("ab", 32)
	text, err := checkpoint.Text("ac me", "RUN/1", 3, head, at)
	if err != nil {
		t.Fatal(err)
	}
	if want := checkpoint.Origin + "\nac%20me\nRUN%2F1\n3\n" + head + "\n2026-03-01T09:00:00Z\n"; text != want {
		t.Errorf("text %q, want %q", text, want)
	}
	msg, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		t.Fatal(err)
	}
	opened, err := checkpoint.Open(msg, note.VerifierList(verifier))
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := checkpoint.Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	want := checkpoint.Statement{TenantID: "ac me", RunID: "RUN/1", Size: 3, Head: head, At: at, KeyName: "test-key", Note: string(msg)}
	if opened != want || parsed != want {
		t.Errorf("opened %+v\nparsed %+v\nwant   %+v", opened, parsed, want)
	}
	_, otherV, _ := note.GenerateKey(nil, "test-key")
	ov, _ := note.NewVerifier(otherV)
	if _, err := checkpoint.Open(msg, note.VerifierList(ov)); !errors.Is(err, checkpoint.ErrInvalid) {
		t.Errorf("another key: %v", err)
	}
	for _, bad := range []string{"\n3\n", "\n03\n"} {
		forged := strings.Replace(string(msg), "\n3\n", bad, 1)
		if bad == "\n3\n" {
			forged = strings.Replace(string(msg), "ac%20me", "ac me", 1)
		}
		if _, err := checkpoint.Parse([]byte(forged)); !errors.Is(err, checkpoint.ErrInvalid) {
			t.Errorf("%q: %v", forged, err)
		}
	}
}
