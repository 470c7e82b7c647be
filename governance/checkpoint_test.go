package governance_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

func checkpointKeys(t *testing.T, name string) (note.Signer, note.Verifiers) {
	t.Helper()
	skey, vkey, err := governance.GenerateCheckpointKey(name)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return signer, note.VerifierList(v)
}

// rewritten is a store whose records an attacker replaced with a chain
// they recomputed from scratch: it verifies as a chain.
type rewritten struct {
	governance.Store
	records func([]trace.Record) []trace.Record
}

func (s rewritten) Records(ctx context.Context, tenant, run string) ([]trace.Record, error) {
	recs, err := s.Store.Records(ctx, tenant, run)
	if err != nil {
		return nil, err
	}
	return s.records(recs), nil
}

func recompute(recs []trace.Record) []trace.Record {
	prev := trace.GenesisHash
	for i := range recs {
		trace.Seal(&recs[i], prev, nil)
		prev = recs[i].Hash
	}
	return recs
}

func TestCheckpointsMadeAndVerified(t *testing.T) {
	st := memstore.New()
	signer, verifiers := checkpointKeys(t, "stopline-test")
	r, clock := newRunner(t, st, governance.WithCheckpoints(signer, 2))
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	for i := 0; i < 5; i++ {
		clock.Advance(time.Second)
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage, Tokens: 3}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := run.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	cps, err := st.Checkpoints(ctx, "acme", run.ID())
	if err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, c := range cps {
		sizes = append(sizes, c.Size)
	}
	if len(sizes) != 3 || sizes[0] != 3 || sizes[1] != 5 || sizes[2] != 7 {
		t.Fatalf("checkpoint sizes %v, want [3 5 7] (every 2 steps, and at the end)", sizes)
	}
	if !strings.HasPrefix(cps[2].Note, governance.CheckpointOrigin+"\nacme\n"+run.ID()+"\n7\n") || cps[2].KeyName != "stopline-test" {
		t.Errorf("checkpoint note:\n%s", cps[2].Note)
	}
	if n, err := governance.VerifyRunCheckpoints(ctx, st, "acme", run.ID(), verifiers); err != nil || n != 3 {
		t.Fatalf("VerifyRunCheckpoints: %d %v", n, err)
	}

	// An attacker who can write the database changes step 1 and
	// recomputes the whole chain: the chain verifies, the checkpoint does not.
	forged := rewritten{Store: st, records: func(recs []trace.Record) []trace.Record {
		recs[2].Tokens = 0
		return recompute(recs)
	}}
	// This forger left the run row alone, so VerifyRun sees its head
	// disagree with the rewritten chain; one who also rewrote the run row
	// would pass it: the chain alone is not the defence.
	if _, err := governance.VerifyRun(ctx, forged, "acme", run.ID()); !errors.Is(err, governance.ErrIntegrity) {
		t.Errorf("VerifyRun of a chain rewritten under an untouched run row: got %v, want ErrIntegrity", err)
	}
	recs, _ := forged.Records(ctx, "acme", run.ID())
	if _, err := trace.Verify(recs); err != nil {
		t.Fatalf("the recomputed chain should verify as a chain: %v", err)
	}
	_, err = governance.VerifyCheckpoint(ctx, forged, []byte(cps[2].Note), verifiers)
	var mm *governance.CheckpointMismatchError
	if !errors.As(err, &mm) || !errors.Is(err, governance.ErrCheckpointMismatch) || mm.Got == "" {
		t.Errorf("whole-chain rewrite: got %v, want a CheckpointMismatchError", err)
	}
	// Records appended after the checkpoint are fine (the log only grows):
	// the first checkpoint (size 3) still verifies against the full chain.
	if _, err := governance.VerifyCheckpoint(ctx, st, []byte(cps[0].Note), verifiers); err != nil {
		t.Errorf("older checkpoint against a longer chain: %v", err)
	}
	// Truncating the tail below a checkpoint is caught.
	truncated := rewritten{Store: st, records: func(recs []trace.Record) []trace.Record { return recs[:4] }}
	if _, err := governance.VerifyCheckpoint(ctx, truncated, []byte(cps[1].Note), verifiers); !errors.As(err, &mm) || mm.Stored != 4 {
		t.Errorf("truncated tail: got %v", err)
	}
}

// TestCheckpointProbes feeds the checkpoint verifier the probes
// transparency logs use: sizes ±1, a wrong head, garbage before and after,
// a flipped bit in each line, another key. Each fails, with its own error.
func TestCheckpointProbes(t *testing.T) {
	st := memstore.New()
	signer, verifiers := checkpointKeys(t, "stopline-test")
	otherSigner, _ := checkpointKeys(t, "stopline-test")
	r, _ := newRunner(t, st, governance.WithCheckpoints(signer, 0))
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	for i := 0; i < 3; i++ {
		run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	}
	rec, _ := run.Finish(ctx)
	cps, _ := st.Checkpoints(ctx, "acme", run.ID())
	good := cps[0].Note
	sign := func(s note.Signer, size int, head string) string {
		text, err := governance.CheckpointText("acme", run.ID(), size, head, t0)
		if err != nil {
			t.Fatal(err)
		}
		msg, err := note.Sign(&note.Note{Text: text}, s)
		if err != nil {
			t.Fatal(err)
		}
		return string(msg)
	}
	recs, _ := st.Records(ctx, "acme", run.ID())
	tests := []struct {
		name    string
		note    string
		wantErr error
		problem string
	}{
		{"size - 1", sign(signer, rec.ChainLength-1, rec.HeadHash), governance.ErrCheckpointMismatch, "were changed"},
		{"size + 1", sign(signer, rec.ChainLength+1, rec.HeadHash), governance.ErrCheckpointMismatch, "are missing"},
		{"wrong head", sign(signer, rec.ChainLength, recs[1].Hash), governance.ErrCheckpointMismatch, "were changed"},
		{"signed by another key with the same name", sign(otherSigner, rec.ChainLength, rec.HeadHash), governance.ErrCheckpoint, "no verifiable signatures"},
		{"garbage before", "x" + good, governance.ErrCheckpoint, ""},
		{"garbage after", good + "x\n", governance.ErrCheckpoint, ""},
		{"no signature", strings.SplitN(good, "\n\n", 2)[0] + "\n", governance.ErrCheckpoint, ""},
	}
	lines := strings.SplitAfter(good, "\n")
	for i := 0; i < 6; i++ { // flip one bit in each text line
		l := []byte(lines[i])
		l[0] ^= 0x01
		flipped := strings.Join(append(append(append([]string{}, lines[:i]...), string(l)), lines[i+1:]...), "")
		tests = append(tests, struct {
			name    string
			note    string
			wantErr error
			problem string
		}{"bit flipped in line " + string(rune('1'+i)), flipped, governance.ErrCheckpoint, ""})
	}
	seen := map[string]string{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := governance.VerifyCheckpoint(ctx, st, []byte(tc.note), verifiers)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.problem) {
				t.Errorf("error %q does not say %q", err, tc.problem)
			}
			if tc.wantErr == governance.ErrCheckpointMismatch {
				if prev, dup := seen[err.Error()]; dup {
					t.Errorf("same error as %q: %v", prev, err)
				}
				seen[err.Error()] = tc.name
			}
		})
	}
	if _, err := governance.VerifyCheckpoint(ctx, st, []byte(good), verifiers); err != nil {
		t.Errorf("the genuine checkpoint: %v", err)
	}
}

// TestCheckpointAnyIDs: tenant and run ids with spaces, slashes and other
// scripts are checkpointed and verified like any other.
func TestCheckpointAnyIDs(t *testing.T) {
	st := memstore.New()
	signer, verifiers := checkpointKeys(t, "stopline-test")
	r, _ := newRunner(t, st, governance.WithCheckpoints(signer, 0))
	snap := parse(t, strings.Replace(allowAllDoc, `"acme"`, `"Acme Corp / Zürich"`, 1))
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap, RunID: "run 1/東京"})
	if err != nil {
		t.Fatal(err)
	}
	run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	if _, err := run.Finish(ctx); err != nil {
		t.Fatalf("finish with checkpoint: %v", err)
	}
	n, err := governance.VerifyRunCheckpoints(ctx, st, "Acme Corp / Zürich", "run 1/東京", verifiers)
	if err != nil || n != 1 {
		t.Fatalf("VerifyRunCheckpoints: %d %v", n, err)
	}
	cps, _ := st.Checkpoints(ctx, "Acme Corp / Zürich", "run 1/東京")
	cp, err := governance.OpenCheckpoint([]byte(cps[0].Note), verifiers)
	if err != nil || cp.TenantID != "Acme Corp / Zürich" || cp.RunID != "run 1/東京" {
		t.Errorf("opened %+v, %v", cp, err)
	}
}

// forgedCheckpoints is a store whose checkpoint rows of one run a writer
// of the database replaced (rows), and, optionally, whose run rows are gone
// while their records stay (noRunRow).
type forgedCheckpoints struct {
	governance.Store
	runID    string
	rows     []governance.Checkpoint
	noRunRow bool
}

func (s forgedCheckpoints) Checkpoints(ctx context.Context, tenant, run string) ([]governance.Checkpoint, error) {
	if run == s.runID && s.rows != nil {
		return s.rows, nil
	}
	return s.Store.Checkpoints(ctx, tenant, run)
}

func (s forgedCheckpoints) Run(ctx context.Context, tenant, run string) (governance.RunRecord, error) {
	if run == s.runID && s.noRunRow {
		return governance.RunRecord{}, governance.ErrNotFound
	}
	return s.Store.Run(ctx, tenant, run)
}

// TestCheckpointOfAnotherRun: a checkpoint note proves something only
// about the run it names. A note of run B stored among run A's
// checkpoints, presented for run A, or a note of the same run id under
// another tenant, is refused with ErrCheckpointRun, naming both runs; so
// is a stored row whose size, head, key or time is not its note's.
func TestCheckpointOfAnotherRun(t *testing.T) {
	st := memstore.New()
	signer, verifiers := checkpointKeys(t, "stopline-test")
	r, _ := newRunner(t, st, governance.WithCheckpoints(signer, 1))
	start := func(doc, id string, steps int) string {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, doc), RunID: id})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < steps; i++ {
			if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := run.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		return run.ID()
	}
	a := start(allowAllDoc, "RUN-a", 2)
	b := start(allowAllDoc, "RUN-b", 3)
	otherTenant := start(strings.Replace(allowAllDoc, `"acme"`, `"globex"`, 1), "RUN-a", 2)
	aRows, _ := st.Checkpoints(ctx, "acme", a)
	bRows, _ := st.Checkpoints(ctx, "acme", b)
	gRows, _ := st.Checkpoints(ctx, "globex", otherTenant)
	if n, err := governance.VerifyRunCheckpoints(ctx, st, "acme", a, verifiers); err != nil || n != len(aRows) {
		t.Fatalf("genuine checkpoints: %d %v", n, err)
	}

	wantRunErr := func(t *testing.T, err error, noteTenant, noteRun string) {
		t.Helper()
		var re *governance.CheckpointRunError
		if !errors.Is(err, governance.ErrCheckpointRun) || !errors.Is(err, governance.ErrCheckpointMismatch) || !errors.As(err, &re) {
			t.Fatalf("got %v, want a CheckpointRunError", err)
		}
		if re.TenantID != "acme" || re.RunID != a || re.NoteTenantID != noteTenant || re.NoteRunID != noteRun ||
			!strings.Contains(err.Error(), a) || !strings.Contains(err.Error(), noteTenant) {
			t.Errorf("error does not name both runs: %+v (%v)", re, err)
		}
	}
	// Run B's notes copied into run A's checkpoints, as rows of run A.
	var copied []governance.Checkpoint
	for _, c := range bRows {
		c.RunID = a
		copied = append(copied, c)
	}
	_, err := governance.VerifyRunCheckpoints(ctx, forgedCheckpoints{Store: st, runID: a, rows: copied}, "acme", a, verifiers)
	wantRunErr(t, err, "acme", b)
	// The same run id of another tenant.
	var foreign []governance.Checkpoint
	for _, c := range gRows {
		c.TenantID = "acme"
		foreign = append(foreign, c)
	}
	_, err = governance.VerifyRunCheckpoints(ctx, forgedCheckpoints{Store: st, runID: a, rows: foreign}, "acme", a, verifiers)
	wantRunErr(t, err, "globex", otherTenant)
	// A note of B presented for A.
	_, err = governance.VerifyRunCheckpoint(ctx, st, "acme", a, []byte(bRows[0].Note), verifiers)
	wantRunErr(t, err, "acme", b)
	// It is a good note of B, for B.
	if _, err := governance.VerifyRunCheckpoint(ctx, st, "acme", b, []byte(bRows[0].Note), verifiers); err != nil {
		t.Errorf("B's note for B: %v", err)
	}

	// A row whose columns are not its note's.
	last := aRows[len(aRows)-1]
	for name, edit := range map[string]func(c *governance.Checkpoint){
		"size":     func(c *governance.Checkpoint) { c.Size = 1 },
		"head":     func(c *governance.Checkpoint) { c.Head = aRows[0].Head },
		"key name": func(c *governance.Checkpoint) { c.KeyName = "someone-else" },
		"time":     func(c *governance.Checkpoint) { c.At = c.At.Add(time.Hour) },
	} {
		t.Run("row "+name, func(t *testing.T) {
			row := last
			edit(&row)
			_, err := governance.VerifyRunCheckpoints(ctx, forgedCheckpoints{Store: st, runID: a, rows: []governance.Checkpoint{row}}, "acme", a, verifiers)
			var re *governance.CheckpointRowError
			if !errors.As(err, &re) || !errors.Is(err, governance.ErrCheckpointMismatch) || re.RunID != a || !strings.Contains(err.Error(), a) {
				t.Errorf("got %v, want a CheckpointRowError naming run %s", err, a)
			}
		})
	}

	// A kept note of a run whose row was deleted, its records left.
	gone := forgedCheckpoints{Store: st, runID: a, noRunRow: true}
	if _, err := governance.VerifyCheckpoint(ctx, gone, []byte(last.Note), verifiers); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("note of a run without its row: got %v, want ErrNotFound", err)
	}
	// Run A's records replaced by run B's whole chain: A's kept note
	// refuses them, naming both.
	swapped := rewritten{Store: st, records: func(recs []trace.Record) []trace.Record {
		other, _ := st.Records(ctx, "acme", b)
		return other
	}}
	_, err = governance.VerifyCheckpoint(ctx, swapped, []byte(aRows[0].Note), verifiers)
	var re *governance.CheckpointRunError
	if !errors.As(err, &re) || re.RunID != b || re.NoteRunID != a {
		t.Errorf("run A's note over run B's records: got %v", err)
	}
}

// TestStoredCheckpointNeedsTheKey: StoredCheckpoint returns a stored
// note only if it verifies with the very key given and states the size
// and head asked for; a note stored under the key's name but signed by
// another key with that name is not returned.
func TestStoredCheckpointNeedsTheKey(t *testing.T) {
	st := memstore.New()
	skey, vkey, err := governance.GenerateCheckpointKey("ops")
	if err != nil {
		t.Fatal(err)
	}
	derived, err := governance.CheckpointVerifierKey(skey)
	if err != nil || derived != vkey {
		t.Fatalf("CheckpointVerifierKey: %q %v, want %q", derived, err, vkey)
	}
	if _, err := governance.CheckpointVerifierKey(vkey); !errors.Is(err, governance.ErrCheckpoint) {
		t.Errorf("CheckpointVerifierKey of a verifier key: %v", err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)
	impostor, _ := checkpointKeys(t, "ops")
	r, _ := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	rec, _ := st.Run(ctx, "acme", run.ID())

	// The impostor's note is stored first, under the name "ops".
	if _, err := governance.SignCheckpoint(ctx, st, impostor, "acme", run.ID(), t0); err != nil {
		t.Fatal(err)
	}
	if _, err := governance.SignCheckpoint(ctx, st, signer, "acme", run.ID(), t0.Add(time.Second)); !errors.Is(err, governance.ErrChainConflict) {
		t.Fatalf("second note for the same size and key name: %v, want ErrChainConflict", err)
	}
	if _, err := governance.StoredCheckpoint(ctx, st, verifier, "acme", run.ID(), rec.ChainLength, rec.HeadHash); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("the impostor's stored note was returned for the genuine key: %v", err)
	}
	// A checkpoint made but not stored verifies with the key.
	cp, err := governance.NewCheckpoint(signer, "acme", run.ID(), rec.ChainLength, rec.HeadHash, t0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := governance.VerifyRunCheckpoint(ctx, st, "acme", run.ID(), []byte(cp.Note), note.VerifierList(verifier)); err != nil {
		t.Errorf("NewCheckpoint's note: %v", err)
	}

	// The genuine key's own stored note is returned, for its size and head only.
	run2, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	stored, err := governance.SignCheckpoint(ctx, st, signer, "acme", run2.ID(), t0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := governance.StoredCheckpoint(ctx, st, verifier, "acme", run2.ID(), stored.Size, stored.Head)
	if err != nil || got.Note != stored.Note {
		t.Errorf("StoredCheckpoint: %+v %v", got, err)
	}
	if _, err := governance.StoredCheckpoint(ctx, st, verifier, "acme", run2.ID(), stored.Size, rec.HeadHash); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("StoredCheckpoint for another head: %v", err)
	}
}

// TestParseCheckpoint: the form of a note is checked without a key; the
// signature is not.
func TestParseCheckpoint(t *testing.T) {
	signer, _ := checkpointKeys(t, "ops")
	cp, err := governance.NewCheckpoint(signer, "acme", "RUN-1", 3, strings.Repeat("ab", 32), t0)
	if err != nil {
		t.Fatal(err)
	}
	got, err := governance.ParseCheckpoint([]byte(cp.Note))
	if err != nil || got.TenantID != "acme" || got.RunID != "RUN-1" || got.Size != 3 || got.KeyName != "ops" || !got.At.Equal(t0) {
		t.Fatalf("ParseCheckpoint: %+v %v", got, err)
	}
	text, sig, _ := strings.Cut(cp.Note, "\n\n")
	for name, bad := range map[string]string{
		"no signature":            text + "\n",
		"garbage after":           cp.Note + "x",
		"short signature":         text + "\n\n— ops AAAAAAAA\n",
		"text not canonical":      strings.Replace(cp.Note, "\n3\n", "\n03\n", 1),
		"not a checkpoint":        "hello\n\n" + sig,
		"control character":       strings.Replace(cp.Note, "acme", "ac\x01me", 1),
		"signature not in base64": text + "\n\n— ops !!!!\n",
	} {
		if _, err := governance.ParseCheckpoint([]byte(bad)); !errors.Is(err, governance.ErrCheckpoint) {
			t.Errorf("%s: got %v, want ErrCheckpoint", name, err)
		}
	}
}

// TestSignCheckpointOnlyWhatVerifies: a checkpoint vouches for a chain;
// SignCheckpoint refuses to sign a run that does not verify.
func TestSignCheckpointOnlyWhatVerifies(t *testing.T) {
	st := memstore.New()
	signer, _ := checkpointKeys(t, "ops")
	r, _ := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	run.Step(ctx, governance.StepInput{Type: prevention.StepMessage, Tokens: 3})
	forged := rewritten{Store: st, records: func(recs []trace.Record) []trace.Record {
		recs[1].Tokens = 0
		return recompute(recs)
	}}
	if cp, err := governance.SignCheckpoint(ctx, forged, signer, "acme", run.ID(), t0); !errors.Is(err, governance.ErrIntegrity) || cp.Note != "" {
		t.Errorf("signing a run that does not verify: %+v %v", cp, err)
	}
	if cps, _ := st.Checkpoints(ctx, "acme", run.ID()); len(cps) != 0 {
		t.Errorf("a checkpoint was stored: %+v", cps)
	}
	if _, err := governance.SignCheckpoint(ctx, st, signer, "acme", run.ID(), t0); err != nil {
		t.Errorf("signing a run that verifies: %v", err)
	}
}
