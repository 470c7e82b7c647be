package tenantlog_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/tenantlog"
)

var ctx = context.Background()

// Sign a tenant's tree head, keep it outside the database, and verify the
// store against it later: a run deleted since is found.
func ExampleVerify() {
	skey, vkey, err := governance.GenerateCheckpointKey("acme-log")
	if err != nil {
		log.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	verifier, _ := note.NewVerifier(vkey)

	st := memstore.New()
	r, err := governance.NewRunner(st)
	if err != nil {
		log.Fatal(err)
	}
	snap, err := snapshot.Parse("p.json", []byte(`{"tenant_id":"acme","thresholds":{"max_steps":10},
		"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}]}`),
		time.Now(), prevention.Builtin())
	if err != nil {
		log.Fatal(err)
	}
	for range 3 {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			log.Fatal(err)
		}
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 10}); err != nil {
			log.Fatal(err)
		}
		if _, err := run.Finish(ctx); err != nil {
			log.Fatal(err)
		}
	}
	head, err := tenantlog.SignHead(ctx, st, signer, "acme", time.Now())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("signed a head of", head.Size, "leaves")

	rep, err := tenantlog.Verify(ctx, st, []byte(head.Note), note.VerifierList(verifier))
	fmt.Println("verified:", rep.Runs, "runs,", err == nil)

	// A different root for the same size: the log it names is not this one.
	forged, _ := tenantlog.NewHead(signer, "acme", head.Size, "0000000000000000000000000000000000000000000000000000000000000000", time.Now())
	_, err = tenantlog.Verify(ctx, st, []byte(forged.Note), note.VerifierList(verifier))
	fmt.Println("another log:", errors.Is(err, tenantlog.ErrMismatch))
	// Output:
	// signed a head of 3 leaves
	// verified: 3 runs, true
	// another log: true
}

// Prove a run's place in its tenant's log and check it offline.
func ExampleProve() {
	st := memstore.New()
	r, _ := governance.NewRunner(st)
	snap, _ := snapshot.Parse("p.json", []byte(`{"tenant_id":"acme","thresholds":{"max_steps":10},
		"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}]}`),
		time.Now(), prevention.Builtin())
	var last string
	for range 5 {
		run, _ := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		run.Finish(ctx)
		last = run.ID()
	}
	leaves, err := tenantlog.RunLeaves(ctx, st, "acme", last)
	if err != nil {
		log.Fatal(err)
	}
	head, err := tenantlog.Current(ctx, st, "acme")
	if err != nil {
		log.Fatal(err)
	}
	p, err := tenantlog.Prove(ctx, st, head, leaves[0])
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Leaf.Kind, "leaf", p.Leaf.Index, "of", p.TreeSize, "proved by", len(p.Hashes), "hashes:", tenantlog.CheckProof(p) == nil)
	// Output:
	// run_end leaf 4 of 5 proved by 1 hashes: true
}
