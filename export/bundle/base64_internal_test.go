package bundle

import (
	"encoding/base64"
	"testing"
)

// FuzzDecodeBase64 checks decodeBase64 against its definition: standard
// or URL-safe base64 that decodes strictly and encodes back to itself.
func FuzzDecodeBase64(f *testing.F) {
	for _, s := range []string{"", "YQ==", "YQ", "YR==", "YWJj", "YW\nJj", "YW\rJj", "-_-_", "+/+/", "YWI=", "YWI", "====", "Y==="} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var want []byte
		ok := false
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
			b, err := enc.Strict().DecodeString(s)
			if err == nil && enc.EncodeToString(b) == s {
				want, ok = b, true
				break
			}
		}
		got, err := decodeBase64(s)
		if (err == nil) != ok || string(got) != string(want) {
			t.Fatalf("decodeBase64(%q) = %q, %v; by its definition %q, %v", s, got, err, want, ok)
		}
	})
}
