package bundle_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
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
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/snapshot"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	naive  = iota // change the bundle (the payload) only
	resign        // and sign it again with the issuer's key
)

func TestVerifyDetectsTampering(t *testing.T) {
	f := fixture.New(t, nil)
	other := fixture.Key("someone else")
	good := func(typ bundle.Type, content bool) []byte {
		req := inc1("alice")
		req.IncludeContent = content
		data, _ := exportJSON(t, f.Exp, typ, req)
		return data
	}
	tests := []struct {
		name   string
		typ    bundle.Type
		reseal int
		mutate func(t *testing.T, e *env)
		raw    func(data []byte) []byte // byte-level tampering instead of mutate
		want   []string
	}{
		{name: "untouched", reseal: naive, mutate: func(*testing.T, *env) {}},
		{name: "any byte changed", reseal: naive, mutate: func(_ *testing.T, e *env) { e.bundle()["export_reason"] = "nothing to see" },
			want: []string{"ErrSignature"}},
		{name: "step changed, naively", reseal: naive, mutate: func(_ *testing.T, e *env) {
			e.record(2)["tokens"] = json.Number("1")
			e.item("steps", 1)["tokens"] = json.Number("1")
		}, want: []string{"ErrSignature", "ErrChain", "ErrRecordChanged"}},
		{name: "step changed, re-signed", reseal: resign, mutate: func(_ *testing.T, e *env) {
			e.record(2)["tokens"] = json.Number("1")
			e.item("steps", 1)["tokens"] = json.Number("1")
		}, want: []string{"ErrChain", "ErrRecordChanged"}},
		{name: "step's evidence changed, chain intact", reseal: resign, mutate: func(_ *testing.T, e *env) {
			e.item("steps", 3)["status"] = "ok"
		}, want: []string{"ErrStepMismatch"}},
		{name: "step's evidence changed, not re-signed", reseal: naive, mutate: func(_ *testing.T, e *env) {
			e.item("steps", 3)["status"] = "ok"
		}, want: []string{"ErrSignature", "ErrStepMismatch"}},
		{name: "step removed", reseal: resign, mutate: func(_ *testing.T, e *env) {
			b := e.bundle()
			b["chain"] = append(e.list("chain")[:2:2], e.list("chain")[3:]...)
			b["steps"] = append(e.list("steps")[:1:1], e.list("steps")[2:]...)
		}, want: []string{"ErrChain", "ErrRecordMissing"}},
		{name: "steps reordered", reseal: resign, mutate: func(_ *testing.T, e *env) {
			c, s := e.list("chain"), e.list("steps")
			c[2], c[3] = c[3], c[2]
			s[1], s[2] = s[2], s[1]
		}, want: []string{"ErrChain", "ErrRecordsReordered"}},
		{name: "chain cut short", reseal: resign, mutate: func(_ *testing.T, e *env) {
			e.bundle()["chain"] = e.list("chain")[:5]
		}, want: []string{"ErrChain", "ErrRecordMissing"}},
		{name: "snapshot changed", reseal: resign, mutate: func(_ *testing.T, e *env) {
			e.bundle()["snapshot"].(map[string]any)["thresholds"].(map[string]any)["max_steps"] = json.Number("1000")
		}, want: []string{"ErrSnapshot"}},
		{name: "snapshot replaced by another, hashes recomputed", reseal: resign, mutate: func(t *testing.T, e *env) {
			other := fixture.Policy(t, "acme", 1000, fixture.T0)
			raw, _ := json.Marshal(other)
			var m map[string]any
			json.Unmarshal(raw, &m)
			e.bundle()["snapshot"] = m
			e.bundle()["policy_snapshot_id"] = other.ID()
		}, want: []string{"ErrSnapshot"}},
		{name: "signature from another key", reseal: naive, mutate: func(t *testing.T, e *env) { e.encode(t); e.resign(t, other) },
			want: []string{"ErrSignature", "ErrKeyMismatch"}},
		{name: "another key's signature under this key's id", reseal: naive, mutate: func(t *testing.T, e *env) {
			e.encode(t)
			e.resign(t, other)
			e.top["signatures"].([]any)[0].(map[string]any)["keyid"] = bundle.KeyID(f.Pub)
		}, want: []string{"ErrSignature"}},
		{name: "another key's signature without a key id", reseal: naive, mutate: func(t *testing.T, e *env) {
			e.encode(t)
			e.resign(t, other)
			e.top["signatures"].([]any)[0].(map[string]any)["keyid"] = ""
		}, want: []string{"ErrSignature"}},
		{name: "this key's signature without a key id", reseal: naive, mutate: func(t *testing.T, e *env) {
			e.encode(t)
			e.resign(t, f.Key)
			e.top["signatures"].([]any)[0].(map[string]any)["keyid"] = ""
		}},
		{name: "another key's signature, then this key's", reseal: naive, mutate: func(t *testing.T, e *env) {
			e.encode(t)
			e.resign(t, other, f.Key)
		}},
		{name: "the signature in URL-safe base64", reseal: naive, mutate: func(t *testing.T, e *env) {
			e.encode(t)
			s := e.top["signatures"].([]any)[0].(map[string]any)
			s["sig"] = strings.NewReplacer("+", "-", "/", "_").Replace(s["sig"].(string))
		}},
		{name: "unsigned", reseal: naive, mutate: func(_ *testing.T, e *env) { e.top["signatures"] = []any{} },
			want: []string{"ErrSignature", "ErrUnsigned"}},
		{name: "no signatures list", reseal: naive, mutate: func(_ *testing.T, e *env) { delete(e.top, "signatures") },
			want: []string{"ErrMalformed"}},
		{name: "another payload type", reseal: naive, mutate: func(_ *testing.T, e *env) { e.top["payloadType"] = "application/vnd.in-toto+json" },
			want: []string{"ErrMalformed"}},
		{name: "a payload type in another case", reseal: naive, mutate: func(_ *testing.T, e *env) {
			e.top["payloadType"] = strings.ToUpper(bundle.PayloadType)
		}, want: []string{"ErrMalformed"}},
		{name: "an unknown envelope field", reseal: naive, mutate: func(_ *testing.T, e *env) { e.top["bundle_hash"] = "0" },
			want: []string{"ErrMalformed"}},
		{name: "payload in URL-safe base64", raw: func(d []byte) []byte {
			e := decodeEnv(t, d)
			p := e.payload(t)
			e.top["payload"] = base64URL(p)
			return e.bytes(t)
		}},
		{name: "payload base64 with a line break", raw: func(d []byte) []byte {
			e := decodeEnv(t, d)
			s := e.top["payload"].(string)
			e.top["payload"] = s[:76] + "\n" + s[76:]
			return e.bytes(t)
		}, want: []string{"ErrMalformed"}},
		{name: "payload not canonical: white space", raw: func(d []byte) []byte {
			e := decodeEnv(t, d)
			e.setPayload(append(e.payload(t), ' '))
			e.resign(t, f.Key)
			return e.bytes(t)
		}, want: []string{"ErrMalformed", "ErrAmbiguous"}},
		{name: "trailing garbage", raw: func(d []byte) []byte { return append(bytes.Clone(d), "\n{}"...) },
			want: []string{"ErrMalformed", "ErrTrailingData"}},
		{name: "trailing white space is fine", raw: func(d []byte) []byte { return append(bytes.Clone(d), " \n"...) }},
		{name: "not JSON", raw: func(d []byte) []byte { return d[:len(d)/2] }, want: []string{"ErrMalformed"}},
		{name: "unknown field", reseal: resign, mutate: func(_ *testing.T, e *env) { e.bundle()["approved"] = true },
			want: []string{"ErrMalformed"}},
		{name: "totals changed", reseal: resign, mutate: func(_ *testing.T, e *env) { e.bundle()["total_tokens"] = json.Number("1") },
			want: []string{"ErrInconsistent"}},
		{name: "violation moved", reseal: resign, mutate: func(_ *testing.T, e *env) { e.bundle()["violation_step_index"] = json.Number("2") },
			want: []string{"ErrInconsistent"}},
		{name: "incident swapped", reseal: resign, mutate: func(_ *testing.T, e *env) {
			e.bundle()["incident"].(map[string]any)["policy_id"] = "cost-budget"
		}, want: []string{"ErrInconsistent"}},
		{name: "content changed", typ: "content", reseal: resign, mutate: func(_ *testing.T, e *env) {
			e.item("steps", 0)["content"].(map[string]any)["output"] = "nothing happened"
		}, want: []string{"ErrContent"}},
		{name: "debrief: cost changed", typ: bundle.TypeExecutiveDebrief, reseal: resign, mutate: func(_ *testing.T, e *env) {
			e.bundle()["cost_incurred_cents"] = json.Number("0.5")
		}, want: []string{"ErrInconsistent"}},
		{name: "debrief: time to detect changed", typ: bundle.TypeExecutiveDebrief, reseal: resign, mutate: func(_ *testing.T, e *env) {
			e.bundle()["time_to_detect_seconds"] = json.Number("1")
		}, want: []string{"ErrInconsistent"}},
		{name: "debrief: step removed", typ: bundle.TypeExecutiveDebrief, reseal: resign, mutate: func(_ *testing.T, e *env) {
			e.bundle()["chain"] = append(e.list("chain")[:2:2], e.list("chain")[3:]...)
		}, want: []string{"ErrChain", "ErrRecordMissing"}},
		{name: "soc2: population summary changed", typ: bundle.TypeSOC2, reseal: resign, mutate: func(_ *testing.T, e *env) {
			e.bundle()["population_summary"].(map[string]any)["runs_stopped_by_policy"] = json.Number("0")
		}, want: []string{"ErrInconsistent"}},
		{name: "soc2: step reordered", typ: bundle.TypeSOC2, reseal: resign, mutate: func(_ *testing.T, e *env) {
			c := e.list("chain")
			c[1], c[2] = c[2], c[1]
		}, want: []string{"ErrChain", "ErrRecordsReordered"}},
		{name: "soc2 untouched", typ: bundle.TypeSOC2, mutate: func(*testing.T, *env) {}},
		{name: "debrief untouched", typ: bundle.TypeExecutiveDebrief, mutate: func(*testing.T, *env) {}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typ, content := tc.typ, false
			switch typ {
			case "":
				typ = bundle.TypeEvidence
			case "content":
				typ, content = bundle.TypeEvidence, true
			}
			data := good(typ, content)
			if tc.raw != nil {
				data = tc.raw(data)
			} else {
				e := decodeEnv(t, data)
				tc.mutate(t, e)
				e.encode(t) // what mutate changed; the same bytes when nothing
				if tc.reseal == resign {
					e.resign(t, f.Key)
				}
				data = e.bytes(t)
			}
			v, err := bundle.Verify(data, f.Pub)
			if diff := cmp.Diff(tc.want, matched(err)); diff != "" {
				t.Errorf("failures (-want +got):\n%s\nerror: %v", diff, err)
			}
			if (err == nil) != (v != nil) {
				t.Errorf("Verify returned %v and %v", v, err)
			}
			if err != nil {
				var ve *bundle.VerificationError
				if !errors.As(err, &ve) || len(ve.Failures) == 0 {
					t.Errorf("error %T is not a *VerificationError", err)
				}
				return
			}
			if v.KeyID != bundle.KeyID(f.Pub) || v.Bundle.Type() != typ {
				t.Errorf("verified %s by %s", v.Bundle.Type(), v.KeyID)
			}
		})
	}
}

func TestVerifyTypedErrors(t *testing.T) {
	f := fixture.New(t, nil)
	data, _ := exportJSON(t, f.Exp, bundle.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-0001"})
	e := decodeEnv(t, data)
	e.item("steps", 2)["tool"] = "search"
	e.encode(t)
	_, err := bundle.Verify(e.bytes(t), f.Pub)
	var se *bundle.StepMismatchError
	if !errors.As(err, &se) || se.StepIndex != 2 || se.Field != "tool" || se.Bundle != `"search"` || se.Chain != `"検索"` {
		t.Errorf("StepMismatchError: %+v (%v)", se, err)
	}
	var ve *bundle.VerificationError
	if !errors.As(err, &ve) || len(ve.Failures) != 2 || !errors.Is(ve.Failures[0], bundle.ErrSignature) {
		t.Errorf("VerificationError: %+v (%v)", ve, err)
	}
}

func TestVerifiedBundleMatchesTheExport(t *testing.T) {
	f := fixture.New(t, nil)
	for _, typ := range []bundle.Type{bundle.TypeEvidence, bundle.TypeSOC2, bundle.TypeExecutiveDebrief} {
		t.Run(string(typ), func(t *testing.T) {
			data, a := exportJSON(t, f.Exp, typ, inc1("alice"))
			v, err := bundle.Verify(data, f.Pub)
			if err != nil {
				t.Fatal(err)
			}
			var again bytes.Buffer
			v.WriteTo(&again)
			if v.Hash != a.Sealed.Hash || !bytes.Equal(v.Payload, a.Sealed.Payload) || !bytes.Equal(again.Bytes(), data) {
				t.Errorf("verified bundle differs from the export")
			}
			// The payload is snapshot.Canonical's, of the bundle as encoding/json writes it.
			whole, err := snapshot.CanonicalOf(a.Sealed.Bundle)
			if err != nil || !bytes.Equal(whole, a.Sealed.Payload) {
				t.Errorf("sealed bytes are not snapshot.CanonicalOf(bundle) (%v)", err)
			}
			// The bundle hash is the payload's SHA-256.
			if sum := sha256.Sum256(a.Sealed.Payload); hex.EncodeToString(sum[:]) != a.Sealed.Hash {
				t.Errorf("hash %s is not the payload's SHA-256", a.Sealed.Hash)
			}
			// Decoding and sealing again gives the same bytes.
			resealed, err := bundle.Seal(v.Bundle)
			if err != nil {
				t.Fatal(err)
			}
			if resealed.Hash != a.Sealed.Hash {
				t.Errorf("decoded bundle seals to %s, want %s", resealed.Hash, a.Sealed.Hash)
			}
			if _, err := bundle.VerifyUnsigned(data); err != nil {
				t.Errorf("VerifyUnsigned: %v", err)
			}
			if err := bundle.Check(v.Bundle); err != nil {
				t.Errorf("Check: %v", err)
			}
		})
	}
	// An unsigned export verifies unsigned, and not as signed.
	unsigned, _ := export.New(f.Store)
	data, _ := exportJSON(t, unsigned, bundle.TypeEvidence, export.Request{TenantID: "acme", IncidentID: "INC-0001"})
	if !bytes.Contains(data, []byte(`"signatures":[]`)) {
		t.Errorf("unsigned envelope: %.200s…", data)
	}
	if _, err := bundle.VerifyUnsigned(data); err != nil {
		t.Errorf("VerifyUnsigned of an unsigned export: %v", err)
	}
	if _, err := bundle.Verify(data, f.Pub); !errors.Is(err, bundle.ErrUnsigned) {
		t.Errorf("Verify of an unsigned export: %v", err)
	}
	if _, err := bundle.Verify(data, f.Pub[:5]); err == nil || errors.Is(err, bundle.ErrSignature) {
		t.Errorf("Verify with a short key: %v", err)
	}
}

// TestGolden pins the envelope format with files in testdata: a signed
// evidence bundle, the issuer's public key, and tampered copies, each
// with the failures it must report. go test -run TestGolden -update
// rewrites them.
func TestGolden(t *testing.T) {
	f := fixture.New(t, nil)
	req := inc1("alice")
	req.Reason = "golden"
	data, _ := exportJSON(t, f.Exp, bundle.TypeEvidence, req)
	pubPEM, _ := bundle.MarshalPublicKey(f.Pub)
	tampered := func(mutate func(e *env)) []byte {
		e := decodeEnv(t, data)
		mutate(e)
		e.encode(t)
		e.resign(t, f.Key)
		return e.bytes(t)
	}
	files := map[string][]byte{
		"evidence.pub":               pubPEM,
		"evidence.json":              data,
		"tampered-step-changed.json": tampered(func(e *env) { e.record(4)["tool"] = "search"; e.item("steps", 3)["tool"] = "search" }),
		"tampered-step-removed.json": tampered(func(e *env) { e.bundle()["chain"] = append(e.list("chain")[:3:3], e.list("chain")[4:]...) }),
		"tampered-reordered.json":    tampered(func(e *env) { c := e.list("chain"); c[1], c[2] = c[2], c[1] }),
		"tampered-snapshot.json": tampered(func(e *env) {
			e.bundle()["snapshot"].(map[string]any)["policies"].([]any)[2].(map[string]any)["kind"] = "tool_denylist"
		}),
		"tampered-trailing-data.json": append(bytes.Clone(data), "garbage"...),
		"tampered-payload.json": func() []byte {
			e := decodeEnv(t, data)
			e.setPayload(bytes.Replace(e.payload(t), []byte(`"export_reason":"golden"`), []byte(`"export_reason":"GOLDEN"`), 1))
			return e.bytes(t)
		}(),
		"tampered-other-key.json": func() []byte {
			e := decodeEnv(t, data)
			e.resign(t, fixture.Key("other"))
			return e.bytes(t)
		}(),
		"tampered-step-evidence.json": tampered(func(e *env) { e.item("steps", 3)["is_inflection"] = false }),
	}
	want := map[string][]string{
		"evidence.json":               nil,
		"tampered-step-changed.json":  {"ErrChain", "ErrRecordChanged"},
		"tampered-step-removed.json":  {"ErrChain", "ErrRecordMissing"},
		"tampered-reordered.json":     {"ErrChain", "ErrRecordsReordered"},
		"tampered-snapshot.json":      {"ErrSnapshot"},
		"tampered-trailing-data.json": {"ErrMalformed", "ErrTrailingData"},
		"tampered-payload.json":       {"ErrSignature"},
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
	if !bytes.Equal(golden, data) {
		t.Errorf("evidence envelope differs from testdata/evidence.json (format change? rerun with -update and review the diff)")
	}
	pub, err := bundle.ReadPublicKeyFile(filepath.Join("testdata", "evidence.pub"))
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", name))
			if err != nil {
				t.Fatal(err)
			}
			_, err = bundle.Verify(data, pub)
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
	f.Add([]byte(`{"payload":"eyJidW5kbGVfdHlwZSI6ImV2aWRlbmNlIn0=","payloadType":"` + bundle.PayloadType + `","signatures":[]}`))
	f.Add([]byte(`{}`))
	pub, err := bundle.ReadPublicKeyFile(filepath.Join("testdata", "evidence.pub"))
	if err != nil {
		f.Skip("no testdata/evidence.pub")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := bundle.Verify(data, pub)
		if (v == nil) == (err == nil) {
			t.Fatalf("Verify returned %v and %v", v, err)
		}
		if err != nil && len(matched(err)) == 0 {
			t.Fatalf("error matches no sentinel: %v", err)
		}
	})
}

func base64URL(p []byte) string { return base64.URLEncoding.EncodeToString(p) }
