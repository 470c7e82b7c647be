package export_test

import (
	"crypto/ed25519"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/export"
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
	clock := governance.NewFakeClock(T0)
	r, err := governance.NewRunner(st, governance.WithKinds(testKinds), governance.WithClock(clock), governance.WithCheckpoints(signer, 0))
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: policy(t, "acme", 50, T0)})
	if err != nil {
		t.Fatal(err)
	}
	run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search"})
	_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"})
	var viol *governance.Violation
	if !errors.As(err, &viol) {
		t.Fatal(err)
	}
	key := testKey("checkpoint test")
	exp, err := export.New(st, export.WithClock(clock), export.WithSigner(key))
	if err != nil {
		t.Fatal(err)
	}
	a, err := exp.Export(ctx, export.TypeEvidence, export.Request{TenantID: "acme", IncidentID: viol.IncidentID, ExportedBy: "t"}, export.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(a.Data), governance.CheckpointOrigin) {
		t.Fatal("bundle carries no checkpoint")
	}
	verified, err := export.Verify(a.Data, key.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := export.VerifyBundleCheckpoint(verified, verifiers)
	if err != nil || cp.Size != 4 || cp.RunID != run.ID() {
		t.Fatalf("VerifyBundleCheckpoint: %+v %v", cp, err)
	}
	// Another key's verifiers: refused.
	_, otherV, _ := governance.GenerateCheckpointKey("stopline-export-test")
	ov, _ := note.NewVerifier(otherV)
	if _, err := export.VerifyBundleCheckpoint(verified, note.VerifierList(ov)); !errors.Is(err, governance.ErrCheckpoint) {
		t.Errorf("checkpoint with the wrong verifier: %v", err)
	}
	// A run without checkpoints: ErrNoCheckpoint.
	f := newFixture(t, nil)
	a2, err := f.exp.Export(ctx, export.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "t"}, export.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	v2, err := export.Verify(a2.Data, f.pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := export.VerifyBundleCheckpoint(v2, verifiers); !errors.Is(err, export.ErrNoCheckpoint) {
		t.Errorf("bundle without checkpoint: %v", err)
	}
}
