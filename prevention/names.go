package prevention

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

// ErrInvalidName is matched by the error of CheckName.
var ErrInvalidName = errors.New("prevention: invalid name")

// CheckName refuses a tool or model name that does not look like what it
// is: one that is not valid UTF-8, or holds a character a reader cannot
// see — a control character, a format character (zero-width space and
// joiners, bidirectional controls, the byte-order mark, the soft hyphen),
// a line or paragraph separator, a variation selector or another default
// ignorable code point, a private-use or unassigned code point, or the
// replacement character U+FFFD (what a decoder leaves of bytes it could
// not read). The empty name is valid (a step with no tool).
//
// Such a name could be shown as the name of an allowed tool, or be read
// by an agent's dispatcher as one, while comparing unequal to it; the
// runner refuses it (governance.ErrInvalidStep) rather than guess.
func CheckName(name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidName, name)
	}
	for i, r := range name {
		if invisible(r) {
			return fmt.Errorf("%w: %q has the invisible or control character %U at byte %d", ErrInvalidName, name, r, i)
		}
	}
	return nil
}

func invisible(r rune) bool {
	switch {
	case r == utf8.RuneError:
		return true
	case r < 0x80:
		return r < 0x20 || r == 0x7f
	}
	// unicode.C is Cc, Cf, Cn (unassigned, noncharacters), Co and Cs.
	return unicode.In(r, unicode.C, unicode.Zl, unicode.Zp,
		unicode.Variation_Selector, unicode.Other_Default_Ignorable_Code_Point)
}

// NormalizeName is the form under which a deny list compares tool names,
// so that a look-alike of a denied name is denied too: Unicode NFKC
// (full-width and compatibility forms become their plain letters), case
// folded, NFKC again (folding can undo it), with white space trimmed at
// both ends. "Shell", " shell ", and "ｓｈｅｌｌ" all normalize to "shell".
//
// It does not map look-alikes across scripts (the Cyrillic "ѕһеll" stays
// Cyrillic): no Unicode normalization does, and an agent that dispatches
// tools by name would not take one for the other either. Names with
// invisible characters are refused before any comparison (CheckName).
func NormalizeName(name string) string {
	if isPlainLower(name) {
		return name
	}
	s := norm.NFKC.String(name)
	s = cases.Fold().String(s)
	s = norm.NFKC.String(s)
	return strings.TrimSpace(s)
}

// isPlainLower reports a name that normalization leaves as it is: ASCII
// lower-case letters, digits and punctuation, with no space at its ends.
func isPlainLower(s string) bool {
	if s == "" || s[0] == ' ' || s[len(s)-1] == ' ' {
		return s == ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || ('A' <= c && c <= 'Z') || c < 0x20 {
			return false
		}
	}
	return true
}
