package llmhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/strictjson"
	"github.com/stopline/stopline/prevention"
)

// Every JSON document a provider sends is read here, the way the SDKs
// read it or refused. The SDKs decode with gjson (first of a duplicated
// key, exact-case keys, lenient about invalid JSON), this package with
// encoding/json (last of a duplicated key, keys matched ignoring case):
// strictjson refuses every document on which the two could differ.

// strictUnmarshal decodes a provider's JSON into v, refusing what two
// readers could read differently.
//
// A document every key of which is plain (lower-case ASCII letters,
// digits, "_", "-", "."; unique in its object) and whose bytes are UTF-8
// has no key that two readers could match differently: no two of its
// keys fold to the same, and none folds to a field name it is not (the
// field names read are all plain). Such a document, nearly every event a
// provider streams, is decoded by encoding/json alone, which refuses
// anything but exactly one well-formed value, as strictjson would; any
// other goes through strictjson, which decides. plainJSON is a single
// pass over the bytes, so that a stream is not read twice over.
func strictUnmarshal(data []byte, v any) error {
	if plainJSON(data) {
		if err := json.Unmarshal(data, v); err != nil {
			return err
		}
	} else if err := strictjson.Unmarshal(data, v, strictjson.Options{}); err != nil {
		return err
	}
	return strictjson.CheckSurrogates(data)
}

// plainJSON reports that data, if it is JSON, has only plain keys, none
// twice in an object, and is UTF-8 (see strictUnmarshal). It does not
// check the syntax: encoding/json does. For JSON, it reads every key as
// encoding/json does, since a key without a backslash is its bytes.
func plainJSON(data []byte) bool {
	if !utf8.Valid(data) {
		return false
	}
	const maxKeys, maxDepth = 64, 128
	var (
		keyBuf   [maxKeys][]byte
		keys     = keyBuf[:0]
		frameBuf [maxDepth]int32 // per open container: where its keys start, -1 for an array
		frames   = frameBuf[:0]
		wantKey  bool
	)
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '{':
			if len(frames) == maxDepth {
				return false
			}
			frames = append(frames, int32(len(keys)))
			wantKey = true
		case '[':
			if len(frames) == maxDepth {
				return false
			}
			frames = append(frames, -1)
			wantKey = false
		case '}', ']':
			if len(frames) == 0 {
				return false
			}
			if start := frames[len(frames)-1]; start >= 0 {
				keys = keys[:start]
			}
			frames = frames[:len(frames)-1]
			wantKey = false
		case ',':
			wantKey = len(frames) > 0 && frames[len(frames)-1] >= 0
		case '"':
			end := i + 1
			for end < len(data) && data[end] != '"' {
				if data[end] == '\\' {
					end++
				}
				end++
			}
			if end >= len(data) {
				return false
			}
			if wantKey {
				key := data[i+1 : end]
				for _, c := range key {
					if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-' || c == '.') {
						return false
					}
				}
				start := frames[len(frames)-1]
				for _, k := range keys[start:] {
					if bytes.Equal(k, key) {
						return false
					}
				}
				if len(keys) == maxKeys {
					return false
				}
				keys = append(keys, key)
				wantKey = false
			}
			i = end
		}
	}
	return true
}

// strictCheck refuses an untyped JSON document that two readers could
// read differently (a tool call's arguments).
func strictCheck(data []byte) error { return strictjson.Check(data) }

// checkName refuses a model or tool name that the runner refuses, or that
// does not look like what it is (prevention.CheckName).
func checkName(what, name string) error {
	if len(name) > governance.MaxNameBytes {
		return fmt.Errorf("%s name of %d bytes, more than %d", what, len(name), governance.MaxNameBytes)
	}
	if err := prevention.CheckName(name); err != nil {
		return fmt.Errorf("%s name: %w", what, err)
	}
	return nil
}

// errNoName is a tool call without a name: no agent can dispatch it, and
// no policy on tool names can judge it.
var errNoName = errors.New("a tool call without a name")

// check refuses a result that cannot be recorded as it is: a model or
// tool name the runner refuses or that looks like another, a tool call
// without a name, arguments that two JSON readers read differently.
func (r *result) check() error {
	if err := checkName("model", r.model); err != nil {
		return err
	}
	for _, tc := range r.tools {
		if tc.name == "" {
			return fmt.Errorf("%w (id %q)", errNoName, tc.id)
		}
		if err := checkName("tool", tc.name); err != nil {
			return err
		}
		if args := []byte(tc.args); json.Valid(args) {
			if err := strictCheck(args); err != nil {
				return fmt.Errorf("tool %q arguments: %w", tc.name, err)
			}
		}
	}
	return nil
}
