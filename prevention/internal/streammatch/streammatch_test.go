package streammatch

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

// chunks splits text at the lengths cuts gives (0 to 6 bytes each, in
// turn, the last chunk taking the rest): empty appends, and appends
// that cut a rune, included.
func chunks(text string, cuts []byte) []string {
	var out []string
	for i := 0; len(text) > 0; i++ {
		n := len(text)
		if i < len(cuts) {
			n = min(int(cuts[i]%7), len(text))
		}
		out = append(out, text[:n])
		text = text[n:]
	}
	return out
}

// checkChunks feeds text to a state of expr append by append and checks
// that Match agrees with regexp.MatchString on the text so far after
// every one, the empty text first.
func checkChunks(t *testing.T, expr, text string, cuts []byte) {
	t.Helper()
	re, err := regexp.Compile(expr)
	if err != nil {
		if _, merr := Compile(expr); merr == nil {
			t.Fatalf("%q: regexp refuses it (%v), Compile takes it", expr, err)
		}
		return
	}
	m, err := Compile(expr)
	if err != nil {
		t.Fatalf("Compile(%q): %v", expr, err)
	}
	s := m.NewState()
	so := ""
	if got, want := s.Match(), re.MatchString(""); got != want {
		t.Fatalf("%q on the empty text: Match %v, regexp %v", expr, got, want)
	}
	for i, c := range chunks(text, cuts) {
		s.Feed(c)
		so += c
		if got, want := s.Match(), re.MatchString(so); got != want {
			t.Fatalf("%q on %q (append %d, %q): Match %v, regexp %v", expr, so, i, c, got, want)
		}
	}
}

func TestMatchChunked(t *testing.T) {
	exprs := []string{
		`a`, `abc`, `a.*b`, `(?s)a.*b`, `password\s*[:=]`, `(?i)password\s*[:=]`, `AKIA[0-9A-Z]{16}`,
		`\b\d{3}-\d{2}-\d{4}\b`, `^abc`, `abc$`, `(?m)^abc$`, `\Aab`, `ab\z`, `\bfoo\b`, `\Bo\B`, `x*`, `^`, `$`,
		`^$`, `(?m)^$`, `\b`, `\B`, `a|b|^c`, `(a|b)*c`, `é+`, `[^a]`, `\x{FFFD}`, `.`, `(?i)k`, `(?i)ſ`, `[α-ω]+x`,
		`(?U)a+?b`, `a{2,5}b`, `(?:)`, `[^\x00-\x{10FFFF}]`, `a\z|b`, `(?m)a$|^b`, `x\b`, `\bx`,
	}
	texts := []string{
		"", "a", "ab", "abc", "xabcx", "The password: 1", "PASSWORD = x", "AKIA0123456789ABCDEF", "id 123-45-6789.",
		"a\nabc\nb", "foo bar", "é é\xe2\x82\xac\xe2\x82", "\xff\xfe", "ab\n", "kK\u212a", "ſ", "λx", "aaab", "xx x",
		"c\nb", "xa", "a\nb",
	}
	cuts := [][]byte{nil, {1}, {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, {2, 0, 3, 1, 2}, {4, 4, 4, 4}}
	for _, e := range exprs {
		for _, tx := range texts {
			for _, c := range cuts {
				checkChunks(t, e, tx, c)
			}
		}
	}
}

// TestCopyFrom: a copy goes on as the original would.
func TestCopyFrom(t *testing.T) {
	m, _ := Compile(`a.*b$`)
	s, c := m.NewState(), m.NewState()
	s.Feed("xa\xe2")
	c.CopyFrom(s)
	s.Feed("\x82\xacb")
	c.Feed("\x82\xacb")
	if !s.Match() || !c.Match() {
		t.Fatal("no match after the copy")
	}
	c.Feed("c")
	if c.Match() || !s.Match() {
		t.Fatal("the copy and the original share state")
	}
	c.Reset()
	if c.Match() {
		t.Fatal("a match after Reset")
	}
}

// genPattern builds a pattern from g: atoms (literals of the fuzz
// alphabet, classes, assertions, the fuzzer's own piece), repeats,
// groups with flags, alternations and empty branches.
func genPattern(g []byte, piece string) string {
	var b strings.Builder
	pos := 0
	next := func() int {
		if pos >= len(g) {
			return -1
		}
		pos++
		return int(g[pos-1])
	}
	atoms := []string{`a`, `b`, `x`, ` `, `\n`, `é`, `_`, `1`, `.`, `[a-c]`, `[^a]`, `\d`, `\w`, `\s`, `\W`,
		`\b`, `\B`, `^`, `$`, `\A`, `\z`, `\x{FFFD}`, `(?i:k)`, `(?i:A)`, `[é-ü]`, `(?:)`}
	repeats := []string{`*`, `+`, `?`, `{2}`, `{1,3}`, `{0,2}`, `*?`, `{2,}`}
	flags := []string{`(?m)`, `(?s)`, `(?i)`, `(?ms)`, `(?U)`}
	depth := 0
	for {
		c := next()
		if c < 0 {
			break
		}
		switch op := c % 16; {
		case op < 8:
			b.WriteString(atoms[c/16%len(atoms)])
		case op == 8:
			if piece != "" {
				b.WriteString("(?:" + piece + ")")
			}
		case op == 9 || op == 10:
			s := b.String()
			if s != "" && !strings.HasSuffix(s, "(") && !strings.HasSuffix(s, "|") && !strings.HasSuffix(s, ")") {
				b.WriteString(repeats[c/16%len(repeats)])
			}
		case op == 11:
			b.WriteString("|")
		case op == 12:
			if depth < 4 {
				b.WriteString("(")
				depth++
			}
		case op == 13:
			if depth > 0 {
				b.WriteString(")")
				depth--
				if c/16%2 == 0 {
					b.WriteString(repeats[c/64%len(repeats)])
				}
			}
		case op == 14:
			b.WriteString(flags[c/16%len(flags)])
		default:
			b.WriteString("(?:" + atoms[c/16%len(atoms)] + "|" + atoms[(c/4)%len(atoms)] + ")")
		}
	}
	for ; depth > 0; depth-- {
		b.WriteString(")")
	}
	return b.String()
}

// FuzzMatchChunked checks that a State fed a text append by append
// reports a match after exactly the appends after which
// regexp.MatchString of the text so far does, for patterns built by a
// small grammar (anchors, \b, (?m), (?s), (?i), unbounded repeats,
// alternations, empty matches) around a piece the fuzzer writes, on text
// cut into appends of 0 to 6 bytes (runes cut in two, invalid UTF-8).
func FuzzMatchChunked(f *testing.F) {
	f.Add([]byte{0x10, 0x19, 0x20}, "", "xaab\nb", []byte{1, 2, 3})
	f.Add([]byte{0x01, 0x09, 0x11}, `password\s*[:=]`, "my password = 1", []byte{3, 3, 3})
	f.Add([]byte{0x0e, 0x08, 0x13}, `^a$`, "b\na\n", []byte{1, 1, 1, 1})
	f.Add([]byte{0x8f, 0x9b, 0xa0}, `\bé\b`, "x é\xe2\x82", []byte{2, 1, 1})
	f.Add([]byte{0x50, 0x08}, `[^\n]*x`, "aaaaaaaaax", []byte{4, 0, 6})
	f.Add([]byte{0x3e, 0x08, 0x0c, 0x01, 0x0b, 0x60, 0x0d}, `(?i)k`, "\u212a_é", []byte{1, 1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, g []byte, piece, text string, cuts []byte) {
		if len(g) > 64 || len(piece) > 64 || len(text) > 512 {
			return
		}
		if _, err := regexp.Compile(piece); err != nil {
			piece = regexp.QuoteMeta(piece)
		}
		if !utf8.ValidString(piece) {
			piece = ""
		}
		expr := genPattern(g, piece)
		checkChunks(t, expr, text, cuts)
	})
}
