package export_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
)

// TestVerifyRefusesJSONReadTwoWays: a bundle file that encoding/json
// reads one way and a person, a jq pipeline or a verifier in another
// language reads another way is refused, even when its hash and signature
// verify: a key given twice (Go keeps the last, the others the first), a
// key that matches a field only ignoring case, invalid UTF-8, a chain
// record that is not the canonical encoding of what its hash covers, a
// value spelled another way than the bundle's fields write it.
func TestVerifyRefusesJSONReadTwoWays(t *testing.T) {
	f := newFixture(t, nil)
	signer, _ := export.NewSigner(f.key)
	a, err := f.exp.Export(ctx, export.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "alice"}, export.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := export.Verify(a.Data, f.pub); err != nil {
		t.Fatal(err)
	}
	// The bundle with its incident's policy and the step evidence forged:
	// what the forger wants a reader to see.
	forgedEnv := decodeEnv(t, a.Data)
	forgedEnv.bundle()["incident"].(map[string]any)["policy_id"] = "cost-budget"
	forgedEnv.bundle()["incident"].(map[string]any)["message"] = "within budget; nothing was blocked"
	forgedBundle, _ := json.Marshal(forgedEnv["bundle"])
	forgedIncident, _ := json.Marshal(forgedEnv.bundle()["incident"])
	resigned := func(mutate func(e env)) []byte {
		e := decodeEnv(t, a.Data)
		mutate(e)
		e.rehash(t)
		e.resign(signer)
		return e.bytes(t)
	}
	tests := []struct {
		name string
		data []byte
	}{
		// Each of these verified before: Go read the genuine copy, which
		// the hash and signature cover.
		{"a forged first copy of bundle", append(append([]byte(`{"bundle":`), forgedBundle...), append([]byte(","), a.Data[1:]...)...)},
		{"a forged first copy of incident", bytes.Replace(a.Data, []byte(`{"bundle":{`), append(append([]byte(`{"bundle":{"incident":`), forgedIncident...), ','), 1)},
		{"a forged first copy of a chain record's tool", bytes.Replace(a.Data, []byte(`"tool":"shell"`), []byte(`"tool":"search","tool":"shell"`), 1)},
		{"a forged first copy of bundle_hash", bytes.Replace(a.Data, []byte(`"bundle_hash":`), []byte(`"bundle_hash":"`+strings.Repeat("0", 64)+`","bundle_hash":`), 1)},
		{"a duplicated key in another case", bytes.Replace(a.Data, []byte(`{"bundle":{`), append(append([]byte(`{"bundle":{"INCIDENT":`), forgedIncident...), ','), 1)},
		// These need the issuer's key (or one the reader trusts): a bundle
		// sealed over JSON that only Go reads as the checked bundle.
		{"a key in another case, re-signed", resigned(func(e env) {
			b := e.bundle()
			b["Export_Reason"], b["export_reason"] = "forged", nil
			delete(b, "export_reason")
		})},
		{"a chain record key in another case, re-signed", resigned(func(e env) {
			r := e.record(4)
			r["TOOL"] = r["tool"]
			delete(r, "tool")
		})},
		{"a chain record with an explicit empty value, re-signed", resigned(func(e env) { e.record(4)["message"] = "" })},
		{"an omitted field written as null, re-signed", resigned(func(e env) { e.bundle()["export_reason"] = nil })},
		{"a time spelled another way, re-signed", resigned(func(e env) {
			e.bundle()["created_at"] = strings.Replace(e.bundle()["created_at"].(string), "Z", "+00:00", 1)
		})},
		{"invalid UTF-8", bytes.Replace(a.Data, []byte(`"exported_by":"alice"`), []byte("\"exported_by\":\"al\xffice\""), 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Equal(tc.data, a.Data) {
				t.Fatal("the forgery changed nothing: fix the test")
			}
			_, err := export.Verify(tc.data, f.pub)
			if !errors.Is(err, export.ErrAmbiguous) || !errors.Is(err, export.ErrMalformed) {
				t.Errorf("got %v, want ErrAmbiguous", err)
			}
			if _, err := export.VerifyUnsigned(tc.data); !errors.Is(err, export.ErrAmbiguous) {
				t.Errorf("VerifyUnsigned: got %v, want ErrAmbiguous", err)
			}
		})
	}
}

// checkpointedBundles exports the evidence bundles of two runs made with
// checkpoints signed by cpSigner.
func checkpointedBundles(t *testing.T, cpSigner note.Signer) (key ed25519.PrivateKey, first, second []byte) {
	t.Helper()
	st := memstore.New()
	clock := governance.NewFakeClock(T0)
	r, err := governance.NewRunner(st, governance.WithKinds(testKinds), governance.WithClock(clock), governance.WithCheckpoints(cpSigner, 1))
	if err != nil {
		t.Fatal(err)
	}
	var incidents []string
	for i := 0; i < 2; i++ {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: policy(t, "acme", 50, T0)})
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 1+i; j++ {
			clock.Advance(1e9)
			if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search"}); err != nil {
				t.Fatal(err)
			}
		}
		_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"})
		var viol *governance.Violation
		if !errors.As(err, &viol) {
			t.Fatal(err)
		}
		incidents = append(incidents, viol.IncidentID)
	}
	key = testKey("checkpoint bundles")
	exp, err := export.New(st, export.WithClock(clock), export.WithSigner(key))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, inc := range incidents {
		a, err := exp.Export(ctx, export.TypeEvidence, export.Request{TenantID: "acme", IncidentID: inc, ExportedBy: "t"}, export.FormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a.Data)
	}
	return key, out[0], out[1]
}

// TestBundleCheckpointIsChecked: the checkpoint a bundle carries must be a
// well-formed checkpoint of the bundle's own chain, key or no key; with
// the checkpoint key, VerifyBundleCheckpoint also proves who signed it.
func TestBundleCheckpointIsChecked(t *testing.T) {
	skey, vkey, _ := governance.GenerateCheckpointKey("stopline-export-test")
	cpSigner, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	verifiers := note.VerifierList(v)
	impostorKey, _, _ := governance.GenerateCheckpointKey("stopline-export-test")
	impostor, _ := note.NewSigner(impostorKey)

	key, data, other := checkpointedBundles(t, cpSigner)
	pub := key.Public().(ed25519.PublicKey)
	signer, _ := export.NewSigner(key)
	verified, err := export.Verify(data, pub)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := export.VerifyBundleCheckpoint(verified, verifiers)
	if err != nil || cp.Size != len(decodeEnv(t, data).list("chain")) {
		t.Fatalf("VerifyBundleCheckpoint: %+v %v", cp, err)
	}
	e := decodeEnv(t, data)
	note0 := e.bundle()["checkpoint"].(string)
	runID := e.bundle()["run_id"].(string)
	chain := e.list("chain")
	head := func(i int) string { return chain[i].(map[string]any)["hash"].(string) }
	otherNote := decodeEnv(t, other).bundle()["checkpoint"].(string)
	sign := func(s note.Signer, tenant, run string, size int, head string) string {
		c, err := governance.NewCheckpoint(s, tenant, run, size, head, T0)
		if err != nil {
			t.Fatal(err)
		}
		return c.Note
	}
	withCheckpoint := func(n string) []byte {
		e := decodeEnv(t, data)
		e.bundle()["checkpoint"] = n
		e.rehash(t)
		e.resign(signer)
		return e.bytes(t)
	}
	tests := []struct {
		name  string
		note  string
		wants []error
	}{
		{"garbage", "not a checkpoint", []error{governance.ErrCheckpoint}},
		{"no signature", strings.SplitN(note0, "\n\n", 2)[0] + "\n", []error{governance.ErrCheckpoint}},
		{"text not canonical", strings.Replace(note0, "\nacme\n", "\nac%6De\n", 1), []error{governance.ErrCheckpoint}},
		{"another run's note", otherNote, []error{governance.ErrCheckpointRun, governance.ErrCheckpointMismatch}},
		{"another tenant's note of this run", sign(cpSigner, "globex", runID, len(chain), head(len(chain)-1)), []error{governance.ErrCheckpointRun}},
		{"more records than the chain", sign(cpSigner, "acme", runID, len(chain)+1, head(len(chain)-1)), []error{governance.ErrCheckpointMismatch}},
		{"another head", sign(cpSigner, "acme", runID, len(chain), head(1)), []error{governance.ErrCheckpointMismatch}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			forged := withCheckpoint(tc.note)
			for _, verify := range []func([]byte) (*export.Verified, error){
				func(d []byte) (*export.Verified, error) { return export.Verify(d, pub) },
				export.VerifyUnsigned,
			} {
				_, err := verify(forged)
				if !errors.Is(err, export.ErrBundleCheckpoint) {
					t.Fatalf("got %v, want ErrBundleCheckpoint", err)
				}
				for _, w := range tc.wants {
					if !errors.Is(err, w) {
						t.Errorf("got %v, want %v too", err, w)
					}
				}
			}
		})
	}
	// A well-formed checkpoint of this chain signed by another key with
	// the checkpoint key's name: the bundle is sound, the checkpoint does
	// not verify with the checkpoint key.
	forged := withCheckpoint(sign(impostor, "acme", runID, len(chain), head(len(chain)-1)))
	vf, err := export.Verify(forged, pub)
	if err != nil {
		t.Fatalf("a sound bundle: %v", err)
	}
	if _, err := export.VerifyBundleCheckpoint(vf, verifiers); !errors.Is(err, governance.ErrCheckpoint) || !errors.Is(err, export.ErrBundleCheckpoint) {
		t.Errorf("impostor's checkpoint: got %v, want ErrCheckpoint", err)
	}
	// An older checkpoint of the same chain is fine: the chain only grew.
	older := withCheckpoint(sign(cpSigner, "acme", runID, 2, head(1)))
	vo, err := export.Verify(older, pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := export.VerifyBundleCheckpoint(vo, verifiers); err != nil {
		t.Errorf("an older checkpoint of the chain: %v", err)
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
	clock := governance.NewFakeClock(T0)
	r, err := governance.NewRunner(st, governance.WithKinds(testKinds), governance.WithClock(clock), governance.WithCheckpoints(cpSigner, 1))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 0; i < 2; i++ {
		run, _ := r.Start(ctx, governance.StartOptions{Snapshot: policy(t, "acme", 50, T0)})
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
		return exp.Export(ctx, export.TypeEvidence, export.Request{TenantID: "acme", RunID: a, ExportedBy: "t"}, export.FormatJSON)
	}
	var foreign []governance.Checkpoint
	for _, c := range bRows {
		c.RunID = a
		foreign = append(foreign, c)
	}
	if _, err := export1(checkpointRows{Store: st, runID: a, rows: foreign}); !errors.Is(err, export.ErrStoreIntegrity) ||
		!errors.Is(err, export.ErrBundleCheckpoint) || !errors.Is(err, governance.ErrCheckpointRun) {
		t.Errorf("export carrying another run's checkpoint: got %v, want ErrStoreIntegrity", err)
	}
	recs, _ := st.Records(ctx, "acme", a)
	later, err := governance.NewCheckpoint(cpSigner, "acme", a, len(recs)+1, strings.Repeat("0", 64), T0)
	if err != nil {
		t.Fatal(err)
	}
	art, err := export1(checkpointRows{Store: st, runID: a, rows: append(append([]governance.Checkpoint{}, aRows...), later)})
	if err != nil {
		t.Fatalf("export with a checkpoint newer than its records: %v", err)
	}
	if got := decodeEnv(t, art.Data).bundle()["checkpoint"]; got != aRows[len(aRows)-1].Note {
		t.Errorf("carried checkpoint:\n%v\nwant the latest that covers the records read:\n%s", got, aRows[len(aRows)-1].Note)
	}
}

// TestBundleCaseVariantKeysOfAMap: labels (or step metadata) with two
// keys equal ignoring case ("Team" and "team") are two keys of a map to
// every reader, and the bundle verifies; the same pair where a struct
// field is read is ambiguous and refused (TestVerifyRefusesJSONReadTwoWays).
func TestBundleCaseVariantKeysOfAMap(t *testing.T) {
	st := memstore.New()
	clock := governance.NewFakeClock(T0)
	r, _ := governance.NewRunner(st, governance.WithKinds(testKinds), governance.WithClock(clock))
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: policy(t, "acme", 50, T0), Labels: map[string]string{"Team": "a", "team": "b"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search"}); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	exp, _ := export.New(st, export.WithClock(clock))
	a, err := exp.Export(ctx, export.TypeEvidence, export.Request{TenantID: "acme", RunID: run.ID(), ExportedBy: "t"}, export.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	v, err := export.VerifyUnsigned(a.Data)
	if err != nil {
		t.Fatalf("a bundle with labels Team and team: %v", err)
	}
	if l := v.Bundle.(*export.EvidenceBundle).Run.Labels; l["Team"] != "a" || l["team"] != "b" {
		t.Errorf("labels read back as %v", l)
	}
}
