package export_test

import (
	"context"
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
)

// TestBundleCarriesCheckpoint: a run made with signed checkpoints exports
// a bundle that carries the latest one, which verifies offline against
// the bundle's chain with the checkpoint key, and not with another key.
func TestBundleCarriesCheckpoint(t *testing.T) {
	skey, vkey, err := governance.GenerateCheckpointKey("stopline-export-test")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	verifiers := note.VerifierList(v)

	st := memstore.New()
	clock := governance.NewFakeClock(fixture.T0)
	r, err := governance.NewRunner(st, governance.WithKinds(fixture.Kinds), governance.WithClock(clock), governance.WithCheckpoints(signer, 0))
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: fixture.Policy(t, "acme", 50, fixture.T0)})
	if err != nil {
		t.Fatal(err)
	}
	run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search"})
	_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"})
	var viol *governance.Violation
	if !errors.As(err, &viol) {
		t.Fatal(err)
	}
	key := fixture.Key("checkpoint test")
	exp, err := export.New(st, export.WithClock(clock), export.WithSigner(key))
	if err != nil {
		t.Fatal(err)
	}
	a, err := exp.Export(ctx, bundle.TypeEvidence, export.Request{TenantID: "acme", IncidentID: viol.IncidentID, ExportedBy: "t"}, export.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(a.Sealed.Payload), governance.CheckpointOrigin) {
		t.Fatal("bundle carries no checkpoint")
	}
	verified, err := bundle.Verify(dataOf(t, a), key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := bundle.VerifyCheckpoint(verified, verifiers)
	if err != nil || cp.Size != 4 || cp.RunID != run.ID() {
		t.Fatalf("VerifyBundleCheckpoint: %+v %v", cp, err)
	}
	// Another key's verifiers: refused.
	_, otherV, _ := governance.GenerateCheckpointKey("stopline-export-test")
	ov, _ := note.NewVerifier(otherV)
	if _, err := bundle.VerifyCheckpoint(verified, note.VerifierList(ov)); !errors.Is(err, governance.ErrCheckpoint) {
		t.Errorf("checkpoint with the wrong verifier: %v", err)
	}
	// A run without checkpoints: ErrNoCheckpoint.
	f := fixture.New(t, nil)
	a2, err := f.Exp.Export(ctx, bundle.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "t"}, export.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := bundle.Verify(dataOf(t, a2), f.Pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.VerifyCheckpoint(v2, verifiers); !errors.Is(err, bundle.ErrNoCheckpoint) {
		t.Errorf("bundle without checkpoint: %v", err)
	}
}

// checkpointRows is a store whose checkpoints of one run are rows.
type checkpointRows struct {
	governance.Store
	runID string
	rows  []governance.Checkpoint
}

func (s checkpointRows) Checkpoints(c context.Context, tenant, run string) ([]governance.Checkpoint, error) {
	if run == s.runID {
		return s.rows, nil
	}
	return s.Store.Checkpoints(c, tenant, run)
}

// TestExportChecksTheCheckpointItCarries: the exporter does not hand out
// a bundle carrying a stored checkpoint that is not of the run's chain
// (another run's note written into the database); and a checkpoint
// signed after the run's records were read (it covers records the bundle
// does not hold) is not the one carried.
func TestExportChecksTheCheckpointItCarries(t *testing.T) {
	skey, _, _ := governance.GenerateCheckpointKey("stopline-export-test")
	cpSigner, _ := note.NewSigner(skey)
	st := memstore.New()
	clock := governance.NewFakeClock(fixture.T0)
	r, err := governance.NewRunner(st, governance.WithKinds(fixture.Kinds), governance.WithClock(clock), governance.WithCheckpoints(cpSigner, 1))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 2; i++ {
		run, _ := r.Start(ctx, governance.StartOptions{Snapshot: fixture.Policy(t, "acme", 50, fixture.T0)})
		run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search"})
		if _, err := run.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, run.ID())
	}
	a, b := ids[0], ids[1]
	aRows, _ := st.Checkpoints(ctx, "acme", a)
	bRows, _ := st.Checkpoints(ctx, "acme", b)
	export1 := func(s governance.Store) (*export.Artifact, error) {
		exp, err := export.New(s, export.WithClock(clock))
		if err != nil {
			t.Fatal(err)
		}
		return exp.Export(ctx, bundle.TypeEvidence, export.Request{TenantID: "acme", RunID: a, ExportedBy: "t"}, export.FormatJSON)
	}
	var foreign []governance.Checkpoint
	for _, c := range bRows {
		c.RunID = a
		foreign = append(foreign, c)
	}
	if _, err := export1(checkpointRows{Store: st, runID: a, rows: foreign}); !errors.Is(err, export.ErrStoreIntegrity) ||
		!errors.Is(err, bundle.ErrCheckpoint) || !errors.Is(err, governance.ErrCheckpointRun) {
		t.Errorf("export carrying another run's checkpoint: got %v, want ErrStoreIntegrity", err)
	}
	recs, _ := st.Records(ctx, "acme", a)
	later, err := governance.NewCheckpoint(cpSigner, "acme", a, len(recs)+1, strings.Repeat("0", 64), fixture.T0)
	if err != nil {
		t.Fatal(err)
	}
	art, err := export1(checkpointRows{Store: st, runID: a, rows: append(append([]governance.Checkpoint{}, aRows...), later)})
	if err != nil {
		t.Fatalf("export with a checkpoint newer than its records: %v", err)
	}
	if got := art.Sealed.Bundle.(*bundle.Evidence).Checkpoint; got != aRows[len(aRows)-1].Note {
		t.Errorf("carried checkpoint:\n%v\nwant the latest that covers the records read:\n%s", got, aRows[len(aRows)-1].Note)
	}
}
