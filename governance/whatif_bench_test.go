package governance_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/store/sqlite"
)

// benchRecordedDoc is what the benchmark's runs were recorded under: every
// run completes its 50 steps, with warnings on the way.
const benchRecordedDoc = `{"tenant_id":"acme","thresholds":{"max_tokens":100000,"max_cost_cents":10000,"max_steps":100,
  "per_min":1000,"max_s":86400,"warn_tokens":20000},
 "policies":[
  {"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}},
  {"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}},
  {"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
  {"id":"pace","kind":"rate_limit","params":{"threshold":"per_min","window_seconds":60}},
  {"id":"clock","kind":"timeout","params":{"threshold":"max_s"}},
  {"id":"ssn","kind":"content","params":{"fields":["output","input"],"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}},
  {"id":"tools","kind":"tool_allowlist","params":{"allow":["search","calc","shell","browser"]}},
  {"id":"token-warn","kind":"budget","params":{"metric":"tokens","threshold":"warn_tokens"},"enforcement":"warn"}
 ]}`

// benchCandidateDoc is stricter: it stops about half of the runs, some
// early, and evaluates every step of the others.
const benchCandidateDoc = `{"tenant_id":"acme","thresholds":{"max_tokens":12500,"max_cost_cents":10000,"max_steps":100,
  "per_min":1000,"max_s":86400},
 "policies":[
  {"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}},
  {"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}},
  {"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
  {"id":"pace","kind":"rate_limit","params":{"threshold":"per_min","window_seconds":60}},
  {"id":"clock","kind":"timeout","params":{"threshold":"max_s"}},
  {"id":"ssn","kind":"content","params":{"fields":["output","input"],"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}},
  {"id":"tools","kind":"tool_allowlist","params":{"allow":["search","calc","shell","browser"]}},
  {"id":"no-shell","kind":"expression","params":{"expr":"step.type == 'tool_call' && step.tool == 'shell' && step.input.contains('rm ')"}}
 ]}`

// benchCorpus records runs of 50 steps each: LLM responses of a few
// hundred tokens and a paragraph of output, tool calls and results.
func benchCorpus(b *testing.B, st governance.Store, runs int) {
	b.Helper()
	r, clock := newRunner(b, st)
	snap := parse(b, benchRecordedDoc)
	para := strings.Repeat("The service logs show three errors in the last hour. ", 4)
	tools := []string{"search", "calc", "shell", "browser"}
	for i := 0; i < runs; i++ {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			b.Fatal(err)
		}
		for s := 0; s < 50; s++ {
			clock.Advance(700 * time.Millisecond)
			var in governance.StepInput
			switch s % 3 {
			case 0:
				in = governance.StepInput{Type: prevention.StepLLMResponse, Model: "m-1", Tokens: int64(300 + (i*7+s*13)%900), CostCents: 0.5, Input: "continue", Output: para}
			case 1:
				tool := tools[(i+s)%len(tools)]
				input := `{"q":"errors"}`
				if tool == "shell" && i%5 == 0 {
					input = "rm -rf /tmp/cache"
				}
				in = governance.StepInput{Type: prevention.StepToolCall, Tool: tool, Input: input}
			default:
				in = governance.StepInput{Type: prevention.StepToolResult, Tool: tools[(i+s-1)%len(tools)], Output: para}
			}
			if _, err := run.Step(ctx, in); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := run.Finish(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWhatIf evaluates a stricter candidate on 1,000 recorded runs of
// 50 steps: one op is the whole what-if, each run verified and evaluated.
func BenchmarkWhatIf(b *testing.B) {
	const runs = 1000
	for _, sk := range []struct {
		name string
		open func(b *testing.B) governance.Store
	}{
		{"memstore", func(*testing.B) governance.Store { return memstore.New() }},
		{"sqlite", func(b *testing.B) governance.Store {
			s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "stopline.db"), sqlite.WithSynchronous(sqlite.Normal))
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { s.Close() })
			return s
		}},
	} {
		b.Run(sk.name, func(b *testing.B) {
			st := sk.open(b)
			benchCorpus(b, st, runs)
			r, _ := newRunner(b, st)
			candidate := parse(b, benchCandidateDoc)
			b.ResetTimer()
			var rep *governance.WhatIfReport
			for i := 0; i < b.N; i++ {
				var err error
				if rep, err = r.WhatIf(ctx, candidate, governance.RunFilter{}); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if rep.Totals.Runs != runs || rep.Totals.NotEvaluated != 0 || rep.Totals.WouldStop == 0 || rep.Totals.Unchanged == 0 {
				b.Fatalf("totals %+v", rep.Totals)
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N)*1000/runs, "ms/1000runs")
			if testing.Verbose() {
				fmt.Printf("%s: %+v\n", sk.name, rep.Totals)
			}
		})
	}
}
