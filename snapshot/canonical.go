package snapshot

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/stopline/stopline/internal/strictjson"
)

// ErrNotCanonicalizable is returned by Canonical for input that has no
// canonical form: invalid JSON, trailing data, or a number outside float64.
var ErrNotCanonicalizable = errors.New("snapshot: value has no canonical JSON form")

// Canonical returns the canonical JSON encoding of the JSON document data,
// as RFC 8785 (the JSON Canonicalization Scheme, JCS) defines it: object
// keys sorted by their UTF-16 code units, no insignificant white space,
// strings escaped as ECMAScript's JSON.stringify escapes them (only '"',
// '\' and control characters, \b \t \n \f \r in short form), and every
// number written as ECMAScript writes a double (the shortest decimal that
// round-trips, without exponent for magnitudes in [1e-6, 1e21), else as
// 1e+21 or 1.5e-7). Two documents that differ only in key order, white
// space, escapes or number spelling have the same canonical form, and any
// JCS implementation computes it: every stopline hash over JSON (snapshots,
// records, contents, bundles) can be checked by tools no one here wrote.
//
// A document with a key written twice, or two keys equal ignoring case,
// has no canonical form (readers disagree on it), nor has invalid UTF-8,
// a number outside float64, or nesting deeper than 128 levels.
func Canonical(data []byte) ([]byte, error) {
	// A key written twice (or in two cases) has no one canonical form:
	// one reader takes the first, another the last.
	if err := strictjson.Check(data); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotCanonicalizable, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCanonicalizable, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after JSON value", ErrNotCanonicalizable)
	}
	var buf bytes.Buffer
	if err := appendCanonical(&buf, v, 0); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CanonicalOf marshals v with encoding/json and returns its canonical form.
func CanonicalOf(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotCanonicalizable, err)
	}
	return Canonical(raw)
}

// maxDepth bounds nesting so hostile input cannot exhaust the stack.
const maxDepth = 128

func appendCanonical(buf *bytes.Buffer, v any, depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("%w: nested deeper than %d levels", ErrNotCanonicalizable, maxDepth)
	}
	switch x := v.(type) {
	case nil:
		buf.WriteString("null")
	case bool:
		if x {
			buf.WriteString("true")
		} else {
			buf.WriteString("false")
		}
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil {
			return fmt.Errorf("%w: number %s: %v", ErrNotCanonicalizable, x, err)
		}
		buf.Write(AppendNumber(nil, f))
	case string:
		buf.Write(AppendString(nil, x))
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := appendCanonical(buf, e, depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		SortKeys(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			buf.Write(AppendString(nil, k))
			buf.WriteByte(':')
			if err := appendCanonical(buf, x[k], depth+1); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	default:
		return fmt.Errorf("%w: unexpected %T", ErrNotCanonicalizable, v)
	}
	return nil
}

// AppendNumber appends the canonical spelling of f. f must be finite; NaN
// and infinities are written as null, which no stopline value ever holds
// because constructors reject them.
func AppendNumber(dst []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(dst, "null"...)
	}
	if f == 0 {
		return append(dst, '0') // also folds -0
	}
	abs := math.Abs(f)
	if abs >= 1e-6 && abs < 1e21 {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	// Exponent without zero padding, as ECMAScript writes it: 1e-7, 1e+21.
	b := strconv.AppendFloat(nil, f, 'e', -1, 64)
	if i := len(b) - 2; i > 0 && b[i] == '0' && (b[i-1] == '-' || b[i-1] == '+') {
		b = append(b[:i], b[i+1])
	}
	return append(dst, b...)
}

// SortKeys sorts object keys in canonical order: by their UTF-16 code
// units (RFC 8785, section 3.2.3), which is byte order except where a
// character above U+FFFF meets one in U+E000–U+FFFF.
func SortKeys(keys []string) { slices.SortFunc(keys, CompareKeys) }

// CompareKeys orders two keys as SortKeys does.
func CompareKeys(a, b string) int {
	for i := 0; i < len(a) && i < len(b); {
		if a[i] == b[i] {
			i++
			continue
		}
		// The first differing byte is where the code points differ: from
		// its code point's start, compare UTF-16 code units.
		for i > 0 && !utf8.RuneStart(a[i]) {
			i--
		}
		ra, _ := utf8.DecodeRuneInString(a[i:])
		rb, _ := utf8.DecodeRuneInString(b[i:])
		return cmp.Compare(utf16Key(ra), utf16Key(rb))
	}
	return cmp.Compare(len(a), len(b))
}

// utf16Key orders a code point by its first UTF-16 code unit (then by the
// code point, which orders the second unit the same way).
func utf16Key(r rune) uint64 {
	if r >= 0x10000 {
		hi, _ := utf16.EncodeRune(r)
		return uint64(hi)<<21 | uint64(r)
	}
	return uint64(r) << 21
}

const hexDigits = "0123456789abcdef"

// AppendString appends s as a canonical (RFC 8785) JSON string. Each
// invalid UTF-8 byte is replaced by U+FFFD, written as the character
// itself (as the canonical form of "\ufffd" is), so that decoding and
// encoding again gives the same bytes.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\uFFFD"...)
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
