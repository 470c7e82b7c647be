package snapshot_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/snapshot"
)

func TestCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"b":1,"a":2}`, `{"a":2,"b":1}`},
		{` { "a" : [ 1 , 2.50 , 1e3, -0, 0.000001, 1e21, 1E-7 ] } `, `{"a":[1,2.5,1000,0,0.000001,1e+21,1e-7]}`},
		{`{"s":"<&>\u00e9\u2028\n\b\f\u0001\u001f\u007f"}`, "{\"s\":\"<&>é\u2028\\n\\b\\f\\u0001\\u001f\u007f\"}"},
		{`{"z":{"y":null,"x":true},"a":false}`, `{"a":false,"z":{"x":true,"y":null}}`},
		{`[]`, `[]`},
	}
	for _, tc := range tests {
		got, err := snapshot.Canonical([]byte(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if string(got) != tc.want {
			t.Errorf("Canonical(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`"\ud800"`, ``, `{`, `{"a":1} x`, `{"a":1e400}`, strings.Repeat("[", 200) + strings.Repeat("]", 200)} {
		if _, err := snapshot.Canonical([]byte(bad)); !errors.Is(err, snapshot.ErrNotCanonicalizable) {
			t.Errorf("Canonical(%.40q): got %v, want ErrNotCanonicalizable", bad, err)
		}
	}
}

func FuzzCanonical(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[1,2,{"c":"d"}]}`, `1.50`, `"\u00e9"`, `[null,true,false]`, `{"a":1e-7}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := snapshot.Canonical(data)
		if err != nil {
			return
		}
		// Canonical form is a fixed point and valid JSON.
		c2, err := snapshot.Canonical(c)
		if err != nil || string(c2) != string(c) {
			t.Fatalf("not a fixed point: %s -> %s (%v)", c, c2, err)
		}
		if !json.Valid(c) {
			t.Fatalf("invalid JSON: %s", c)
		}
	})
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(doc))
	f.Add([]byte(docReordered))
	f.Add([]byte(`{"tenant_id":"t","thresholds":{"a":1},"policies":[{"id":"x","kind":"k","params":{"threshold":"a"}}]}`))
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := snapshot.Parse("fuzz.json", data, t0, anyKind)
		if err != nil {
			if !errors.Is(err, snapshot.ErrInvalid) {
				t.Fatalf("error does not match ErrInvalid: %v", err)
			}
			return
		}
		if err := s.Verify(); err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		back, err := snapshot.Decode(raw)
		if err != nil || back.ID() != s.ID() {
			t.Fatalf("round trip: %v", err)
		}
	})
}
