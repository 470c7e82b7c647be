package export_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// A run is stopped by a policy; its evidence bundle is exported as
// signed JSON and verified offline with the issuer's public key.
func Example() {
	ctx := context.Background()
	store := memstore.New()
	clock := governance.NewFakeClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	runner, _ := governance.NewRunner(store, governance.WithClock(clock))
	snap, _ := snapshot.Parse("policy.json", []byte(`{
	  "tenant_id": "acme",
	  "thresholds": {"max_steps": 2},
	  "policies": [{"id": "step-limit", "kind": "budget", "params": {"metric": "steps", "threshold": "max_steps"}}]
	}`), clock.Now(), runner.Kinds())

	run, _ := runner.Start(ctx, governance.StartOptions{Snapshot: snap})
	var err error
	for i := 0; i < 3; i++ { // steps 0 and 1 pass, step 2 is blocked
		clock.Advance(time.Second)
		_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 10})
	}
	var v *governance.Violation
	if !errors.As(err, &v) {
		fmt.Println("not stopped:", err)
		return
	}

	// The issuer's key; a real one comes from a key file
	// (bundle.ReadPrivateKeyFile, written by stopline keygen).
	seed := sha256.Sum256([]byte("example"))
	key := ed25519.NewKeyFromSeed(seed[:])
	exp, _ := export.New(store, export.WithSigner(key), export.WithClock(clock))
	a, err := exp.Export(ctx, bundle.TypeEvidence, export.Request{TenantID: "acme", IncidentID: v.IncidentID, ExportedBy: "alice"}, export.FormatJSON)
	if err != nil {
		fmt.Println(err)
		return
	}
	var file bytes.Buffer // os.Create(a.Filename)
	a.WriteTo(&file)
	fmt.Println("exported:", a.Record.BundleType, a.Record.Format, "signed by", a.Record.KeyID)

	// Anywhere, without the database:
	verified, err := bundle.Verify(file.Bytes(), key.Public().(ed25519.PublicKey))
	if err != nil {
		fmt.Println(err)
		return
	}
	b := verified.Bundle.(*bundle.Evidence)
	inf, _ := b.Inflection()
	fmt.Println("verified:", b.BundleType, "signed by", verified.KeyID)
	fmt.Println("steps:", len(b.Steps), "chain records:", len(b.Chain))
	fmt.Printf("stopped at step %d by %s: %s observed %g, limit %g\n",
		inf.StepIndex, inf.Decision.PolicyID, inf.Decision.Threshold, *inf.Decision.Observed, *inf.Decision.Limit)

	// One byte added, and verification says what failed.
	_, err = bundle.Verify(append(file.Bytes(), '!'), key.Public().(ed25519.PublicKey))
	fmt.Println(errors.Is(err, bundle.ErrTrailingData))
	// Output:
	// exported: evidence json signed by fff7b47d68d6151d
	// verified: evidence signed by fff7b47d68d6151d
	// steps: 3 chain records: 5
	// stopped at step 2 by step-limit: max_steps observed 3, limit 2
	// true
}
