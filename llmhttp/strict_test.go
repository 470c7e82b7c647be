package llmhttp

import (
	"encoding/json"
	"testing"

	"github.com/stopline/stopline/internal/strictjson"
)

// FuzzPlainJSON: the one-pass check that lets a document skip strictjson
// accepts only documents strictjson accepts, for every type the package
// decodes provider JSON into.
func FuzzPlainJSON(f *testing.F) {
	for _, s := range []string{
		`{"id":"c1","choices":[{"index":0,"delta":{"content":"hi"}}]}`,
		`{"type":"tool_use","name":"shell","name":"search"}`,
		`{"Name":"x","name":"y"}`,
		`{"a":{"b":1},"a":2}`,
		`{"n\u0061me":"x","name":"y"}`,
		`[{"a":1},{"a":1}]`,
		`{"a":[{"b":1,"c":{"b":2}}],"b":3}`,
		`{"x":"\"a\":1","a":2}`,
	} {
		f.Add([]byte(s))
	}
	targets := []func() any{
		func() any { return new(chatChunk) },
		func() any { return new(responsesEvent) },
		func() any { return new(messagesEvent) },
		func() any { return new(responsesBody) },
		func() any { return new(map[string]any) },
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if !plainJSON(data) || !json.Valid(data) {
			return
		}
		if err := strictjson.Check(data); err != nil {
			t.Fatalf("plainJSON accepted %q, which strictjson refuses: %v", data, err)
		}
		for _, target := range targets {
			v := target()
			if err := json.Unmarshal(data, v); err != nil {
				continue // a type mismatch: refused either way
			}
			if err := strictjson.Unmarshal(data, target(), strictjson.Options{}); err != nil {
				t.Fatalf("plainJSON accepted %q, which strictjson refuses for %T: %v", data, v, err)
			}
		}
	})
}
