package export_test

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"path/filepath"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/sqlite"
	"github.com/stopline/stopline/tenantlog"
)

// TestBundleCarriesTenantLogProof: an evidence bundle carries the run's
// inclusion proof in its tenant's log, which bundle.Verify checks
// offline against the tree head it states (and VerifyTenantLogHead against
// the key that signed that head); a head kept from the bundle verifies
// the store; a tampered proof, leaf or head fails, signed or not.
func TestBundleCarriesTenantLogProof(t *testing.T) {
	skey, vkey, err := governance.GenerateCheckpointKey("log-key")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	verifiers := note.VerifierList(v)

	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "stopline.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clock := governance.NewFakeClock(fixture.T0)
	r, err := governance.NewRunner(st, governance.WithKinds(fixture.Kinds), governance.WithClock(clock))
	if err != nil {
		t.Fatal(err)
	}
	var incidents []string
	for range 5 { // several runs: a proof with several hashes
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
		incidents = append(incidents, viol.IncidentID)
	}
	key := fixture.Key("tenant log test")
	pub := key.Public().(ed25519.PublicKey)
	exp, err := export.New(st, export.WithClock(clock), export.WithSigner(key), export.WithTenantLogSigner(signer))
	if err != nil {
		t.Fatal(err)
	}
	req := export.Request{TenantID: "acme", IncidentID: incidents[2], ExportedBy: "t"}
	a, err := exp.Export(ctx, bundle.TypeEvidence, req, export.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	verified, err := bundle.Verify(dataOf(t, a), pub)
	if err != nil {
		t.Fatal(err)
	}
	ev := verified.Bundle.(*bundle.Evidence)
	lp := ev.TenantLog
	if lp == nil || lp.Kind != tenantlog.KindRunEnd || lp.LeafIndex != 2 || lp.TreeSize != 5 || len(lp.Proof) == 0 || lp.Seq != len(ev.Chain)-1 {
		t.Fatalf("tenant log proof: %+v", lp)
	}
	head, err := bundle.VerifyTenantLogHead(verified, verifiers)
	if err != nil || head.Size != 5 || head.Root != lp.RootHash {
		t.Fatalf("VerifyTenantLogHead: %+v %v", head, err)
	}
	_, otherV, _ := governance.GenerateCheckpointKey("log-key")
	ov, _ := note.NewVerifier(otherV)
	if _, err := bundle.VerifyTenantLogHead(verified, note.VerifierList(ov)); !errors.Is(err, bundle.ErrTenantLog) {
		t.Errorf("the head with another key: %v, want ErrTenantLog", err)
	}
	// The head a bundle carries is a head the store verifies against.
	if _, err := tenantlog.Verify(ctx, st, []byte(lp.SignedHead), verifiers); err != nil {
		t.Errorf("tenantlog.Verify with the bundle's head: %v", err)
	}
	// The streamed export writes the same proof, checked as it writes.
	var buf bytes.Buffer
	if _, err := exp.ExportTo(ctx, &buf, bundle.TypeEvidence, req, export.FormatJSON); err != nil {
		t.Fatal(err)
	}
	if sv, err := bundle.Verify(buf.Bytes(), pub); err != nil || sv.Bundle.(*bundle.Evidence).TenantLog == nil {
		t.Fatalf("streamed bundle: %v", err)
	}

	// Tampered, then sealed again by the issuer's key: the signature holds,
	// the proof does not.
	for name, edit := range map[string]func(p *bundle.TenantLogProof){
		"a proof hash flipped": func(p *bundle.TenantLogProof) { p.Proof[0] = flip(p.Proof[0]) },
		"a proof hash dropped": func(p *bundle.TenantLogProof) { p.Proof = p.Proof[1:] },
		"another leaf index":   func(p *bundle.TenantLogProof) { p.LeafIndex++ },
		"another root":         func(p *bundle.TenantLogProof) { p.RootHash = flip(p.RootHash) },
		"a smaller tree":       func(p *bundle.TenantLogProof) { p.TreeSize-- },
		"another head hash":    func(p *bundle.TenantLogProof) { p.Head = flip(p.Head) },
		"another seq":          func(p *bundle.TenantLogProof) { p.Seq-- },
		"a checkpoint leaf":    func(p *bundle.TenantLogProof) { p.Kind = tenantlog.KindCheckpoint },
		"another signed head": func(p *bundle.TenantLogProof) {
			h, _ := tenantlog.NewHead(signer, "acme", p.TreeSize+1, p.RootHash, fixture.T0)
			p.SignedHead = h.Note
		},
	} {
		t.Run(name, func(t *testing.T) {
			b, err := exp.Evidence(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			c := *b.TenantLog
			c.Proof = append([]string(nil), c.Proof...)
			edit(&c)
			b.TenantLog = &c
			if err := bundle.Check(b); !errors.Is(err, bundle.ErrTenantLog) {
				t.Fatalf("Check: %v, want ErrTenantLog", err)
			}
			sealed, err := bundle.Seal(b, key)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := sealed.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			if _, err := bundle.Verify(buf.Bytes(), pub); !errors.Is(err, bundle.ErrTenantLog) {
				t.Fatalf("Verify: %v, want ErrTenantLog", err)
			}
		})
	}
}

// flip changes the first hex digit of a hash.
func flip(h string) string {
	if h[0] == '0' {
		return "1" + h[1:]
	}
	return "0" + h[1:]
}
