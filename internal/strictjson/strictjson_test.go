package strictjson_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tidwall/gjson"

	"github.com/stopline/stopline/internal/strictjson"
)

type fn struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

type call struct {
	ID       string `json:"id"`
	Function *fn    `json:"function"`
}

type msg struct {
	Content   *string           `json:"content"`
	ToolCalls []call            `json:"tool_calls"`
	Meta      map[string]string `json:"meta"`
	Raw       json.RawMessage   `json:"raw"`
}

func TestUnmarshalRefusesAmbiguity(t *testing.T) {
	cases := []struct {
		name, doc string
		want      error
		path      string
	}{
		{"second function object", `{"tool_calls":[{"id":"a","function":{"name":"search"},"function":{"name":"shell"}}]}`, strictjson.ErrDuplicateKey, "tool_calls[0]"},
		{"upper-case key beside the real one", `{"tool_calls":[{"function":{"name":"search"},"FUNCTION":{"name":"shell"}}]}`, strictjson.ErrDuplicateKey, "tool_calls[0]"},
		{"upper-case key alone", `{"TOOL_CALLS":[{"function":{"name":"shell"}}]}`, strictjson.ErrCaseVariant, ""},
		{"Kelvin sign folds to k in a struct", "{\"tool_calls\":[{\"id\":\"1\",\"function\":{\"name\":\"x\",\"\u212aey\":1,\"key\":2}}]}", strictjson.ErrDuplicateKey, "tool_calls[0].function"},
		{"keys of a map are kept as written", "{\"meta\":{\"k\":\"1\",\"K\":\"2\",\"\u212a\":\"3\"}}", nil, ""},
		{"long s is a case variant of s", "{\"tool_calls\":[{\"function\":{\"name\":\"x\",\"argument\u017f\":\"{}\"}}]}", strictjson.ErrCaseVariant, "tool_calls[0].function"},
		{"duplicate in a map", `{"meta":{"a":"1","a":"2"}}`, strictjson.ErrDuplicateKey, "meta"},
		{"case pair in raw JSON is two keys", `{"raw":{"Name":"x","name":"y"}}`, nil, ""},
		{"repeat in raw JSON", `{"raw":{"name":"x","name":"y"}}`, strictjson.ErrDuplicateKey, "raw"},
		{"escaped duplicate", `{"content":"a","cont\u0065nt":"b"}`, strictjson.ErrDuplicateKey, ""},
		{"unpaired surrogate escape", `{"content":"\ud800\u0022"}`, strictjson.ErrSyntax, ""},
		{"low surrogate alone", `{"content":"a\udc00"}`, strictjson.ErrSyntax, ""},
		{"trailing data", `{"content":"a"} {"content":"b"}`, strictjson.ErrSyntax, ""},
		{"truncated", `{"content":"a"`, strictjson.ErrSyntax, ""},
		{"surrogate pair", `{"content":"\ud83d\ude00"}`, nil, ""},
		{"fine", `{"content":"a","tool_calls":[{"id":"1","function":{"name":"search","arguments":"{}"}}],"meta":{"A":"1","b":"2"},"extra":{"x":1}}`, nil, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m msg
			err := strictjson.Unmarshal([]byte(c.doc), &m, strictjson.Options{})
			if c.want == nil {
				if err != nil {
					t.Fatalf("err = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
			var se *strictjson.Error
			if !errors.As(err, &se) {
				t.Fatalf("err %T is not a *strictjson.Error", err)
			}
			if se.Path != c.path && c.want != strictjson.ErrSyntax {
				t.Errorf("path = %q, want %q (%v)", se.Path, c.path, err)
			}
		})
	}
}

func TestCaseVariantOfAFieldDeepInside(t *testing.T) {
	var m msg
	err := strictjson.Unmarshal([]byte(`{"tool_calls":[{"id":"1","function":{"Name":"shell"}}]}`), &m, strictjson.Options{})
	var se *strictjson.Error
	if !errors.As(err, &se) || !errors.Is(err, strictjson.ErrCaseVariant) {
		t.Fatalf("err = %v, want a case variant", err)
	}
	if se.Path != "tool_calls[0].function" || se.Key != "Name" || se.Other != "name" {
		t.Fatalf("error = %+v", se)
	}
	if !strings.Contains(err.Error(), `"name" and "Name" in tool_calls[0].function`) {
		t.Errorf("message %q does not say where", err)
	}
}

func TestDisallowUnknownFields(t *testing.T) {
	var m msg
	err := strictjson.Unmarshal([]byte(`{"content":"x","enforcement":"block"}`), &m, strictjson.Options{DisallowUnknownFields: true})
	if !errors.Is(err, strictjson.ErrUnknownKey) {
		t.Fatalf("err = %v, want unknown key", err)
	}
	// Maps and raw values take any key.
	if err := strictjson.Unmarshal([]byte(`{"meta":{"anything":"x"},"raw":{"y":1}}`), &m, strictjson.Options{DisallowUnknownFields: true}); err != nil {
		t.Fatal(err)
	}
}

func TestTooDeep(t *testing.T) {
	doc := strings.Repeat("[", strictjson.MaxDepth+2) + strings.Repeat("]", strictjson.MaxDepth+2)
	if err := strictjson.Check([]byte(doc)); !errors.Is(err, strictjson.ErrTooDeep) {
		t.Fatalf("err = %v, want too deep", err)
	}
}

func TestFoldMatchesEqualFold(t *testing.T) {
	words := []string{"kind", "KIND", "\u212aind", "s", "\u017f", "S", "straße", "STRASSE", "ǅ", "ǆ", "Ǆ", "σ", "ς", "Σ", "İ", "i", "ı", "a\u0301"}
	for _, a := range words {
		for _, b := range words {
			if got, want := strictjson.Fold(a) == strictjson.Fold(b), strings.EqualFold(a, b); got != want {
				t.Errorf("Fold(%q)==Fold(%q) is %v, EqualFold is %v", a, b, got, want)
			}
		}
	}
}

// FuzzFirstKeyReaderAgrees: whatever Check accepts, a reader that takes
// the first of a key and matches exactly (gjson, as the OpenAI and
// Anthropic SDKs use it) reads every top-level member as encoding/json
// does.
func FuzzFirstKeyReaderAgrees(f *testing.F) {
	for _, s := range []string{
		`{"a":1,"b":[1,2],"c":{"d":"e"}}`,
		`{"a":1,"a":2}`,
		`{"a":1,"A":2}`,
		`{"name":"search","NAME":"shell"}`,
		`{"x":"\u0041","y":null}`,
		"{\"\u212a\":1,\"k\":2}",
		"{\"\x94\":\"\"}", // invalid UTF-8: encoding/json reads U+FFFD, gjson the byte
		"null",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		if strictjson.Check([]byte(doc)) != nil {
			return
		}
		var m map[string]any
		if json.Unmarshal([]byte(doc), &m) != nil || m == nil {
			return // not an object ("null" decodes to a nil map)
		}
		parsed := gjson.Parse(doc)
		if !parsed.IsObject() {
			t.Fatalf("encoding/json read an object, gjson did not: %q", doc)
		}
		parsed.ForEach(func(k, v gjson.Result) bool {
			want, ok := m[k.String()]
			if !ok {
				t.Fatalf("gjson sees key %q that encoding/json does not: %q", k.String(), doc)
			}
			var got any
			if err := json.Unmarshal([]byte(v.Raw), &got); err != nil {
				t.Fatalf("member %q: %v", k.String(), err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("member %q: gjson %v, encoding/json %v: %q", k.String(), got, want, doc)
			}
			return true
		})
	})
}

// FuzzCheckSurrogates: any bytes, no panic.
func FuzzCheckSurrogates(f *testing.F) {
	for _, s := range []string{`"\u"`, `"\ud800\u00"`, `"\ud83d\ude00"`, `\`, `"\ud800"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = strictjson.CheckSurrogates(data)
		_ = strictjson.Check(data)
	})
}
