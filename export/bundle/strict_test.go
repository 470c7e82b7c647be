package bundle_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/json"
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

// TestVerifyRefusesJSONReadTwoWays: a bundle file that encoding/json
// reads one way and a person, a jq pipeline, a DSSE library or a
// verifier in another language reads another way is refused. Without the
// key: an envelope with a forged first copy of a key (Go keeps the last,
// the others the first), a key in another case, invalid UTF-8. With the
// issuer's key (an issuer, or a thief of its key, signing a payload that
// readers read differently): the same inside the payload, a chain record
// that is not the canonical encoding of what its hash covers, a value
// spelled another way than the bundle's fields write it.
func TestVerifyRefusesJSONReadTwoWays(t *testing.T) {
	f := fixture.New(t, nil)
	data, _ := exportJSON(t, f.Exp, bundle.TypeEvidence, inc1("alice"))
	if _, err := bundle.Verify(data, f.Pub); err != nil {
		t.Fatal(err)
	}
	// The bundle with its incident's policy forged: what the forger wants
	// a reader to see.
	forged := decodeEnv(t, data)
	forged.bundle()["incident"].(map[string]any)["policy_id"] = "cost-budget"
	forged.bundle()["incident"].(map[string]any)["message"] = "within budget; nothing was blocked"
	forged.encode(t)
	forgedPayload, _ := json.Marshal(forged.top["payload"])
	forgedIncident, _ := json.Marshal(forged.bundle()["incident"])
	// signed re-signs a payload changed byte for byte.
	signed := func(change func(p []byte) []byte) []byte {
		e := decodeEnv(t, data)
		e.setPayload(change(e.payload(t)))
		e.resign(t, f.Key)
		return e.bytes(t)
	}
	resigned := func(mutate func(e *env)) []byte {
		e := decodeEnv(t, data)
		mutate(e)
		e.encode(t)
		e.resign(t, f.Key)
		return e.bytes(t)
	}
	tests := []struct {
		name string
		data []byte
	}{
		// The envelope, without any key.
		{"a forged first copy of payload", bytes.Replace(data, []byte(`{"payload":`), append(append([]byte(`{"payload":`), forgedPayload...), []byte(`,"payload":`)...), 1)},
		{"a forged first copy of payloadType", bytes.Replace(data, []byte(`"payloadType":`), []byte(`"payloadType":"application/vnd.in-toto+json","payloadType":`), 1)},
		{"a forged first copy of signatures", bytes.Replace(data, []byte(`"signatures":`), []byte(`"signatures":[],"signatures":`), 1)},
		{"a payload key in another case", bytes.Replace(data, []byte(`{"payload":`), append(append([]byte(`{"Payload":`), forgedPayload...), []byte(`,"payload":`)...), 1)},
		{"a keyid in another case", bytes.Replace(data, []byte(`{"keyid":`), []byte(`{"keyID":"0","keyid":`), 1)},
		{"invalid UTF-8 in the envelope", bytes.Replace(data, []byte(`{"keyid":"`), []byte("{\"keyid\":\"\xff"), 1)},
		// The payload, signed with the issuer's key.
		{"a forged first copy of incident", signed(func(p []byte) []byte {
			return bytes.Replace(p, []byte(`{"bundle_id":`), append(append([]byte(`{"incident":`), forgedIncident...), []byte(`,"bundle_id":`)...), 1)
		})},
		{"a forged first copy of a chain record's tool", signed(func(p []byte) []byte {
			return bytes.Replace(p, []byte(`"tool":"shell"`), []byte(`"tool":"search","tool":"shell"`), 1)
		})},
		{"a duplicated key in another case", signed(func(p []byte) []byte {
			return bytes.Replace(p, []byte(`{"bundle_id":`), append(append([]byte(`{"INCIDENT":`), forgedIncident...), []byte(`,"bundle_id":`)...), 1)
		})},
		{"invalid UTF-8 in the payload", signed(func(p []byte) []byte {
			return bytes.Replace(p, []byte(`"exported_by":"alice"`), []byte("\"exported_by\":\"al\xffice\""), 1)
		})},
		{"an unpaired surrogate escape in the payload", signed(func(p []byte) []byte {
			return bytes.Replace(p, []byte(`"exported_by":"alice"`), []byte(`"exported_by":"al\ud800ice"`), 1)
		})},
		{"a key in another case", resigned(func(e *env) {
			b := e.bundle()
			b["Export_Reason"] = "forged"
			delete(b, "export_reason")
		})},
		{"a chain record key in another case", resigned(func(e *env) {
			r := e.record(4)
			r["TOOL"] = r["tool"]
			delete(r, "tool")
		})},
		{"a chain record with an explicit empty value", resigned(func(e *env) { e.record(4)["message"] = "" })},
		{"an omitted field written as null", resigned(func(e *env) { e.bundle()["export_reason"] = nil })},
		{"a time spelled another way", resigned(func(e *env) {
			e.bundle()["created_at"] = strings.Replace(e.bundle()["created_at"].(string), "Z", "+00:00", 1)
		})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if bytes.Equal(tc.data, data) {
				t.Fatal("the forgery changed nothing: fix the test")
			}
			_, err := bundle.Verify(tc.data, f.Pub)
			if !errors.Is(err, bundle.ErrAmbiguous) || !errors.Is(err, bundle.ErrMalformed) {
				t.Errorf("got %v, want ErrAmbiguous", err)
			}
			if _, err := bundle.VerifyUnsigned(tc.data); !errors.Is(err, bundle.ErrAmbiguous) {
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
	clock := governance.NewFakeClock(fixture.T0)
	r, err := governance.NewRunner(st, governance.WithKinds(fixture.Kinds), governance.WithClock(clock), governance.WithCheckpoints(cpSigner, 1))
	if err != nil {
		t.Fatal(err)
	}
	var incidents []string
	for i := 0; i < 2; i++ {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: fixture.Policy(t, "acme", 50, fixture.T0)})
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
	key = fixture.Key("checkpoint bundles")
	exp, err := export.New(st, export.WithClock(clock), export.WithSigner(key))
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, inc := range incidents {
		data, _ := exportJSON(t, exp, bundle.TypeEvidence, export.Request{TenantID: "acme", IncidentID: inc, ExportedBy: "t"})
		out = append(out, data)
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
	verified, err := bundle.Verify(data, pub)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := bundle.VerifyCheckpoint(verified, verifiers)
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
		c, err := governance.NewCheckpoint(s, tenant, run, size, head, fixture.T0)
		if err != nil {
			t.Fatal(err)
		}
		return c.Note
	}
	withCheckpoint := func(n string) []byte {
		e := decodeEnv(t, data)
		e.bundle()["checkpoint"] = n
		e.encode(t)
		e.resign(t, key)
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
			for _, verify := range []func([]byte) (*bundle.Verified, error){
				func(d []byte) (*bundle.Verified, error) { return bundle.Verify(d, pub) },
				bundle.VerifyUnsigned,
			} {
				_, err := verify(forged)
				if !errors.Is(err, bundle.ErrCheckpoint) {
					t.Fatalf("got %v, want ErrCheckpoint", err)
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
	vf, err := bundle.Verify(forged, pub)
	if err != nil {
		t.Fatalf("a sound bundle: %v", err)
	}
	if _, err := bundle.VerifyCheckpoint(vf, verifiers); !errors.Is(err, governance.ErrCheckpoint) || !errors.Is(err, bundle.ErrCheckpoint) {
		t.Errorf("impostor's checkpoint: got %v, want ErrCheckpoint", err)
	}
	// An older checkpoint of the same chain is fine: the chain only grew.
	older := withCheckpoint(sign(cpSigner, "acme", runID, 2, head(1)))
	vo, err := bundle.Verify(older, pub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bundle.VerifyCheckpoint(vo, verifiers); err != nil {
		t.Errorf("an older checkpoint of the chain: %v", err)
	}
}

// TestBundleCaseVariantKeysOfAMap: labels (or step metadata) with two
// keys equal ignoring case ("Team" and "team") are two keys of a map to
// every reader, and the bundle verifies; the same pair where a struct
// field is read is ambiguous and refused (TestVerifyRefusesJSONReadTwoWays).
func TestBundleCaseVariantKeysOfAMap(t *testing.T) {
	st := memstore.New()
	clock := governance.NewFakeClock(fixture.T0)
	r, _ := governance.NewRunner(st, governance.WithKinds(fixture.Kinds), governance.WithClock(clock))
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: fixture.Policy(t, "acme", 50, fixture.T0), Labels: map[string]string{"Team": "a", "team": "b"}})
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
	data, _ := exportJSON(t, exp, bundle.TypeEvidence, export.Request{TenantID: "acme", RunID: run.ID(), ExportedBy: "t"})
	v, err := bundle.VerifyUnsigned(data)
	if err != nil {
		t.Fatalf("a bundle with labels Team and team: %v", err)
	}
	if l := v.Bundle.(*bundle.Evidence).Run.Labels; l["Team"] != "a" || l["team"] != "b" {
		t.Errorf("labels read back as %v", l)
	}
}
