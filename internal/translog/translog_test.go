package translog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

func hexOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestFrontierAppendIsTlog: appending through the frontier stores exactly
// the hashes tlog.StoredHashes computes over the whole tree, and the
// frontier's root is tlog's tree hash, for every size up to 300.
func TestFrontierAppendIsTlog(t *testing.T) {
	var all []tlog.Hash
	read := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = all[x]
		}
		return out, nil
	})
	var f Frontier
	for n := int64(0); n < 300; n++ {
		data := []byte(fmt.Sprint("leaf ", n))
		want, err := tlog.StoredHashes(n, data, read)
		if err != nil {
			t.Fatal(err)
		}
		got, next, err := f.Append(n, tlog.RecordHash(data))
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("leaf %d: stored %v, want %v", n, got, want)
		}
		if int64(len(all)) != tlog.StoredHashIndex(0, n) {
			t.Fatalf("leaf %d: stored hashes start at %d, want %d", n, len(all), tlog.StoredHashIndex(0, n))
		}
		all = append(all, want...)
		f = next
		root, err := f.Root(n + 1)
		if err != nil {
			t.Fatal(err)
		}
		wantRoot, _ := tlog.TreeHash(n+1, read)
		if root != wantRoot {
			t.Fatalf("size %d: root %v, want %v", n+1, root, wantRoot)
		}
		back, err := DecodeFrontier(n+1, f.Bytes())
		if err != nil || fmt.Sprint(back) != fmt.Sprint(f) {
			t.Fatalf("size %d: frontier does not read back: %v", n+1, err)
		}
	}
	if _, err := DecodeFrontier(3, make([]byte, 32)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("short frontier: %v", err)
	}
}

func TestLeafEncoding(t *testing.T) {
	run := Leaf{TenantID: "acme corp", RunID: "run/1", Kind: KindRunEnd, Seq: 7, Head: hexOf("x")}
	b, err := run.Encode()
	if err != nil {
		t.Fatal(err)
	}
	want := LeafOrigin + "\nacme%20corp\nrun%2F1\nrun_end\n7\n" + hexOf("x") + "\n"
	if string(b) != want {
		t.Fatalf("encoding %q, want %q", b, want)
	}
	cp := run
	cp.Kind, cp.KeyName, cp.NoteHash = KindCheckpoint, "k", NoteHash("n")
	b, err = cp.Encode()
	if err != nil || !strings.HasSuffix(string(b), "checkpoint\n7\n"+hexOf("x")+"\nk\n"+NoteHash("n")+"\n") {
		t.Fatalf("checkpoint encoding %q, %v", b, err)
	}
	for name, bad := range map[string]Leaf{
		"no tenant":      {RunID: "r", Kind: KindRunEnd, Head: hexOf("x")},
		"no run":         {TenantID: "t", Kind: KindRunEnd, Head: hexOf("x")},
		"upper hex":      {TenantID: "t", RunID: "r", Kind: KindRunEnd, Head: strings.ToUpper(hexOf("x"))},
		"negative seq":   {TenantID: "t", RunID: "r", Kind: KindRunEnd, Seq: -1, Head: hexOf("x")},
		"unknown kind":   {TenantID: "t", RunID: "r", Kind: "step", Head: hexOf("x")},
		"run_end + key":  {TenantID: "t", RunID: "r", Kind: KindRunEnd, Head: hexOf("x"), KeyName: "k"},
		"checkpoint bad": {TenantID: "t", RunID: "r", Kind: KindCheckpoint, Head: hexOf("x"), KeyName: "k"},
	} {
		if _, err := bad.Encode(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
}

func TestHeadNote(t *testing.T) {
	skey, vkey, err := note.GenerateKey(nil, "log-key")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	text, err := HeadText("acme", 5, hexOf("root"), at)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		t.Fatal(err)
	}
	h, err := OpenHead(msg, note.VerifierList(verifier))
	if err != nil || h.TenantID != "acme" || h.Size != 5 || h.Root != hexOf("root") || !h.At.Equal(at) || h.KeyName != "log-key" {
		t.Fatalf("OpenHead: %+v, %v", h, err)
	}
	if p, err := ParseHead(msg); err != nil || p.Size != 5 {
		t.Fatalf("ParseHead: %+v, %v", p, err)
	}
	for name, text := range map[string]string{
		"size +5":      strings.Replace(text, "\n5\n", "\n+5\n", 1),
		"other origin": strings.Replace(text, HeadOrigin, "stopline/run-checkpoint/v1", 1),
		"extra line":   text + "x\n",
		"upper root":   strings.Replace(text, hexOf("root"), strings.ToUpper(hexOf("root")), 1),
	} {
		msg, err := note.Sign(&note.Note{Text: text}, signer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := OpenHead(msg, note.VerifierList(verifier)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	flipped := []byte(strings.Replace(string(msg), "\n5\n", "\n6\n", 1))
	if _, err := OpenHead(flipped, note.VerifierList(verifier)); !errors.Is(err, ErrInvalid) {
		t.Errorf("changed size: %v, want ErrInvalid", err)
	}
}

func TestCheckInclusion(t *testing.T) {
	var all []tlog.Hash
	read := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			out[i] = all[x]
		}
		return out, nil
	})
	var leaves []Leaf
	for n := int64(0); n < 37; n++ {
		l := Leaf{Index: n, TenantID: "t", RunID: fmt.Sprint("r", n), Kind: KindRunEnd, Seq: 3, Head: hexOf(fmt.Sprint(n))}
		b, _ := l.Encode()
		h, _ := tlog.StoredHashes(n, b, read)
		all = append(all, h...)
		leaves = append(leaves, l)
	}
	root, _ := tlog.TreeHash(37, read)
	for _, l := range leaves {
		p, err := tlog.ProveRecord(37, l.Index, read)
		if err != nil {
			t.Fatal(err)
		}
		if err := CheckInclusion(p, 37, root, l); err != nil {
			t.Fatalf("leaf %d: %v", l.Index, err)
		}
		other := l
		other.Seq++
		if err := CheckInclusion(p, 37, root, other); !errors.Is(err, ErrProof) {
			t.Fatalf("changed leaf %d: %v", l.Index, err)
		}
		if len(p) > 0 {
			p[0][0] ^= 1
			if err := CheckInclusion(p, 37, root, l); !errors.Is(err, ErrProof) {
				t.Fatalf("tampered proof of leaf %d: %v", l.Index, err)
			}
		}
	}
}

// FuzzParseHead: whatever a note holds, ParseHead accepts only a tree
// head in its canonical spelling, which HeadText writes back to the very
// text that was signed.
func FuzzParseHead(f *testing.F) {
	skey, _, err := note.GenerateKey(nil, "fuzz")
	if err != nil {
		f.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	text, _ := HeadText("acme", 12, hexOf("r"), time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	f.Add(text)
	f.Add(strings.Replace(text, "12", "012", 1))
	f.Add(HeadOrigin + "\n\n0\n" + hexOf("") + "\n2026-01-02T03:04:05Z\n")
	f.Fuzz(func(t *testing.T, text string) {
		msg, err := note.Sign(&note.Note{Text: text}, signer)
		if err != nil {
			return // not a note text
		}
		h, err := ParseHead(msg)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		again, err := HeadText(h.TenantID, h.Size, h.Root, h.At)
		if err != nil || again != text {
			t.Fatalf("accepted %q, which reads back as %q (%v)", text, again, err)
		}
	})
}
