package snapshot_test

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/snapshot"
)

// Hostile input to the snapshot package: JSON nested far deeper than any
// policy set (in a file, in stored snapshots, for Canonical), and NaN and
// ±Inf thresholds from Go callers. Each is refused with an error, never a
// stack overflow; the depths go well past encoding/json's own limit
// (10,000) and the canonicalizer's (128).
func TestDeepNestingRefused(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, depth := range []int{200, 10_001, 500_000} {
		objs := strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth)
		arrs := strings.Repeat("[", depth) + strings.Repeat("]", depth)
		for _, doc := range []string{objs, arrs} {
			if _, err := snapshot.Canonical([]byte(doc)); !errors.Is(err, snapshot.ErrNotCanonicalizable) {
				t.Errorf("Canonical of %d levels: %v", depth, err)
			}
			file := `{"tenant_id":"acme","thresholds":{},"policies":[{"id":"deep","kind":"k","params":{"x":` + doc + `}}]}`
			_, err := snapshot.Parse("deep.json", []byte(file), t0, anyKind)
			var ve *snapshot.ValidationError
			if !errors.As(err, &ve) {
				t.Errorf("Parse of params %d levels deep: %v", depth, err)
			} else if depth < 10_000 && (ve.PolicyID != "deep" || ve.Field != "params") {
				t.Errorf("Parse of params %d levels deep does not name the policy and field: %v", depth, err)
			}
			stored := `{"snapshot_id":"SNAP-000000000000","tenant_id":"acme","content_hash":"","policy_count":1,"created_at":"2026-01-01T00:00:00Z",` +
				`"policies":[{"id":"deep","kind":"k","params":{"x":` + doc + `}}],"thresholds":{}}`
			if _, err := snapshot.Decode([]byte(stored)); err == nil {
				t.Errorf("Decode of a stored snapshot %d levels deep succeeded", depth)
			}
		}
	}
}

func TestNonFiniteThresholdsRefused(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, err := snapshot.New("acme", []snapshot.Policy{{ID: "p", Kind: "budget", Params: json.RawMessage(`{"threshold":"max"}`)}},
			snapshot.Thresholds{"max": v}, t0)
		var ve *snapshot.ValidationError
		if !errors.As(err, &ve) || ve.Threshold != "max" || !strings.Contains(err.Error(), "finite") {
			t.Errorf("threshold %v: %v", v, err)
		}
	}
	// JSON has no NaN or Infinity; a number too large for float64 is
	// refused as not a number.
	for _, lit := range []string{"NaN", "Infinity", "-Infinity", "1e400", `"1"`} {
		doc := `{"tenant_id":"acme","thresholds":{"max":` + lit + `},"policies":[{"id":"p","kind":"budget","params":{"threshold":"max"}}]}`
		if _, err := snapshot.Parse("t.json", []byte(doc), t0, anyKind); !errors.Is(err, snapshot.ErrInvalid) {
			t.Errorf("threshold %s: %v", lit, err)
		}
	}
}

// TestInvalidUTF8Canonical: a string with invalid UTF-8 has one canonical
// form, with U+FFFD for each bad byte, and decoding and encoding it again
// gives the same bytes (so a record holding one verifies).
func TestInvalidUTF8Canonical(t *testing.T) {
	for _, s := range []string{"\xff", "a\xfe\xffb", "\xed\xa0\x80", "ok é \x80"} {
		enc := snapshot.AppendString(nil, s)
		var back string
		if err := json.Unmarshal(enc, &back); err != nil {
			t.Fatal(err)
		}
		if again := snapshot.AppendString(nil, back); string(again) != string(enc) {
			t.Errorf("%q: encoded %s, again %s", s, enc, again)
		}
		canon, err := snapshot.Canonical(enc)
		if err != nil || string(canon) != string(enc) {
			t.Errorf("%q: AppendString %s is not canonical (%s, %v)", s, enc, canon, err)
		}
	}
}
