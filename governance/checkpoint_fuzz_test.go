package governance_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
)

// A fixed key, so that the seed corpus in testdata/fuzz/FuzzOpenCheckpoint
// holds notes that verify. It signs nothing outside these tests.
const (
	fuzzSignerKey   = "PRIVATE+KEY+stopline-fuzz+3bd94743+AT/j+QVP1vR98fOC+FMOoM7DWKdA2CmnciEiC11cko7u"
	fuzzVerifierKey = "stopline-fuzz+3bd94743+AVllgSSogiujCG+7KsHXh/OOLMneeBbv18GjadDZR/fo"
)

func fuzzKeys(t testing.TB) (note.Signer, note.Verifiers) {
	s, err := note.NewSigner(fuzzSignerKey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(fuzzVerifierKey)
	if err != nil {
		t.Fatal(err)
	}
	return s, note.VerifierList(v)
}

// TestCheckpointAdversarialProbes adds to TestCheckpointProbes the rest
// of the probes transparency logs use on a signed head: each line of the
// note removed, a line inserted, the signature line with a bit flipped,
// another origin, a key nobody trusts, a checkpoint of another run, and
// signed texts that are not in the one spelling a checkpoint has (sizes 0,
// -1, "+3" and "03", a head that is not hex, a time that is not UTC, an
// empty run). Every probe fails, each with its own message.
func TestCheckpointAdversarialProbes(t *testing.T) {
	st := memstore.New()
	signer, verifiers := fuzzKeys(t)
	stranger, _ := checkpointKeys(t, "someone-else")
	r, _ := newRunner(t, st, governance.WithCheckpoints(signer, 0))
	var ids []string
	for i := 0; i < 2; i++ {
		run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
		for j := 0; j < 2+i; j++ {
			run.Step(ctx, governance.StepInput{Type: prevention.StepMessage, Tokens: int64(j)})
		}
		if _, err := run.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, run.ID())
	}
	cps, _ := st.Checkpoints(ctx, "acme", ids[0])
	good := cps[0].Note
	other, _ := st.Checkpoints(ctx, "acme", ids[1])
	text, sig, _ := strings.Cut(good, "\n\n")
	lines := strings.SplitAfter(text+"\n", "\n")
	lines = lines[:len(lines)-1] // the six text lines, each with its newline
	signText := func(s note.Signer, text string) string {
		msg, err := note.Sign(&note.Note{Text: text}, s)
		if err != nil {
			t.Fatalf("signing %q: %v", text, err)
		}
		return string(msg)
	}
	withLine := func(i int, l string) string {
		ls := append([]string{}, lines...)
		ls[i] = l
		return strings.Join(ls, "")
	}
	// Flip a bit of the signature itself (not of its base64 spelling,
	// which would only make the note malformed).
	prefix, b64, _ := strings.Cut(strings.TrimSuffix(sig, "\n"), " ")
	name, b64, _ := strings.Cut(b64, " ")
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	raw[10] ^= 0x04
	flipped := []byte(prefix + " " + name + " " + base64.StdEncoding.EncodeToString(raw) + "\n")

	tests := []struct {
		name    string
		note    string
		wantErr error
	}{
		{"empty", "", governance.ErrCheckpoint},
		{"signature line with a bit flipped", text + "\n\n" + string(flipped), governance.ErrCheckpoint},
		{"signed by a key nobody trusts", signText(stranger, text+"\n"), governance.ErrCheckpoint},
		{"another origin", signText(signer, withLine(0, "other/log/v1\n")), governance.ErrCheckpoint},
		{"line inserted", signText(signer, text+"\nextra\n"), governance.ErrCheckpoint},
		{"size 0", signText(signer, withLine(3, "0\n")), governance.ErrCheckpoint},
		{"size -1", signText(signer, withLine(3, "-1\n")), governance.ErrCheckpoint},
		{"size +N", signText(signer, withLine(3, "+"+lines[3])), governance.ErrCheckpoint},
		{"size 0N", signText(signer, withLine(3, "0"+lines[3])), governance.ErrCheckpoint},
		{"head not hex", signText(signer, withLine(4, strings.Repeat("z", 64)+"\n")), governance.ErrCheckpoint},
		{"head upper case", signText(signer, withLine(4, strings.ToUpper(lines[4]))), governance.ErrCheckpoint},
		{"time not UTC", signText(signer, withLine(5, t0.In(time.FixedZone("X", 3600)).Format(time.RFC3339Nano)+"\n")), governance.ErrCheckpoint},
		{"time garbage", signText(signer, withLine(5, "yesterday\n")), governance.ErrCheckpoint},
		{"empty run", signText(signer, withLine(2, "\n")), governance.ErrCheckpoint},
		{"run with a space", signText(signer, withLine(2, "RUN 1\n")), governance.ErrCheckpoint},
		{"another run's head", signText(signer, withLine(4, other[0].Head+"\n")), governance.ErrCheckpointMismatch},
		{"unknown run", signText(signer, withLine(2, "RUN-nobody\n")), governance.ErrNotFound},
		{"another tenant", signText(signer, withLine(1, "globex\n")), governance.ErrNotFound},
	}
	for i := range lines {
		removed := append(append([]string{}, lines[:i]...), lines[i+1:]...)
		tests = append(tests, struct {
			name    string
			note    string
			wantErr error
		}{"line " + string(rune('1'+i)) + " removed", signText(signer, strings.Join(removed, "")), governance.ErrCheckpoint})
	}
	seen := map[string]string{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := governance.VerifyCheckpoint(ctx, st, []byte(tc.note), verifiers)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if prev, dup := seen[err.Error()]; dup {
				t.Errorf("same error as probe %q: %v", prev, err)
			}
			seen[err.Error()] = tc.name
		})
	}
	if _, err := governance.VerifyCheckpoint(ctx, st, []byte(good), verifiers); err != nil {
		t.Errorf("the genuine checkpoint: %v", err)
	}
}

// FuzzOpenCheckpoint feeds OpenCheckpoint and VerifyCheckpoint arbitrary
// notes. With sign set, data is taken as the text of a note and signed
// with the trusted key first, so that the fuzzer reaches the parsing of
// the signed text, not only the signature check. Nothing may panic;
// every failure matches ErrCheckpoint (or, when verifying, the store's
// and the mismatch errors); whatever opens is in canonical form, and
// ParseCheckpoint (no key) reads it the same.
func FuzzOpenCheckpoint(f *testing.F) {
	signer, verifiers := fuzzKeys(f)
	st := memstore.New()
	r, _ := newRunner(f, st, governance.WithCheckpoints(signer, 1))
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(f, allowAllDoc)})
	run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	run.Finish(ctx)
	cps, _ := st.Checkpoints(ctx, "acme", run.ID())
	for _, c := range cps {
		f.Add([]byte(c.Note), false)
		text, _, _ := strings.Cut(c.Note, "\n\n")
		f.Add([]byte(text+"\n"), true)
	}
	f.Add([]byte(governance.CheckpointOrigin+"\nacme\nRUN-1\n+1\n"+strings.Repeat("a", 64)+"\n2026-01-01T00:00:00Z\n"), true)
	f.Add([]byte("\n\n\n"), false)

	f.Fuzz(func(t *testing.T, data []byte, sign bool) {
		msg := data
		if sign {
			signed, err := note.Sign(&note.Note{Text: string(data)}, signer)
			if err != nil {
				return // not a text a note can hold
			}
			msg = signed
		}
		cp, err := governance.OpenCheckpoint(msg, verifiers)
		if err != nil {
			if !errors.Is(err, governance.ErrCheckpoint) {
				t.Fatalf("OpenCheckpoint error does not match ErrCheckpoint: %v", err)
			}
		} else {
			text, err := governance.CheckpointText(cp.TenantID, cp.RunID, cp.Size, cp.Head, cp.At)
			if err != nil || !strings.HasPrefix(string(msg), text+"\n") || cp.KeyName != "stopline-fuzz" {
				t.Fatalf("opened a checkpoint not in canonical form: %+v (%v)\n%q", cp, err, msg)
			}
		}
		// Without a key, the form alone: whatever opens parses to the same
		// statement; whatever parses is in canonical form.
		pc, perr := governance.ParseCheckpoint(msg)
		switch {
		case perr != nil && !errors.Is(perr, governance.ErrCheckpoint):
			t.Fatalf("ParseCheckpoint error does not match ErrCheckpoint: %v", perr)
		case err == nil && (perr != nil || pc.TenantID != cp.TenantID || pc.RunID != cp.RunID || pc.Size != cp.Size ||
			pc.Head != cp.Head || !pc.At.Equal(cp.At)):
			t.Fatalf("opened %+v but parsed %+v (%v)", cp, pc, perr)
		case perr == nil:
			if text, err := governance.CheckpointText(pc.TenantID, pc.RunID, pc.Size, pc.Head, pc.At); err != nil || !strings.HasPrefix(string(msg), text+"\n") {
				t.Fatalf("parsed a checkpoint not in canonical form: %+v (%v)", pc, err)
			}
		}
		_, err = governance.VerifyCheckpoint(ctx, st, msg, verifiers)
		if err != nil && !errors.Is(err, governance.ErrCheckpoint) && !errors.Is(err, governance.ErrCheckpointMismatch) &&
			!errors.Is(err, governance.ErrNotFound) {
			t.Fatalf("VerifyCheckpoint: unexpected error %v", err)
		}
	})
}
