package governance_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

// countingStore counts the records its reads return.
type countingStore struct {
	*memstore.Store
	records atomic.Int64
}

func (s *countingStore) ReadRecords(ctx context.Context, tenantID, runID string, r governance.RecordRange) ([]governance.StoredRecord, error) {
	out, err := s.Store.ReadRecords(ctx, tenantID, runID, r)
	s.records.Add(int64(len(out)))
	return out, err
}

func (s *countingStore) Records(ctx context.Context, tenantID, runID string) ([]trace.Record, error) {
	out, err := s.Store.Records(ctx, tenantID, runID)
	s.records.Add(int64(len(out)))
	return out, err
}

// longRecordedRun records a completed run of n steps, one a second from
// t0+1s, checkpointed every `every` steps when signer is not nil.
func longRecordedRun(t *testing.T, st governance.Store, n int, signer note.Signer, every int) string {
	t.Helper()
	var opts []governance.Option
	if signer != nil {
		opts = append(opts, governance.WithCheckpoints(signer, every))
	}
	r, clock := newRunner(t, st, opts...)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, `{"tenant_id":"acme","thresholds":{"max_steps":100000},"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}]}`)})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		clock.Advance(time.Second)
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 1}); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(time.Second)
	if _, err := run.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	return run.ID()
}

// TestExplainReadsUpToTheInstant: Explain reads the records up to the
// instant (and a page more at most), says it recomputed them from the
// genesis hash, and cites the whole chain's head only when it read it.
func TestExplainReadsUpToTheInstant(t *testing.T) {
	st := &countingStore{Store: memstore.New()}
	id := longRecordedRun(t, st, 600, nil, 0)
	st.records.Store(0)
	ex, err := governance.Explain(ctx, st, "acme", id, t0.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if ex.LastStep == nil || ex.LastStep.Index != 9 || ex.Record.Seq != 10 {
		t.Fatalf("explained step %+v, record %+v", ex.LastStep, ex.Record)
	}
	v := ex.Verification
	if v.Method != governance.VerifiedChain || v.WholeChain || !ex.Record.Verified {
		t.Errorf("verification %+v", v)
	}
	if n := st.records.Load(); n > 300 || v.Records != 12 {
		t.Errorf("read %d records of 602 to explain 11 (verified %d)", n, v.Records)
	}
	run, _ := st.Run(ctx, "acme", id)
	if ex.Record.ChainLength != run.ChainLength || ex.Record.HeadHash != run.HeadHash {
		t.Errorf("cites chain %d %s, the run row states %d %s", ex.Record.ChainLength, ex.Record.HeadHash, run.ChainLength, run.HeadHash)
	}
	end, err := governance.Explain(ctx, st, "acme", id, t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if v := end.Verification; !v.WholeChain || v.Records != 602 || end.State != governance.StateStopped {
		t.Errorf("at the end: %+v, state %s", v, end.State)
	}
}

// TestExplainWithCheckpoints: with the checkpoint keys, Explain checks the
// records it explains against a signed checkpoint that covers them, and a
// chain rewritten with every hash recomputed, which the chain alone does
// not reveal, is refused against a note kept outside the database.
func TestExplainWithCheckpoints(t *testing.T) {
	signer, verifiers := checkpointKeys(t, "explain")
	st := memstore.New()
	id := longRecordedRun(t, st, 40, signer, 10)
	ex, err := governance.Explain(ctx, st, "acme", id, t0.Add(15*time.Second), governance.ExplainCheckpoints(verifiers))
	if err != nil {
		t.Fatal(err)
	}
	v := ex.Verification
	if v.Method != governance.VerifiedCheckpoint || v.Checkpoint == nil || v.Checkpoint.Size != 21 || v.Note != "" {
		t.Fatalf("verification %+v (checkpoint %+v)", v, v.Checkpoint)
	}
	// Without keys, or with keys that signed nothing here: the chain.
	_, other := checkpointKeys(t, "other")
	for _, opts := range [][]governance.ExplainOption{nil, {governance.ExplainCheckpoints(other)}} {
		ex, err := governance.Explain(ctx, st, "acme", id, t0.Add(15*time.Second), opts...)
		if err != nil || ex.Verification.Method != governance.VerifiedChain {
			t.Errorf("%d options: %+v, %v", len(opts), ex.Verification, err)
		}
	}
	cps, _ := st.Checkpoints(ctx, "acme", id)
	kept := []byte(cps[len(cps)-1].Note)

	// The whole chain rewritten from step 3 on, hashes, row and
	// checkpoints (none stored) recomputed: it verifies as a chain.
	forged := forge(t, st, id, func(recs []trace.Record) { recs[4].Tokens, recs[4].TotalTokens = 1000, 1000 })
	if _, err := governance.Explain(ctx, forged, "acme", id, t0.Add(15*time.Second)); err != nil {
		t.Fatalf("a recomputed chain verifies as a chain: %v", err)
	}
	_, err = governance.Explain(ctx, forged, "acme", id, t0.Add(15*time.Second), governance.ExplainCheckpoints(verifiers, kept))
	if !errors.Is(err, governance.ErrCheckpointMismatch) {
		t.Errorf("against the note kept outside: got %v, want ErrCheckpointMismatch", err)
	}
	// A note of another run proves nothing about this one.
	id2 := longRecordedRun(t, st, 2, signer, 1)
	_, err = governance.Explain(ctx, st, "acme", id2, t0.Add(time.Hour), governance.ExplainCheckpoints(verifiers, kept))
	if !errors.Is(err, governance.ErrCheckpointRun) {
		t.Errorf("a note of another run: got %v, want ErrCheckpointRun", err)
	}
	// A note that does not verify with the keys given is refused.
	if _, err := governance.Explain(ctx, st, "acme", id, t0.Add(time.Hour), governance.ExplainCheckpoints(other, kept)); !errors.Is(err, governance.ErrCheckpoint) {
		t.Errorf("a note the keys did not sign: got %v, want ErrCheckpoint", err)
	}
}
