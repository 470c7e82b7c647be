// Package strictjson reads JSON the way every reader of it will: it
// refuses the documents that two JSON parsers can read differently.
//
// encoding/json takes the last of a duplicated key and matches object
// keys to struct fields ignoring case; other readers (the official LLM
// SDKs, built on gjson, a verifier written in another language, a person)
// take the first and match exactly; encoding/json replaces invalid UTF-8,
// other readers keep the bytes; encoding/json reads an unpaired surrogate
// escape as U+FFFD, gjson pairs it with the escape that follows. A document that every reader reads the
// same way is valid UTF-8, has no unpaired surrogate escape, has no key
// written twice, and, where it is read
// into a struct, no two keys equal ignoring case and no key that matches a
// field only ignoring case.
// Unmarshal refuses the others, naming where, and then decodes with
// encoding/json: for what is left, its reading is every reader's reading.
//
// It uses only the standard library, so that the domain packages (which
// may import nothing else) can use it.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// Sentinels matched by the *Error that Unmarshal and Check return.
var (
	// ErrDuplicateKey: an object has a key twice (or, read into a struct,
	// two keys equal ignoring case).
	ErrDuplicateKey = errors.New("duplicated key")
	// ErrCaseVariant: a key matches a field only ignoring case.
	ErrCaseVariant = errors.New("key differs from a known field only in case")
	// ErrUnknownKey: a key that names no field (with DisallowUnknownFields).
	ErrUnknownKey = errors.New("unknown key")
	// ErrTooDeep: nesting deeper than MaxDepth.
	ErrTooDeep = errors.New("nested too deeply")
	// ErrSyntax: not exactly one well-formed JSON value.
	ErrSyntax = errors.New("malformed JSON")
)

// MaxDepth bounds the nesting of the documents read, so that hostile input
// cannot exhaust the stack.
const MaxDepth = 512

// Error says where a document is ambiguous. It matches one of the
// sentinels above.
type Error struct {
	// Path locates the object, as in choices[0].message ("" for the top).
	Path string
	// Key is the offending key as written (unescaped); Other is the key or
	// field it collides with, if any.
	Key, Other string
	Err        error
}

func (e *Error) Error() string {
	where := e.Path
	if where == "" {
		if e.Key == "" {
			return e.Err.Error()
		}
		where = "the top-level object"
	}
	switch {
	case e.Key == "" && e.Other == "":
		return fmt.Sprintf("%v at %s", e.Err, where)
	case e.Other == "":
		return fmt.Sprintf("%v %q in %s", e.Err, e.Key, where)
	case e.Other == e.Key:
		return fmt.Sprintf("%v %q in %s", e.Err, e.Key, where)
	}
	return fmt.Sprintf("%v: %q and %q in %s", e.Err, e.Other, e.Key, where)
}

func (e *Error) Unwrap() error { return e.Err }

// Options change what Unmarshal accepts.
type Options struct {
	// DisallowUnknownFields refuses keys that name no field of a struct
	// (maps and untyped values take any key).
	DisallowUnknownFields bool
}

// Unmarshal decodes data into v (a non-nil pointer) with encoding/json,
// after refusing what another reader could read differently (see the
// package documentation). The errors it adds are *Error; encoding/json's
// own errors (a type mismatch) are returned as they are.
func Unmarshal(data []byte, v any, opts Options) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("strictjson: Unmarshal needs a non-nil pointer")
	}
	if err := walk(data, rv.Type().Elem(), opts); err != nil {
		return err
	}
	return json.Unmarshal(data, v)
}

// Check refuses a document that is not exactly one JSON value, is not
// valid UTF-8, or has an object with a key written twice. It decodes
// nothing.
func Check(data []byte) error {
	return walk(data, nil, Options{})
}

func walk(data []byte, t reflect.Type, opts Options) error {
	// encoding/json replaces invalid UTF-8 with U+FFFD, other readers keep
	// the bytes: a document that is not UTF-8 (RFC 8259 requires it) has
	// two readings.
	if !utf8.Valid(data) {
		return &Error{Err: fmt.Errorf("%w: invalid UTF-8", ErrSyntax)}
	}
	if err := CheckSurrogates(data); err != nil {
		return &Error{Err: err}
	}
	w := walker{dec: json.NewDecoder(bytes.NewReader(data)), opts: opts}
	w.dec.UseNumber()
	if err := w.value(t, 0); err != nil {
		return err
	}
	if _, err := w.dec.Token(); err != io.EOF {
		return &Error{Err: fmt.Errorf("%w: trailing data after the JSON value", ErrSyntax)}
	}
	return nil
}

type walker struct {
	dec  *json.Decoder
	opts Options
	path []string
}

func (w *walker) where() string { return strings.Join(w.path, "") }

func (w *walker) syntax(err error) error {
	return &Error{Path: w.where(), Err: fmt.Errorf("%w: %w", ErrSyntax, err)}
}

// value reads one value, whose Go type is t (nil: untyped).
func (w *walker) value(t reflect.Type, depth int) error {
	if depth > MaxDepth {
		return &Error{Path: w.where(), Err: ErrTooDeep}
	}
	tok, err := w.dec.Token()
	if err != nil {
		return w.syntax(err)
	}
	t = target(t)
	switch tok {
	case json.Delim('{'):
		return w.object(t, depth)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; w.dec.More(); i++ {
			w.path = append(w.path, "["+strconv.Itoa(i)+"]")
			if err := w.value(elem, depth+1); err != nil {
				return err
			}
			w.path = w.path[:len(w.path)-1]
		}
		if _, err := w.dec.Token(); err != nil { // ']'
			return w.syntax(err)
		}
	}
	return nil
}

func (w *walker) object(t reflect.Type, depth int) error {
	var fields *structFields
	var elem reflect.Type
	if t != nil {
		switch t.Kind() {
		case reflect.Struct:
			fields = fieldsOf(t)
		case reflect.Map:
			elem = t.Elem()
		}
	}
	seen := make(map[string]string)
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return w.syntax(err)
		}
		key, ok := tok.(string)
		if !ok {
			return w.syntax(fmt.Errorf("object key %v", tok))
		}
		// Into a struct, encoding/json matches keys ignoring case: two keys
		// equal ignoring case are one field read twice. Into a map (or
		// untyped), keys are kept as written: only an exact repeat is.
		folded := key
		if fields != nil {
			folded = Fold(key)
		}
		if prev, dup := seen[folded]; dup {
			return &Error{Path: w.where(), Key: key, Other: prev, Err: ErrDuplicateKey}
		}
		seen[folded] = key
		vt := elem
		if fields != nil {
			f, exact := fields.byName[key]
			switch {
			case exact:
				vt = f
			case fields.byFold[folded] != "":
				return &Error{Path: w.where(), Key: key, Other: fields.byFold[folded], Err: ErrCaseVariant}
			case w.opts.DisallowUnknownFields:
				return &Error{Path: w.where(), Key: key, Err: ErrUnknownKey}
			}
		}
		w.path = append(w.path, pathKey(w.where() == "", key))
		if err := w.value(vt, depth+1); err != nil {
			return err
		}
		w.path = w.path[:len(w.path)-1]
	}
	if _, err := w.dec.Token(); err != nil { // '}'
		return w.syntax(err)
	}
	return nil
}

func pathKey(first bool, key string) string {
	simple := key != ""
	for _, r := range key {
		if !(r == '_' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r)) {
			simple = false
			break
		}
	}
	switch {
	case !simple:
		return "[" + strconv.Quote(key) + "]"
	case first:
		return key
	}
	return "." + key
}

var (
	unmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	rawType         = reflect.TypeFor[json.RawMessage]()
)

// target is the type whose shape a value is checked against: pointers are
// followed; a type that decodes itself, or an interface, is untyped (nil).
func target(t reflect.Type) reflect.Type {
	for t != nil {
		if t == rawType || t.Kind() == reflect.Interface || reflect.PointerTo(t).Implements(unmarshalerType) {
			return nil
		}
		if t.Kind() != reflect.Pointer {
			return t
		}
		t = t.Elem()
	}
	return nil
}

type structFields struct {
	byName map[string]reflect.Type // JSON name → field type
	byFold map[string]string       // folded JSON name → JSON name
}

var fieldCache sync.Map // reflect.Type → *structFields

// fieldsOf lists the JSON names encoding/json gives t's fields.
func fieldsOf(t reflect.Type) *structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*structFields)
	}
	sf := &structFields{byName: map[string]reflect.Type{}, byFold: map[string]string{}}
	var add func(t reflect.Type)
	add = func(t reflect.Type) {
		for i := range t.NumField() {
			f := t.Field(i)
			tag := f.Tag.Get("json")
			if tag == "-" {
				continue
			}
			name, _, _ := strings.Cut(tag, ",")
			if f.Anonymous && name == "" {
				ft := f.Type
				if ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				if ft.Kind() == reflect.Struct {
					add(ft)
					continue
				}
			}
			if !f.IsExported() {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if _, ok := sf.byName[name]; !ok {
				sf.byName[name] = f.Type
				sf.byFold[Fold(name)] = name
			}
		}
	}
	add(t)
	fieldCache.Store(t, sf)
	return sf
}

// Fold returns a string such that Fold(x) == Fold(y) exactly when
// strings.EqualFold(x, y): the folding encoding/json matches keys with.
func Fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= utf8.RuneSelf || ('a' <= c && c <= 'z') {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		if 'a' <= r && r <= 'z' {
			r -= 'a' - 'A'
		} else if r >= utf8.RuneSelf {
			r = foldRune(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// foldRune is the smallest rune of r's simple case-folding orbit.
func foldRune(r rune) rune {
	for {
		r2 := unicode.SimpleFold(r)
		if r2 <= r {
			return r2
		}
		r = r2
	}
}

// CheckSurrogates refuses a \u escape of a UTF-16 surrogate that is not
// half of a pair. encoding/json turns each into U+FFFD; gjson, which the
// SDKs decode with, decodes a high surrogate together with whatever \u
// escape follows it, so that "\ud800\u0022" is one U+FFFD to the SDK and
// U+FFFD followed by a quote to encoding/json: the two readings of a tool
// call's arguments would differ. Unmarshal and Check call it; a caller
// that decodes a document without them must call it too. On a document
// that is not JSON its answer means nothing (but it does not fail).
func CheckSurrogates(data []byte) error {
	for i := 0; ; {
		j := bytes.IndexByte(data[i:], '\\')
		if j < 0 {
			return nil
		}
		i += j
		if i+1 >= len(data) {
			return nil
		}
		if data[i+1] != 'u' {
			i += 2
			continue
		}
		r := hex4(data[i+2:])
		if r < 0 {
			return nil // not JSON: the syntax check refuses it
		}
		i += 6
		switch {
		case r >= 0xD800 && r < 0xDC00:
			if i+6 <= len(data) && data[i] == '\\' && data[i+1] == 'u' {
				if lo := hex4(data[i+2:]); lo >= 0xDC00 && lo < 0xE000 {
					i += 6
					continue
				}
			}
			return fmt.Errorf("%w: an unpaired surrogate escape \\u%04x", ErrSyntax, r)
		case r >= 0xDC00 && r < 0xE000:
			return fmt.Errorf("%w: an unpaired surrogate escape \\u%04x", ErrSyntax, r)
		}
	}
}

// hex4 reads 4 hex digits; -1 if there are not.
func hex4(b []byte) rune {
	if len(b) < 4 {
		return -1
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			r = r<<4 | rune(c-'0')
		case 'a' <= c && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case 'A' <= c && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return -1
		}
	}
	return r
}
