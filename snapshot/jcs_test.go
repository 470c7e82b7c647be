package snapshot_test

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gowebpki/jcs"

	"github.com/stopline/stopline/snapshot"
)

// TestJCSVectors: every reference test vector of RFC 8785 canonicalizes
// to exactly its expected bytes.
func TestJCSVectors(t *testing.T) {
	inputs, err := filepath.Glob(filepath.Join("testdata", "jcs", "input", "*.json"))
	if err != nil || len(inputs) < 10 {
		t.Fatalf("test vectors: %v (%d)", err, len(inputs))
	}
	for _, in := range inputs {
		name := filepath.Base(in)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(in)
			if err != nil {
				t.Fatal(err)
			}
			want, err := os.ReadFile(filepath.Join("testdata", "jcs", "output", name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := snapshot.Canonical(data)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("got  %s\nwant %s", got, want)
			}
		})
	}
}

// TestJCSNumbers: the IEEE 754 examples of RFC 8785, Appendix B.
func TestJCSNumbers(t *testing.T) {
	for bits, want := range map[uint64]string{
		0x0000000000000000: "0",
		0x8000000000000000: "0",
		0x0000000000000001: "5e-324",
		0x8000000000000001: "-5e-324",
		0x7fefffffffffffff: "1.7976931348623157e+308",
		0xffefffffffffffff: "-1.7976931348623157e+308",
		0x4340000000000000: "9007199254740992",
		0xc340000000000000: "-9007199254740992",
		0x4430000000000000: "295147905179352830000",
		0x44b52d02c7e14af5: "9.999999999999997e+22",
		0x44b52d02c7e14af6: "1e+23",
		0x44b52d02c7e14af7: "1.0000000000000001e+23",
		0x444b1ae4d6e2ef4e: "999999999999999700000",
		0x444b1ae4d6e2ef4f: "999999999999999900000",
		0x444b1ae4d6e2ef50: "1e+21",
		0x3eb0c6f7a0b5ed8c: "9.999999999999997e-7",
		0x3eb0c6f7a0b5ed8d: "0.000001",
		0x41b3de4355555553: "333333333.3333332",
		0x41b3de4355555554: "333333333.33333325",
		0x41b3de4355555555: "333333333.3333333",
		0x41b3de4355555556: "333333333.3333334",
		0x41b3de4355555557: "333333333.33333343",
		0xbecbf647612f3696: "-0.0000033333333333333333",
		0x43143ff3c1cb0959: "1424953923781206.2",
	} {
		f := math.Float64frombits(bits)
		if got := string(snapshot.AppendNumber(nil, f)); got != want {
			t.Errorf("%016x (%v): got %s, want %s", bits, f, got, want)
		}
	}
}

// TestJCSKeyOrder: keys sort by UTF-16 code units, so a character above
// U+FFFF (a surrogate pair, D83D...) comes before U+FB33.
func TestJCSKeyOrder(t *testing.T) {
	keys := []string{"\ufb33", "\U0001F600", "\u20ac", "1", "\r", "\u0080", "\u00f6"}
	snapshot.SortKeys(keys)
	want := []string{"\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001F600", "\ufb33"}
	if strings.Join(keys, ",") != strings.Join(want, ",") {
		t.Errorf("got %q, want %q", keys, want)
	}
}

// FuzzCanonicalAgreesWithJCS: whatever both accept, this package and an
// independent implementation of RFC 8785 (github.com/gowebpki/jcs)
// canonicalize to the same bytes.
func FuzzCanonicalAgreesWithJCS(f *testing.F) {
	inputs, _ := filepath.Glob(filepath.Join("testdata", "jcs", "input", "*.json"))
	for _, in := range inputs {
		if data, err := os.ReadFile(in); err == nil {
			f.Add(data)
		}
	}
	for _, s := range []string{`{"b":[1e21,1e-7,-0,0.1,123456789012345678901234],"a":"\u2028\b\f\u007f"}`, `{"\ud83d\ude00":1,"\ufb33":2}`, `[1E400]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ours, err := snapshot.Canonical(data)
		if err != nil {
			return
		}
		theirs, err := jcs.Transform(data)
		if err != nil {
			t.Fatalf("jcs refused %q (%v), Canonical gave %s", data, err, ours)
		}
		if !bytes.Equal(ours, theirs) {
			t.Fatalf("input %q\nours   %s\ntheirs %s", data, ours, theirs)
		}
	})
}

func TestCanonicalRefusesRepeatedKeys(t *testing.T) {
	for _, doc := range []string{`{"a":1,"a":2}`, `{"x":{"k":1,"k":1}}`, `{"a":"\xff"}`} {
		if _, err := snapshot.Canonical([]byte(doc)); !errors.Is(err, snapshot.ErrNotCanonicalizable) {
			t.Errorf("Canonical(%q): %v", doc, err)
		}
	}
	// Keys that differ in case are two keys.
	if c, err := snapshot.Canonical([]byte(`{"a":1,"A":2}`)); err != nil || string(c) != `{"A":2,"a":1}` {
		t.Errorf("case pair: %s %v", c, err)
	}
}
