package trace

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// agree checks that the record parser and the generic decoder read body
// alike: whatever the parser reads, the generic decoder reads as the same
// record; and DecodeRecord, with or without a Decoder, answers exactly as
// the generic decoder does.
func agree(t *testing.T, body []byte, d *Decoder) {
	t.Helper()
	want, wantErr := decodeGeneric(body, "p", "h")
	var r Record
	p := parser{b: body, d: d}
	if len(body) <= MaxRecordSize && p.record(&r) {
		if wantErr != nil {
			t.Fatalf("the record parser reads %q, the generic decoder refuses it: %v", body, wantErr)
		}
		r.PrevHash, r.Hash = "p", "h"
		if !reflect.DeepEqual(r, want) {
			t.Fatalf("the record parser and the generic decoder read %q differently:\nparser  %#v\ngeneric %#v", body, r, want)
		}
	}
	for _, dec := range []*Decoder{nil, d} {
		got, err := dec.Decode(body, "p", "h")
		if (err != nil) != (wantErr != nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("Decode(%q): error %v, the generic decoder's %v", body, err, wantErr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("Decode(%q) = %#v, the generic decoder %#v", body, got, want)
		}
	}
}

// sampleRecords are records of every kind and field, with text Encode
// escapes, numbers at the edges of their encodings, and shared strings.
func sampleRecords(n int) []Record {
	rng := rand.New(rand.NewPCG(7, 11))
	strs := []string{"", "a", "é\"\\\n\t<>&\u2028/", "日本", "\x01\x1f\x7f", "\uFFFD", "🙂", "SNAP-0123456789ab"}
	floats := []float64{0, 1, -1, 0.1, 1e-7, 1e21, 1e-300, math.MaxFloat64, 5e-324, 100.00000000000338, 123456789.125}
	ints := []int64{0, 1, -1, 1 << 53, 1<<53 + 1, math.MaxInt64, math.MinInt64}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	reasons := []prevention.RunTerminationReason{"", prevention.ReasonCompleted, prevention.ReasonPolicyBlock,
		prevention.ReasonBudgetExceeded, prevention.ReasonRateLimited, prevention.ReasonUserAbort, prevention.ReasonSystemFailure, prevention.ReasonTimeout}
	stepTypes := []prevention.StepType{prevention.StepLLMResponse, prevention.StepToolCall, prevention.StepToolResult, prevention.StepMessage}
	dec := func() prevention.Decision {
		return prevention.Decision{Action: prevention.Action(rng.IntN(3)), Reason: reasons[rng.IntN(len(reasons))],
			PolicyID: pick(strs), Source: prevention.Source(pick([]string{"", "policy", "hook"})), Threshold: pick(strs),
			Limit: floats[rng.IntN(len(floats))], Observed: floats[rng.IntN(len(floats))], Message: pick(strs),
			Enforcement: snapshot.Enforcement(pick([]string{"", "block", "warn", "monitor"}))}
	}
	var out []Record
	for i := 0; i < n; i++ {
		r := Record{TenantID: pick(strs), RunID: pick(strs), Seq: rng.IntN(1 << 20), Kind: Kind(pick([]string{"run_start", "step", "run_end"})),
			At: time.Unix(rng.Int64N(25e10)-6e10, rng.Int64N(1e9)).In(time.FixedZone("x", 3600)), SnapshotID: pick(strs),
			SnapshotHash: pick(strs), StepIndex: rng.IntN(10) - 1, Model: pick(strs), Tool: pick(strs),
			Tokens: ints[rng.IntN(len(ints))], CostCents: floats[rng.IntN(len(floats))], TotalTokens: ints[rng.IntN(len(ints))],
			TotalCostCents: -floats[rng.IntN(len(floats))], ContentHash: pick(strs), Status: Status(pick(strs)),
			Inflection: rng.IntN(2) == 0, RunStatus: pick(strs), ViolationPolicyID: pick(strs), IncidentID: pick(strs), Message: pick(strs)}
		if rng.IntN(2) == 0 {
			r.StepType = stepTypes[rng.IntN(len(stepTypes))]
		}
		if rng.IntN(2) == 0 {
			r.Reason = reasons[rng.IntN(len(reasons))]
		}
		if rng.IntN(2) == 0 {
			d := dec()
			r.Decision = &d
		}
		for k := rng.IntN(3); k > 0; k-- {
			r.Findings = append(r.Findings, dec())
		}
		if rng.IntN(2) == 0 {
			v := rng.IntN(1000) - 1
			r.StoppedAtStep = &v
		}
		if rng.IntN(3) == 0 {
			r.Retention = Retention(pick([]string{"redacted", "hashes", "é"}))
			r.ShadowSnapshotID, r.ShadowSnapshotHash, r.KeptContentHash = pick(strs), pick(strs), pick(strs)
		}
		if rng.IntN(3) == 0 {
			d := dec()
			r.ShadowDecision = &d
			for k := rng.IntN(3); k > 0; k-- {
				r.ShadowFindings = append(r.ShadowFindings, dec())
			}
		}
		out = append(out, r)
	}
	return out
}

func TestDecoderAgreesOnEncodedRecords(t *testing.T) {
	var d Decoder
	for _, r := range sampleRecords(3000) {
		body := Encode(nil, &r)
		agree(t, body, &d)
		// The parser reads every encoded record itself.
		var got Record
		if p := (parser{b: body, d: &d}); !p.record(&got) {
			t.Fatalf("the record parser does not read an encoded record: %s", body)
		}
		if again := Encode(nil, &got); string(again) != string(body) {
			t.Fatalf("decoded and encoded again:\n got %s\nwant %s", again, body)
		}
	}
}

func TestDecoderAgreesOnOtherSpellings(t *testing.T) {
	good := string(Encode(nil, &sampleRecords(1)[0]))
	var d Decoder
	for _, body := range []string{
		good, " " + good, good + " ", good + "{}", strings.Replace(good, `":`, `": `, 1),
		strings.Replace(good, `"at"`, `"At"`, 1), strings.Replace(good, `"seq"`, `"Seq"`, 1),
		`{"seq":1,"at":"2026-01-01T00:00:00Z"}`, `{"seq":1,"seq":2}`, `{"seq":1e0}`, `{"seq":-0}`, `{"seq":01}`,
		`{"seq":9223372036854775808}`, `{"tokens":-9223372036854775808}`, `{"cost_cents":1e400}`, `{"cost_cents":-0}`,
		`{"cost_cents":.5}`, `{"cost_cents":1.}`, `{"cost_cents":1e}`, `{"cost_cents":0x10}`, `{"cost_cents":Infinity}`,
		`{"model":"\ud800"}`, `{"model":"\ud83d\ude42"}`, `{"model":"\u00e9\/"}`, `{"model":"\x"}`, "{\"model\":\"\xff\"}",
		"{\"model\":\"a\x01\"}", `{"model":"\u0000"}`, `{"model":null}`, `{"decision":null}`, `{"findings":null}`,
		`{"findings":[]}`, `{"findings":[{}]}`, `{"findings":[{},]}`, `{"decision":{}}`, `{"decision":{"action":"warn","action":"block"}}`,
		`{"decision":{"limit":1,"action":"warn"}}`, `{"inflection":false}`, `{"inflection":true}`, `{"inflection":1}`,
		`{"at":"2026-01-01T00:00:00+01:00"}`, `{"at":"2026-01-01T00:00:00\u005a"}`, `{"at":"2026-13-01T00:00:00Z"}`,
		`{"at":null}`, `{"step_type":""}`, `{"step_type":"dream"}`, `{"reason":""}`, `{"stopped_at_step":-1}`,
		`{"prev_hash":""}`, `{"hash":"x"}`, `{}`, `null`, `[]`, `{`, ``, `{"kind":"step",}`, `{"a":1}`,
	} {
		agree(t, []byte(body), &d)
	}
}

// FuzzDecoderAgrees: the record parser and encoding/json read every body
// alike (see agree).
func FuzzDecoderAgrees(f *testing.F) {
	for _, r := range sampleRecords(20) {
		f.Add(Encode(nil, &r))
	}
	f.Add([]byte(`{"at":"2026-01-01T00:00:00Z","decision":{"action":"block","limit":1e-7},"findings":[{"action":"warn"}],"kind":"step","seq":1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var d Decoder
		agree(t, body, &d)
	})
}

// BenchmarkDecode decodes a step record with a finding, by the record
// parser (with a Decoder) and by the generic decoder.
func BenchmarkDecode(b *testing.B) {
	d := prevention.Decision{Action: prevention.Warn, Reason: prevention.ReasonBudgetExceeded, PolicyID: "token-warn",
		Source: prevention.SourcePolicy, Threshold: "warn_tokens", Limit: 2000000, Observed: 2000040, Enforcement: snapshot.EnforceWarn}
	r := Record{TenantID: "acme", RunID: "RUN-3f2a9c0d1e4b5a67", Seq: 51234, Kind: KindStep, At: time.Now(), SnapshotID: "SNAP-0123456789ab",
		StepIndex: 51233, StepType: prevention.StepLLMResponse, Model: "m-1", Tokens: 40, CostCents: 0.002, TotalTokens: 2000040,
		TotalCostCents: 76.834, ContentHash: strings.Repeat("ab", 32), Status: StatusWarning, Decision: &d, Findings: []prevention.Decision{d}}
	body := Encode(nil, &r)
	b.Run("parser", func(b *testing.B) {
		var dec Decoder
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := dec.Decode(body, "p", "h"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("generic", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			if _, err := decodeGeneric(body, "p", "h"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// agreeContent checks that DecodeContent answers as json.Unmarshal does.
func agreeContent(t *testing.T, b []byte) {
	t.Helper()
	var want Content
	wantErr := json.Unmarshal(b, &want)
	got, err := DecodeContent(b)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("DecodeContent(%q): error %v, encoding/json's %v", b, err, wantErr)
	}
	if err == nil && !reflect.DeepEqual(got, want) {
		t.Fatalf("DecodeContent(%q) = %#v, encoding/json %#v", b, got, want)
	}
}

func TestDecodeContentAgrees(t *testing.T) {
	for _, c := range []Content{{}, {Input: "a"}, {Output: "é\"\\\n\t<>&\u2028\x01"}, {Metadata: map[string]string{}},
		{Input: "i", Output: "o", Metadata: map[string]string{"b": "1", "a": "2", "日本": "🙂", "": ""}}} {
		agreeContent(t, EncodeContent(nil, &c))
	}
	for _, s := range []string{`null`, `{}`, ` {}`, `{"input":"a","input":"b"}`, `{"Input":"a"}`, `{"extra":1,"input":"x"}`,
		`{"metadata":{"a":"1","a":"2"}}`, `{"metadata":{"b":"1","a":"2"}}`, `{"metadata":null}`, `{"metadata":{"a":1}}`,
		`{"output":"a","input":"b"}`, "{\"input\":\"\xff\"}", `{"input":"\ud800"}`, `{"input":"x"} `, `{"input":"x"}x`, `[]`, ``} {
		agreeContent(t, []byte(s))
	}
}

// FuzzDecodeContentAgrees: DecodeContent reads every text as
// json.Unmarshal into a Content does.
func FuzzDecodeContentAgrees(f *testing.F) {
	f.Add(EncodeContent(nil, &Content{Input: "i", Output: "o", Metadata: map[string]string{"k": "v", "stopline.truncated": "input"}}))
	f.Add([]byte(`{"metadata":{"b":"1","a":"2"},"input":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) { agreeContent(t, b) })
}
