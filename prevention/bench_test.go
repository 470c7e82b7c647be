package prevention_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

var benchThresholds = snapshot.Thresholds{
	"max_tokens": 1e9, "max_cost_cents": 1e9, "max_steps": 1e6,
	"max_duration_seconds": 1e6, "max_steps_per_minute": 1e3,
}

// benchStep is step 10 of a run, a tool call 100 s in, after ten steps
// 10 s apart.
func benchStep(output string) *prevention.Step {
	times := make([]int64, 10)
	for i := range times {
		times[i] = t0.Add(time.Duration(i) * 10 * time.Second).UnixNano()
	}
	st := &prevention.Step{
		RunID: "run-1", TenantID: "acme", SnapshotID: "SNAP-000000000000",
		Index: 10, Type: prevention.StepToolCall, Tool: "search",
		At: t0.Add(100 * time.Second), RunStartedAt: t0,
		Output: output, Tokens: 500, CostCents: 1.5, TotalTokens: 5500, TotalCostCents: 16.5,
	}
	st.SetStepTimes(times)
	return st
}

func benchEvaluate(b *testing.B, e *prevention.Engine, st *prevention.Step) {
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ev, err := e.Evaluate(ctx, st)
		if err != nil || ev.Decision.Action != prevention.Allow {
			b.Fatalf("Evaluate = %v, %v; want allow", ev.Decision, err)
		}
	}
}

// BenchmarkEvaluate measures 20 non-text policies that all allow.
func BenchmarkEvaluate(b *testing.B) {
	kinds := []struct{ kind, params string }{
		{"budget", `{"metric":"tokens","threshold":"max_tokens"}`},
		{"budget", `{"metric":"cost_cents","threshold":"max_cost_cents"}`},
		{"budget", `{"metric":"steps","threshold":"max_steps"}`},
		{"rate_limit", `{"threshold":"max_steps_per_minute","window_seconds":60}`},
		{"timeout", `{"threshold":"max_duration_seconds"}`},
		{"tool_allowlist", `{"allow":["search","calculator","browser"]}`},
		{"tool_denylist", `{"deny":["shell","exec"]}`},
	}
	var ps []snapshot.Policy
	for i := range 20 {
		k := kinds[i%len(kinds)]
		ps = append(ps, policy(fmt.Sprintf("p%02d", i), k.kind, k.params))
	}
	benchEvaluate(b, compile(b, benchThresholds, ps...), benchStep(""))
}

// BenchmarkEvaluateContent measures one content policy with three
// patterns over a 2 KB output that matches none of them.
func BenchmarkEvaluateContent(b *testing.B) {
	e := compile(b, benchThresholds, policy("secrets", "content",
		`{"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b","(?i)password\\s*[:=]","AKIA[0-9A-Z]{16}"]}`))
	line := "The quarterly report lists 42 shipments to 7 regions; totals are in table 3-B. "
	out := strings.Repeat(line, 2048/len(line)+1)[:2048]
	benchEvaluate(b, e, benchStep(out))
}

// BenchmarkEvaluateExpression measures one expression policy.
func BenchmarkEvaluateExpression(b *testing.B) {
	e := compile(b, benchThresholds, policy("no-shell", "expression",
		`{"expr":"step.type == 'tool_call' && step.tool == 'shell' || run.total_cost_cents > thresholds.max_cost_cents"}`))
	benchEvaluate(b, e, benchStep(""))
}

// streamTokens are the tokens of a streamed answer for
// BenchmarkEvaluateContentStream.
var streamTokens = []string{"The", " quarterly", " report", " lists", " 42", " shipments", " to", " 7", " regions", ";",
	" totals", " are", " in", " table", " 3", "-B", ".", " People", " asked", " about", " passwords", " and", " AWS", " keys", ".\n"}

// BenchmarkEvaluateContentStream measures the checks of a streamed
// answer of n tokens, one check after each token of the text so far,
// with one content policy of three patterns (two unbounded): through
// EvaluateStream (stream), and with Evaluate, which scans the whole text
// at every check (rescan). An op is the n checks of one answer.
func BenchmarkEvaluateContentStream(b *testing.B) {
	e := compile(b, benchThresholds, policy("secrets", "content",
		`{"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b","(?i)password\\s*[:=]","-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*)-----END"]}`))
	ctx := context.Background()
	for _, n := range []int{1000, 4000, 16000} {
		var sb strings.Builder
		ends := make([]int, n)
		for i := range n {
			sb.WriteString(streamTokens[i%len(streamTokens)])
			ends[i] = sb.Len()
		}
		text := sb.String()
		for _, mode := range []string{"stream", "rescan"} {
			if mode == "rescan" && n > 4000 {
				continue // quadratic: 16,000 checks take seconds
			}
			b.Run(fmt.Sprintf("events=%d/%s", n, mode), func(b *testing.B) {
				st := benchStep("")
				b.ReportAllocs()
				for b.Loop() {
					s := e.NewStream()
					for _, end := range ends {
						st.Output = text[:end]
						var ev prevention.Evaluation
						var err error
						if mode == "stream" {
							ev, err = e.EvaluateStream(ctx, st, nil, s)
						} else {
							ev, err = e.Evaluate(ctx, st)
						}
						if err != nil || ev.Decision.Action != prevention.Allow {
							b.Fatalf("%v, %v", ev.Decision, err)
						}
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/check")
			})
		}
	}
}
