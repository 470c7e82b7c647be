package streammatch

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
)

var benchTokens = []string{"The", " quarterly", " report", " lists", " 42", " shipments", " to", " 7", " regions", ";",
	" totals", " are", " in", " table", " 3", "-B", ".", " People", " asked", " about", " passwords", " and", " AWS", " keys", ".\n"}

// BenchmarkMatch compares a State with regexp on a text of 16,000
// tokens (about 96 KB) that no pattern matches: the whole text scanned
// once (feed-once, regexp-once), and checked after every token, the
// State fed each token (feed-per-token) against regexp.MatchString on
// the text so far (regexp-per-token, 1,000 tokens only: quadratic).
func BenchmarkMatch(b *testing.B) {
	var sb strings.Builder
	for i := range 16000 {
		sb.WriteString(benchTokens[i%len(benchTokens)])
	}
	text := sb.String()
	for _, expr := range []string{`\b\d{3}-\d{2}-\d{4}\b`, `(?i)password\s*[:=]`, `AKIA[0-9A-Z]{16}`, `-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*)-----END`, `a.*b\z`} {
		re := regexp.MustCompile(expr)
		m, err := Compile(expr)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%s/feed-once", expr), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			s := m.NewState()
			s.Feed(text)
			if s.Match() != re.MatchString(text) {
				b.Fatal("differs")
			}
			for b.Loop() {
				s.Reset()
				s.Feed(text)
				s.Match()
			}
		})
		b.Run(fmt.Sprintf("%s/regexp-once", expr), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			for b.Loop() {
				re.MatchString(text)
			}
		})
		b.Run(fmt.Sprintf("%s/feed-per-token", expr), func(b *testing.B) {
			b.SetBytes(int64(len(text)))
			s := m.NewState()
			for b.Loop() {
				s.Reset()
				for i := range 16000 {
					s.Feed(benchTokens[i%len(benchTokens)])
					s.Match()
				}
			}
		})
		b.Run(fmt.Sprintf("%s/regexp-per-token-1000", expr), func(b *testing.B) {
			for b.Loop() {
				n := 0
				for i := range 1000 {
					n += len(benchTokens[i%len(benchTokens)])
					re.MatchString(text[:n])
				}
			}
		})
	}
}
