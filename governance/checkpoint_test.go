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
