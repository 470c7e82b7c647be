package snapshot_test

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/snapshot"
)

var t0 = time.Date(2026, 1, 20, 10, 0, 0, 0, time.UTC)

const doc = `{
  "tenant_id": "acme",
  "thresholds": {"max_tokens": 20000, "max_cost_cents": 150},
  "policies": [
    {"id": "cost-budget", "kind": "budget", "params": {"metric": "cost_cents", "threshold": "max_cost_cents"}},
    {"id": "no-ssn", "kind": "content", "params": {"fields": ["output"], "patterns": ["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}},
    {"id": "no-shell", "kind": "expression", "params": {"expr": "step.tool == 'shell'"}, "enforcement": "warn"}
  ]
}`

// The same set: keys reordered, white space changed, numbers spelt
// differently, the default enforcement written out.
const docReordered = `{"policies":[
 {"params":{"threshold":"max_cost_cents","metric":"cost_cents"},"kind":"budget","id":"cost-budget","enforcement":"block"},
 {"kind":"content","id":"no-ssn","params":{"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"],"fields":["output"]}},
 {"enforcement":"warn","params":{"expr":"step.tool == 'shell'"},"id":"no-shell","kind":"expression"}],
 "thresholds":{"max_cost_cents":1.5e2,"max_tokens":20000.0},"tenant_id":"acme"}`

func TestSameSetSameID(t *testing.T) {
	a, err := snapshot.Parse("a.json", []byte(doc), t0, anyKind)
	if err != nil {
		t.Fatal(err)
	}
	b, err := snapshot.Parse("b.json", []byte(docReordered), t0.Add(time.Hour), anyKind)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() != b.ID() || a.ContentHash() != b.ContentHash() {
		t.Errorf("same policy set, different ids: %s %s", a.ID(), b.ID())
	}
	if !strings.HasPrefix(a.ID(), "SNAP-") || len(a.ID()) != 17 || a.ID()[5:] != a.ContentHash()[:12] {
		t.Errorf("id %q does not follow SNAP-<12 hex of hash %s>", a.ID(), a.ContentHash())
	}
	if a.PolicyCount() != 3 || a.TenantID() != "acme" || !a.CreatedAt().Equal(t0) {
		t.Errorf("accessors: %d %s %v", a.PolicyCount(), a.TenantID(), a.CreatedAt())
	}
	// Order of policies is meaningful (first Block decides): a different
	// order is a different snapshot.
	ps := a.Policies()
	ps[0], ps[1] = ps[1], ps[0]
	c, err := snapshot.New("acme", ps, a.Thresholds(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID() == a.ID() {
		t.Error("reordered policies gave the same id")
	}
}

// TestGoldenHash pins the hash formula: sha256(canonical(policies) ||
// canonical(thresholds)). A change here breaks every stored snapshot id.
func TestGoldenHash(t *testing.T) {
	s, err := snapshot.New("acme", []snapshot.Policy{{ID: "p", Kind: "budget", Params: json.RawMessage(`{"threshold":"t","metric":"steps"}`)}},
		snapshot.Thresholds{"t": 3}, t0)
	if err != nil {
		t.Fatal(err)
	}
	// canonical(policies) = [{"enforcement":"block","id":"p","kind":"budget","params":{"metric":"steps","threshold":"t"}}]
	// canonical(thresholds) = {"t":3}
	const want = "SNAP-43d251ec9598" // computed independently: python3 hashlib.sha256 of the two strings above
	if s.ID() != want {
		t.Logf("hash %s", s.ContentHash())
		t.Errorf("id = %s, want %s", s.ID(), want)
	}
}

func TestImmutable(t *testing.T) {
	s, err := snapshot.Parse("a.json", []byte(doc), t0, anyKind)
	if err != nil {
		t.Fatal(err)
	}
	ps := s.Policies()
	ps[0].ID = "changed"
	ps[0].Params[2] = 'X'
	th := s.Thresholds()
	th["max_cost_cents"] = 1e9
	if err := s.Verify(); err != nil {
		t.Errorf("changing copies changed the snapshot: %v", err)
	}
	if p, _ := s.Policy("cost-budget"); p.ID != "cost-budget" {
		t.Error("policy changed through a copy")
	}
}

func TestJSONRoundTripAndVerify(t *testing.T) {
	s, err := snapshot.Parse("a.json", []byte(doc), t0, anyKind)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, field := range []string{`"snapshot_id"`, `"tenant_id"`, `"content_hash"`, `"policy_count"`, `"created_at"`, `"policies"`, `"thresholds"`} {
		if !strings.Contains(string(raw), field) {
			t.Errorf("JSON lacks %s: %s", field, raw)
		}
	}
	back, err := snapshot.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s.Policies(), back.Policies()); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	// Any change of content is detected.
	tampered := []struct{ name, from, to string }{
		{"threshold", `"max_cost_cents":150`, `"max_cost_cents":151`},
		{"policy param", `"cost_cents"`, `"tokens"`},
		{"enforcement", `"enforcement":"warn"`, `"enforcement":"monitor"`},
		{"policy id", `"no-ssn"`, `"no-sn"`},
		{"hash", s.ContentHash()[:8], "00000000"},
		{"id", s.ID(), "SNAP-000000000000"},
	}
	for _, tc := range tampered {
		t.Run(tc.name, func(t *testing.T) {
			bad := strings.Replace(string(raw), tc.from, tc.to, 1)
			if bad == string(raw) {
				t.Fatalf("%q not found in %s", tc.from, raw)
			}
			_, err := snapshot.Decode([]byte(bad))
			var hm *snapshot.HashMismatchError
			if !errors.Is(err, snapshot.ErrHashMismatch) || !errors.As(err, &hm) {
				t.Errorf("tampered %s: got %v, want a HashMismatchError", tc.name, err)
			}
		})
	}
	if _, err := snapshot.Decode([]byte(strings.Replace(string(raw), `"policy_count":3`, `"policy_count":2`, 1))); !errors.Is(err, snapshot.ErrHashMismatch) {
		t.Errorf("policy count changed: %v", err)
	}
}

// TestBadFiles checks that every bad policy file in testdata/bad gets an
// error naming the file, the policy (or threshold) and the field.
func TestBadFiles(t *testing.T) {
	tests := []struct {
		file, policy, threshold, field, msg string
	}{
		{"malformed.json", "", "", "", "line 4, column"},
		{"trailing.json", "", "", "", "trailing data"},
		{"empty.json", "", "", "", "empty document"},
		{"no-tenant.json", "", "", "tenant_id", "missing"},
		{"no-policies.json", "", "", "policies", "missing"},
		{"unknown-field.json", "", "", "thresholdz", `unknown key`},
		{"missing-threshold.json", "cost", "", "params.threshold", `"max_cost", which is not defined`},
		{"negative-limit.json", "", "max_steps", "", "negative"},
		{"string-limit.json", "", "max_steps", "", "not a number"},
		{"null-limit.json", "", "max_steps", "", "null"},
		{"duplicate-id.json", "steps", "", "id", "duplicate policy id"},
		{"bad-enforcement.json", "steps", "", "enforcement", `unknown mode "audit"`},
		{"missing-kind.json", "steps", "", "kind", "missing"},
		{"policy-unknown-field.json", "steps", "", "param", `unknown key`},
		{"params-not-object.json", "steps", "", "params", "must be a JSON object"},
		{"missing-id.json", "", "", "id", "missing"},
		// A reviewer reads one value, encoding/json would run another.
		{"duplicate-thresholds.json", "", "", "thresholds", `duplicated key "thresholds"`},
		{"case-variant-enforcement.json", "steps", "", "Enforcement", `duplicated key: "enforcement" and "Enforcement"`},
		{"case-variant-kind.json", "steps", "", "Kind", `differs from a known field only in case: "kind" and "Kind"`},
		{"case-variant-tenant.json", "", "", "TENANT_ID", `duplicated key: "tenant_id" and "TENANT_ID"`},
		{"duplicate-threshold-name.json", "", "max_steps", "", `duplicated key`},
		{"duplicate-param.json", "steps", "", "params.metric", `duplicated key "metric"`},
		{"inexact-integer.json", "", "max_tokens", "", "cannot be held exactly"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			path := filepath.Join("testdata", "bad", tc.file)
			_, err := snapshot.Load(path, t0, anyKind)
			var ve *snapshot.ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, snapshot.ErrInvalid) {
				t.Fatalf("got %v, want a ValidationError", err)
			}
			if ve.File != path || ve.PolicyID != tc.policy || ve.Threshold != tc.threshold || ve.Field != tc.field {
				t.Errorf("error names file %q policy %q threshold %q field %q; want %q %q %q %q (%v)",
					ve.File, ve.PolicyID, ve.Threshold, ve.Field, path, tc.policy, tc.threshold, tc.field, err)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), path) {
				t.Errorf("message %q lacks %q or the file name", err, tc.msg)
			}
		})
	}
}

func TestNewRejectsNonFiniteThresholds(t *testing.T) {
	p := []snapshot.Policy{{ID: "p", Kind: "budget", Params: json.RawMessage(`{"metric":"steps","threshold":"t"}`)}}
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1), -1} {
		_, err := snapshot.New("acme", p, snapshot.Thresholds{"t": v}, t0)
		var ve *snapshot.ValidationError
		if !errors.As(err, &ve) || ve.Threshold != "t" {
			t.Errorf("threshold %v: got %v", v, err)
		}
	}
	if _, err := snapshot.New("", p, snapshot.Thresholds{"t": 1}, t0); !errors.Is(err, snapshot.ErrInvalid) {
		t.Errorf("empty tenant: %v", err)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := snapshot.Load(filepath.Join(t.TempDir(), "nope.json"), t0, anyKind)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("got %v, want os.ErrNotExist", err)
	}
}

// anyKind is a Checker that accepts every kind and parameter: these tests
// are about what the snapshot package itself checks.
var anyKind = snapshot.Checker(checkerFunc(func(snapshot.Policy, snapshot.Thresholds) error { return nil }))

type checkerFunc func(p snapshot.Policy, th snapshot.Thresholds) error

func (f checkerFunc) CheckPolicy(p snapshot.Policy, th snapshot.Thresholds) error { return f(p, th) }

// TestCheckerNamesFileAndPolicy: what the kinds refuse is refused by
// Parse, with the file, the policy and the field the kind names.
func TestCheckerNamesFileAndPolicy(t *testing.T) {
	regexCheck := checkerFunc(func(p snapshot.Policy, _ snapshot.Thresholds) error {
		if p.Kind == "content" {
			return &snapshot.FieldError{Field: "params.patterns[0]", Err: errors.New("missing closing )")}
		}
		return nil
	})
	_, err := snapshot.Parse("policies.json", []byte(doc), t0, regexCheck)
	var ve *snapshot.ValidationError
	if !errors.As(err, &ve) || ve.File != "policies.json" || ve.PolicyID != "no-ssn" || ve.Index != 1 || ve.Field != "params.patterns[0]" {
		t.Fatalf("got %v", err)
	}
	if got, want := err.Error(), `policies.json: policy "no-ssn" (#1): params.patterns[0]: missing closing )`; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if _, err := snapshot.Parse("policies.json", []byte(doc), t0, nil); err == nil {
		t.Error("Parse without kinds succeeded")
	}
}
