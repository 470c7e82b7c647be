package export_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/snapshot"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// sentinels are every verification sentinel; a failure is described by
// the set of those it matches.
var sentinels = []struct {
	name string
	err  error
}{
	{"ErrMalformed", export.ErrMalformed}, {"ErrTrailingData", export.ErrTrailingData}, {"ErrAmbiguous", export.ErrAmbiguous},
	{"ErrBundleHash", export.ErrBundleHash},
	{"ErrSignature", export.ErrSignature}, {"ErrUnsigned", export.ErrUnsigned}, {"ErrKeyMismatch", export.ErrKeyMismatch},
	{"ErrSnapshot", export.ErrSnapshot},
	{"ErrChain", export.ErrChain}, {"ErrRecordChanged", export.ErrRecordChanged}, {"ErrRecordMissing", export.ErrRecordMissing},
	{"ErrRecordsReordered", export.ErrRecordsReordered},
	{"ErrStepMismatch", export.ErrStepMismatch}, {"ErrContent", export.ErrContent}, {"ErrInconsistent", export.ErrInconsistent},
	{"ErrBundleCheckpoint", export.ErrBundleCheckpoint},
}

func matched(err error) []string {
	var out []string
	for _, s := range sentinels {
		if errors.Is(err, s.err) {
			out = append(out, s.name)
		}
	}
	return out
}

// env is an envelope as generic JSON, for tampering.
type env map[string]any

func decodeEnv(t *testing.T, data []byte) env {
	t.Helper()
	var e env
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&e); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e env) bundle() map[string]any { return e["bundle"].(map[string]any) }

func (e env) list(key string) []any { return e.bundle()[key].([]any) }

func (e env) item(key string, i int) map[string]any { return e.list(key)[i].(map[string]any) }

func (e env) record(i int) map[string]any { return e.item("chain", i)["record"].(map[string]any) }

// rehash sets bundle_hash to the hash of the (changed) bundle, as anyone
// can.
func (e env) rehash(t *testing.T) {
	raw, err := json.Marshal(e["bundle"])
	if err != nil {
		t.Fatal(err)
	}
	canon, err := snapshot.Canonical(raw)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(canon)
	e["bundle_hash"] = hex.EncodeToString(sum[:])
}

// resign signs bundle_hash with signers, replacing the signatures, as the
// key's holder (or a thief of the key) can.
func (e env) resign(signers ...*export.Signer) {
	var sigs []any
	for _, s := range signers {
		sg := s.Sign(e["bundle_hash"].(string))
		sigs = append(sigs, map[string]any{"key_id": sg.KeyID, "algorithm": sg.Algorithm, "signature": sg.Signature})
	}
	e["signatures"] = sigs
}

func (e env) bytes(t *testing.T) []byte {
	b, err := json.Marshal(map[string]any(e))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	naive  = iota // change the bundle only
	rehash        // and recompute bundle_hash
	resign        // and sign again with the issuer's key
)

func TestVerifyDetectsTampering(t *testing.T) {
	f := newFixture(t, nil)
	signer, _ := export.NewSigner(f.key)
	other, _ := export.NewSigner(testKey("someone else"))
	good := func(typ export.BundleType, content bool) []byte {
		a, err := f.exp.Export(ctx, typ, export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "alice", IncludeContent: content}, export.FormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		return a.Data
	}
	tests := []struct {
		name   string
		typ    export.BundleType
		reseal int
		mutate func(t *testing.T, e env)
		raw    func(data []byte) []byte // byte-level tampering instead of mutate
		want   []string
	}{
		{name: "untouched", reseal: naive, mutate: func(*testing.T, env) {}},
		{name: "any byte changed", reseal: naive, mutate: func(_ *testing.T, e env) { e.bundle()["export_reason"] = "nothing to see" },
			want: []string{"ErrBundleHash"}},
		{name: "step changed, naively", reseal: naive, mutate: func(_ *testing.T, e env) {
			e.record(2)["tokens"] = json.Number("1")
			e.item("steps", 1)["tokens"] = json.Number("1")
		}, want: []string{"ErrBundleHash", "ErrChain", "ErrRecordChanged"}},
		{name: "step changed, re-signed", reseal: resign, mutate: func(_ *testing.T, e env) {
			e.record(2)["tokens"] = json.Number("1")
			e.item("steps", 1)["tokens"] = json.Number("1")
		}, want: []string{"ErrChain", "ErrRecordChanged"}},
		{name: "step's evidence changed, chain intact", reseal: resign, mutate: func(_ *testing.T, e env) {
			e.item("steps", 3)["status"] = "ok"
		}, want: []string{"ErrStepMismatch"}},
		{name: "step changed, rehashed but not re-signed", reseal: rehash, mutate: func(_ *testing.T, e env) {
			e.item("steps", 3)["status"] = "ok"
		}, want: []string{"ErrSignature", "ErrStepMismatch"}},
		{name: "step removed", reseal: resign, mutate: func(_ *testing.T, e env) {
			b := e.bundle()
			b["chain"] = append(e.list("chain")[:2:2], e.list("chain")[3:]...)
			b["steps"] = append(e.list("steps")[:1:1], e.list("steps")[2:]...)
		}, want: []string{"ErrChain", "ErrRecordMissing"}},
		{name: "steps reordered", reseal: resign, mutate: func(_ *testing.T, e env) {
			c, s := e.list("chain"), e.list("steps")
			c[2], c[3] = c[3], c[2]
			s[1], s[2] = s[2], s[1]
		}, want: []string{"ErrChain", "ErrRecordsReordered"}},
		{name: "chain cut short", reseal: resign, mutate: func(_ *testing.T, e env) {
			e.bundle()["chain"] = e.list("chain")[:5]
		}, want: []string{"ErrChain", "ErrRecordMissing"}},
		{name: "snapshot changed", reseal: resign, mutate: func(_ *testing.T, e env) {
			e.bundle()["snapshot"].(map[string]any)["thresholds"].(map[string]any)["max_steps"] = json.Number("1000")
		}, want: []string{"ErrSnapshot"}},
		{name: "snapshot replaced by another, hashes recomputed", reseal: resign, mutate: func(t *testing.T, e env) {
			other := policy(t, "acme", 1000, T0)
			raw, _ := json.Marshal(other)
			var m map[string]any
			json.Unmarshal(raw, &m)
			e.bundle()["snapshot"] = m
			e.bundle()["policy_snapshot_id"] = other.ID()
		}, want: []string{"ErrSnapshot"}},
		{name: "signature from another key", reseal: rehash, mutate: func(_ *testing.T, e env) { e.resign(other) },
			want: []string{"ErrSignature", "ErrKeyMismatch"}},
		{name: "another key's signature under this key's id", reseal: rehash, mutate: func(_ *testing.T, e env) {
			e.resign(other)
			e["signatures"].([]any)[0].(map[string]any)["key_id"] = signer.KeyID()
		}, want: []string{"ErrSignature"}},
		{name: "unsigned", reseal: rehash, mutate: func(_ *testing.T, e env) { e["signatures"] = []any{} },
			want: []string{"ErrSignature", "ErrUnsigned"}},
		{name: "trailing garbage", raw: func(d []byte) []byte { return append(bytes.Clone(d), "\n{}"...) },
			want: []string{"ErrMalformed", "ErrTrailingData"}},
		{name: "trailing white space is fine", raw: func(d []byte) []byte { return append(bytes.Clone(d), " \n"...) }},
		{name: "not JSON", raw: func(d []byte) []byte { return d[:len(d)/2] }, want: []string{"ErrMalformed"}},
		{name: "unknown field", reseal: resign, mutate: func(_ *testing.T, e env) { e.bundle()["approved"] = true },
			want: []string{"ErrMalformed"}},
		{name: "totals changed", reseal: resign, mutate: func(_ *testing.T, e env) { e.bundle()["total_tokens"] = json.Number("1") },
			want: []string{"ErrInconsistent"}},
		{name: "violation moved", reseal: resign, mutate: func(_ *testing.T, e env) { e.bundle()["violation_step_index"] = json.Number("2") },
			want: []string{"ErrInconsistent"}},
		{name: "incident swapped", reseal: resign, mutate: func(_ *testing.T, e env) {
			e.bundle()["incident"].(map[string]any)["policy_id"] = "cost-budget"
		}, want: []string{"ErrInconsistent"}},
		{name: "content changed", typ: "content", reseal: resign, mutate: func(_ *testing.T, e env) {
			e.item("steps", 0)["content"].(map[string]any)["output"] = "nothing happened"
		}, want: []string{"ErrContent"}},
		{name: "debrief: cost changed", typ: export.TypeExecutiveDebrief, reseal: resign, mutate: func(_ *testing.T, e env) {
			e.bundle()["cost_incurred_cents"] = json.Number("0.5")
		}, want: []string{"ErrInconsistent"}},
		{name: "debrief: time to detect changed", typ: export.TypeExecutiveDebrief, reseal: resign, mutate: func(_ *testing.T, e env) {
			e.bundle()["time_to_detect_seconds"] = json.Number("1")
		}, want: []string{"ErrInconsistent"}},
		{name: "debrief: step removed", typ: export.TypeExecutiveDebrief, reseal: resign, mutate: func(_ *testing.T, e env) {
			e.bundle()["chain"] = append(e.list("chain")[:2:2], e.list("chain")[3:]...)
		}, want: []string{"ErrChain", "ErrRecordMissing"}},
		{name: "soc2: population summary changed", typ: export.TypeSOC2, reseal: resign, mutate: func(_ *testing.T, e env) {
			e.bundle()["population_summary"].(map[string]any)["runs_stopped_by_policy"] = json.Number("0")
		}, want: []string{"ErrInconsistent"}},
		{name: "soc2: step reordered", typ: export.TypeSOC2, reseal: resign, mutate: func(_ *testing.T, e env) {
			c := e.list("chain")
			c[1], c[2] = c[2], c[1]
		}, want: []string{"ErrChain", "ErrRecordsReordered"}},
		{name: "soc2 untouched", typ: export.TypeSOC2, mutate: func(*testing.T, env) {}},
		{name: "debrief untouched", typ: export.TypeExecutiveDebrief, mutate: func(*testing.T, env) {}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typ, content := tc.typ, false
			switch typ {
			case "":
				typ = export.TypeEvidence
			case "content":
				typ, content = export.TypeEvidence, true
			}
			data := good(typ, content)
			if tc.raw != nil {
				data = tc.raw(data)
			} else {
				e := decodeEnv(t, data)
				tc.mutate(t, e)
				if tc.reseal >= rehash {
					e.rehash(t)
				}
				if tc.reseal == resign {
					e.resign(signer)
				}
				data = e.bytes(t)
			}
			v, err := export.Verify(data, f.pub)
			if diff := cmp.Diff(tc.want, matched(err)); diff != "" {
				t.Errorf("failures (-want +got):\n%s\nerror: %v", diff, err)
			}
			if (err == nil) != (v != nil) {
				t.Errorf("Verify returned %v and %v", v, err)
			}
			if err != nil {
				var ve *export.VerificationError
				if !errors.As(err, &ve) || len(ve.Failures) == 0 {
					t.Errorf("error %T is not a *VerificationError", err)
				}
				return
			}
			if v.KeyID != export.KeyID(f.pub) || v.Bundle.Type() != typ {
				t.Errorf("verified %s by %s", v.Bundle.Type(), v.KeyID)
			}
		})
	}
}

func TestVerifyTypedErrors(t *testing.T) {
	f := newFixture(t, nil)
	a, err := f.exp.Export(ctx, export.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-0001"}, export.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	e := decodeEnv(t, a.Data)
	e.item("steps", 2)["tool"] = "search"
	_, err = export.Verify(e.bytes(t), f.pub)
	var he *export.BundleHashError
	if !errors.As(err, &he) || he.Want != a.Sealed.Hash || he.Got == he.Want {
		t.Errorf("BundleHashError: %+v (%v)", he, err)
	}
	var se *export.StepMismatchError
	if !errors.As(err, &se) || se.StepIndex != 2 || se.Field != "tool" || se.Bundle != `"search"` || se.Chain != `"検索"` {
		t.Errorf("StepMismatchError: %+v (%v)", se, err)
	}
}

func TestVerifiedBundleMatchesTheExport(t *testing.T) {
	f := newFixture(t, nil)
	for _, typ := range []export.BundleType{export.TypeEvidence, export.TypeSOC2, export.TypeExecutiveDebrief} {
		t.Run(string(typ), func(t *testing.T) {
			a, err := f.exp.Export(ctx, typ, export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "alice"}, export.FormatJSON)
			if err != nil {
				t.Fatal(err)
			}
			v, err := export.Verify(a.Data, f.pub)
			if err != nil {
				t.Fatal(err)
			}
			if v.Hash != a.Sealed.Hash || !bytes.Equal(v.Canonical, a.Sealed.Canonical) || !bytes.Equal(v.Envelope(), a.Data) {
				t.Errorf("verified bundle differs from the export")
			}
			// The canonical bytes are snapshot.Canonical's, of the bundle as encoding/json writes it.
			whole, err := snapshot.CanonicalOf(a.Sealed.Bundle)
			if err != nil || !bytes.Equal(whole, a.Sealed.Canonical) {
				t.Errorf("sealed bytes are not snapshot.CanonicalOf(bundle) (%v)", err)
			}
			// Decoding and sealing again gives the same bytes.
			again, err := export.Seal(v.Bundle)
			if err != nil {
				t.Fatal(err)
			}
			if again.Hash != a.Sealed.Hash {
				t.Errorf("decoded bundle seals to %s, want %s", again.Hash, a.Sealed.Hash)
			}
			if _, err := export.VerifyUnsigned(a.Data); err != nil {
				t.Errorf("VerifyUnsigned: %v", err)
			}
		})
	}
	// An unsigned export verifies unsigned, and not as signed.
	unsigned, _ := export.New(f.store)
	a, err := unsigned.Export(ctx, export.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-0001"}, export.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := export.VerifyUnsigned(a.Data); err != nil {
		t.Errorf("VerifyUnsigned of an unsigned export: %v", err)
	}
	if _, err := export.Verify(a.Data, f.pub); !errors.Is(err, export.ErrUnsigned) {
		t.Errorf("Verify of an unsigned export: %v", err)
	}
	if _, err := export.Verify(a.Data, f.pub[:5]); err == nil || errors.Is(err, export.ErrSignature) {
		t.Errorf("Verify with a short key: %v", err)
	}
}

// TestGolden pins the envelope format with files in testdata: a signed
// evidence bundle, the issuer's public key, and tampered copies, each
// with the failures it must report. go test -run TestGolden -update
// rewrites them.
func TestGolden(t *testing.T) {
	f := newFixture(t, nil)
	a, err := f.exp.Export(ctx, export.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-0001", ExportedBy: "alice", Reason: "golden"}, export.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := export.NewSigner(f.key)
	pubPEM, _ := export.MarshalPublicKey(f.pub)
	tampered := func(mutate func(e env)) []byte {
		e := decodeEnv(t, a.Data)
		mutate(e)
		e.rehash(t)
		e.resign(signer)
		return e.bytes(t)
	}
	files := map[string][]byte{
		"evidence.pub":               pubPEM,
		"evidence.json":              a.Data,
		"tampered-step-changed.json": tampered(func(e env) { e.record(4)["tool"] = "search"; e.item("steps", 3)["tool"] = "search" }),
		"tampered-step-removed.json": tampered(func(e env) { e.bundle()["chain"] = append(e.list("chain")[:3:3], e.list("chain")[4:]...) }),
		"tampered-reordered.json":    tampered(func(e env) { c := e.list("chain"); c[1], c[2] = c[2], c[1] }),
		"tampered-snapshot.json": tampered(func(e env) {
			e.bundle()["snapshot"].(map[string]any)["policies"].([]any)[2].(map[string]any)["kind"] = "tool_denylist"
		}),
		"tampered-trailing-data.json": append(bytes.Clone(a.Data), "garbage"...),
		"tampered-bundle-hash.json":   bytes.Replace(a.Data, []byte(`"export_reason":"golden"`), []byte(`"export_reason":"GOLDEN"`), 1),
		"tampered-other-key.json": func() []byte {
			o, _ := export.NewSigner(testKey("other"))
			e := decodeEnv(t, a.Data)
			e.resign(o)
			return e.bytes(t)
		}(),
		"tampered-step-evidence.json": tampered(func(e env) { e.item("steps", 3)["is_inflection"] = false }),
	}
	want := map[string][]string{
		"evidence.json":               nil,
		"tampered-step-changed.json":  {"ErrChain", "ErrRecordChanged"},
		"tampered-step-removed.json":  {"ErrChain", "ErrRecordMissing"},
		"tampered-reordered.json":     {"ErrChain", "ErrRecordsReordered"},
		"tampered-snapshot.json":      {"ErrSnapshot"},
		"tampered-trailing-data.json": {"ErrMalformed", "ErrTrailingData"},
		"tampered-bundle-hash.json":   {"ErrBundleHash"},
		"tampered-other-key.json":     {"ErrSignature", "ErrKeyMismatch"},
		"tampered-step-evidence.json": {"ErrStepMismatch"},
	}
	if *update {
		for name, data := range files {
			if err := os.WriteFile(filepath.Join("testdata", name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The envelope written today is the one in testdata: the format and
	// the canonical encoding have not changed.
	golden, err := os.ReadFile(filepath.Join("testdata", "evidence.json"))
	if err != nil {
		t.Fatalf("%v (run go test -run TestGolden -update)", err)
	}
	if !bytes.Equal(golden, a.Data) {
		t.Errorf("evidence envelope differs from testdata/evidence.json (format change? rerun with -update and review the diff)")
	}
	pub, err := export.ReadPublicKeyFile(filepath.Join("testdata", "evidence.pub"))
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			_, err = export.Verify(data, pub)
			if diff := cmp.Diff(w, matched(err)); diff != "" {
				t.Errorf("failures (-want +got):\n%s\nerror: %v", diff, err)
			}
		})
	}
}

func FuzzVerify(f *testing.F) {
	for _, name := range []string{"evidence.json", "tampered-step-removed.json", "tampered-trailing-data.json"} {
		if data, err := os.ReadFile(filepath.Join("testdata", name)); err == nil {
			f.Add(data)
		}
	}
	f.Add([]byte(`{"bundle":{"bundle_type":"evidence"},"bundle_hash":"` + strings.Repeat("0", 64) + `","signatures":[],"version":"stopline-export/v1"}`))
	f.Add([]byte(`{}`))
	pub, err := export.ReadPublicKeyFile(filepath.Join("testdata", "evidence.pub"))
	if err != nil {
		f.Skip("no testdata/evidence.pub")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := export.Verify(data, pub)
		if (v == nil) == (err == nil) {
			t.Fatalf("Verify returned %v and %v", v, err)
		}
		if err != nil && len(matched(err)) == 0 {
			t.Fatalf("error matches no sentinel: %v", err)
		}
	})
}
