package bundle_test

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// generic is the encoding bundles had before they were written from their
// typed values: snapshot.Canonical of the encoding/json encoding.
func generic(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return snapshot.Canonical(raw)
}

// TestEncodeIsTheGenericEncoding: every bundle the fixture exports, of
// each type, with and without content, encodes to exactly the bytes of
// snapshot.Canonical(json.Marshal(bundle)).
func TestEncodeIsTheGenericEncoding(t *testing.T) {
	f := fixture.New(t, nil)
	for _, typ := range []bundle.Type{bundle.TypeEvidence, bundle.TypeSOC2, bundle.TypeExecutiveDebrief} {
		for _, inc := range []string{"INC-0001", "INC-0002", "INC-0003"} {
			tenant := "acme"
			if inc == "INC-0003" {
				tenant = "globex"
			}
			for _, content := range []bool{false, true} {
				req := exportRequest(tenant, inc, content, typ)
				b, err := f.Exp.Build(ctx, typ, req)
				if err != nil {
					t.Fatal(err)
				}
				got, err := bundle.Encode(b)
				if err != nil {
					t.Fatal(err)
				}
				want, err := generic(b)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != string(want) {
					t.Fatalf("%s of %s: the typed encoding differs from the generic one\n got %.300s\nwant %.300s", typ, inc, got, want)
				}
			}
		}
	}
}

// TestEncodeRandomBundles: bundles with every field of the chain and the
// steps drawn at random (text Encode escapes, numbers at the edges of
// their spellings, nil and empty lists, content with metadata) encode as
// the generic encoding does.
func TestEncodeRandomBundles(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 13))
	for i := 0; i < 300; i++ {
		b := &bundle.Evidence{Header: bundle.Header{BundleID: "BND-1", BundleType: bundle.TypeEvidence, TenantID: "acme", RunID: randText(rng)}}
		if rng.IntN(4) > 0 {
			b.Chain = []bundle.ChainRecord{}
			for j := rng.IntN(5); j > 0; j-- {
				b.Chain = append(b.Chain, randChainRecord(rng))
			}
		}
		if rng.IntN(4) > 0 {
			b.Steps = []bundle.TraceStepEvidence{}
			for j := rng.IntN(5); j > 0; j-- {
				b.Steps = append(b.Steps, randStep(rng))
			}
		}
		got, gotErr := bundle.Encode(b)
		want, wantErr := generic(b)
		if (gotErr != nil) != (wantErr != nil) {
			t.Fatalf("bundle %d: typed error %v, generic error %v", i, gotErr, wantErr)
		}
		if string(got) != string(want) {
			t.Fatalf("bundle %d: typed\n%s\ngeneric\n%s", i, got, want)
		}
	}
}

var texts = []string{"", "a", "é\"\\\n\t<>&\u2028/", "日本", "\x01\x1f\x7f", "\uFFFD", "🙂", "bad\xff\xfeutf8", "SNAP-0123456789ab"}

var numbers = []float64{0, 1, -1, 0.1, 1e-7, 1e21, 1e-300, math.MaxFloat64, 5e-324, 100.00000000000338, 123456789.125,
	1 << 53, 1<<53 + 2, math.Copysign(0, -1), 1e-6, 999999999999999999999}

func randText(rng *rand.Rand) string { return texts[rng.IntN(len(texts))] }

func randNumber(rng *rand.Rand) float64 { return numbers[rng.IntN(len(numbers))] }

func randDecision(rng *rand.Rand) bundle.StepDecision {
	d := bundle.StepDecision{Action: prevention.Action(rng.IntN(3)), PolicyID: randText(rng), Source: prevention.Source(randText(rng)),
		Threshold: randText(rng), Message: randText(rng), Enforcement: snapshot.Enforcement(randText(rng))}
	if rng.IntN(2) == 0 {
		d.Reason = prevention.ReasonBudgetExceeded
	}
	if rng.IntN(2) == 0 {
		l, o := randNumber(rng), randNumber(rng)
		d.Limit, d.Observed = &l, &o
	}
	return d
}

func randStep(rng *rand.Rand) bundle.TraceStepEvidence {
	types := []prevention.StepType{prevention.StepLLMResponse, prevention.StepToolCall, prevention.StepToolResult, prevention.StepMessage}
	s := bundle.TraceStepEvidence{StepIndex: rng.IntN(1 << 20), Seq: rng.IntN(1 << 20), Timestamp: time.Unix(rng.Int64N(1e11), rng.Int64N(1e9)).In(time.FixedZone("z", -7200)),
		StepType: types[rng.IntN(len(types))], Model: randText(rng), Tool: randText(rng), Tokens: rng.Int64N(math.MaxInt64), CostCents: randNumber(rng),
		TotalTokens: int64(randNumber(rng)), TotalCost: randNumber(rng), Status: trace.Status(randText(rng)), IsInflection: rng.IntN(2) == 0,
		ContentHash: randText(rng), Decision: randDecision(rng), RecordHash: randText(rng), PrevHash: randText(rng)}
	switch rng.IntN(3) {
	case 0:
		s.Findings = []bundle.StepDecision{}
	case 1:
		for j := 1 + rng.IntN(3); j > 0; j-- {
			s.Findings = append(s.Findings, randDecision(rng))
		}
	}
	if rng.IntN(2) == 0 {
		c := trace.Content{Input: randText(rng), Output: randText(rng)}
		if rng.IntN(2) == 0 {
			c.Metadata = map[string]string{randText(rng): randText(rng), "b": randText(rng), "A": "", "\u00e9": "x"}
		}
		s.Content = &c
	}
	return s
}

func randChainRecord(rng *rand.Rand) bundle.ChainRecord {
	r := trace.Record{TenantID: randText(rng), RunID: randText(rng), Seq: rng.IntN(100), Kind: trace.KindStep, At: time.Unix(rng.Int64N(1e11), 0),
		SnapshotID: randText(rng), StepIndex: rng.IntN(10), Model: randText(rng), Tokens: int64(rng.IntN(3)), CostCents: randNumber(rng)}
	body := trace.Encode(nil, &r)
	switch rng.IntN(4) {
	case 0: // spelled another way: white space, keys out of order
		body = append([]byte(` {"seq":1, "at":"2026-01-01T00:00:00Z"} `), nil...)
	case 1:
		body = []byte(`{"kind":"step","message":"\u00e9\/<>","cost_cents":1.50}`)
	}
	return bundle.ChainRecord{PrevHash: randText(rng), Hash: randText(rng), Record: body}
}

// FuzzWriterAgrees: the element writers write a step, and a chain record,
// as snapshot.Canonical of their encoding/json encoding — or both fail.
func FuzzWriterAgrees(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 1))
	for i := 0; i < 8; i++ {
		s := randStep(rng)
		raw, _ := json.Marshal(s)
		f.Add(raw, []byte(randChainRecord(rng).Record))
	}
	f.Add([]byte(`{"step_type":"dream"}`), []byte(`{"a":[1,2,{"b":null}]}`))
	f.Add([]byte(`{"cost_cents":1e400}`), []byte(`not json`))
	f.Fuzz(func(t *testing.T, stepJSON, record []byte) {
		var s bundle.TraceStepEvidence
		if json.Unmarshal(stepJSON, &s) == nil {
			got, gotErr := bundle.WriteStep(&s)
			want, wantErr := generic(s)
			if (gotErr != nil) != (wantErr != nil) || gotErr == nil && string(got) != string(want) {
				t.Fatalf("step %s:\ntyped   %s (%v)\ngeneric %s (%v)", stepJSON, got, gotErr, want, wantErr)
			}
		}
		cr := bundle.ChainRecord{PrevHash: "p", Hash: "h", Record: record}
		got, gotErr := bundle.WriteChainRecord(&cr)
		want, wantErr := generic(cr)
		if (gotErr != nil) != (wantErr != nil) || gotErr == nil && string(got) != string(want) {
			t.Fatalf("chain record %q:\ntyped   %s (%v)\ngeneric %s (%v)", record, got, gotErr, want, wantErr)
		}
	})
}

func exportRequest(tenant, incidentID string, content bool, typ bundle.Type) export.Request {
	req := export.Request{TenantID: tenant, IncidentID: incidentID, ExportedBy: "alice", Reason: "review", IncludeContent: content && typ != bundle.TypeExecutiveDebrief}
	return req
}
