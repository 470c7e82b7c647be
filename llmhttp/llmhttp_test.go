package llmhttp_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/llmhttp/llmhttptest"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// TestUsageAndCostPerStep drives each API, whole and streamed, with its
// official SDK and checks the steps recorded: the response with its
// model, usage, cost and text, then its tool call.
func TestUsageAndCostPerStep(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{
				Text:      "Let me search for that.",
				ToolCalls: []llmhttptest.ToolCall{{Name: "search", Arguments: `{"q":"go"}`}},
				Usage:     llmhttptest.Usage{Input: 1000, Output: 500, Cached: 200},
			})
			got, err := d.call(e, "find go")
			if err != nil {
				t.Fatal(err)
			}
			if got.text != "Let me search for that." || len(got.tools) != 1 || got.tools[0] != `search {"q":"go"}` {
				t.Errorf("agent got %+v", got)
			}
			steps := e.steps()
			if len(steps) != 2 {
				t.Fatalf("steps: %v", steps)
			}
			resp, tool := steps[0], steps[1]
			// gpt-4o: 800 × 2.5 + 200 × 1.25 + 500 × 10 = 7250 µ$; sonnet:
			// 800 × 3 + 200 × 0.3 + 500 × 15 = 9960 µ$.
			wantCost := 0.725
			if d.api == "messages" {
				wantCost = 0.996
			}
			if resp.StepType != prevention.StepLLMResponse || resp.Model != d.model || resp.Tokens != 1500 || !near(resp.CostCents, wantCost) ||
				resp.Output != "Let me search for that." || resp.Input != "find go" || resp.Status != trace.StatusOK {
				t.Errorf("response step: %v", resp)
			}
			md := resp.Metadata
			if md[llmhttp.MetaProvider] != provider(d) || md[llmhttp.MetaAPI] != d.api || md[llmhttp.MetaRequestID] != "req_1" ||
				md[llmhttp.MetaInputTokens] != "1000" || md[llmhttp.MetaOutputTokens] != "500" || md[llmhttp.MetaCachedTokens] != "200" ||
				md[llmhttp.MetaResponseID] == "" || md[llmhttp.MetaUnpriced] != "" {
				t.Errorf("response metadata: %v", md)
			}
			if d.stream != (md[llmhttp.MetaStream] == "complete") {
				t.Errorf("stream metadata: %v", md)
			}
			if tool.StepType != prevention.StepToolCall || tool.Tool != "search" || tool.Input != `{"q":"go"}` || tool.Metadata[llmhttp.MetaToolCallID] != "call_1" {
				t.Errorf("tool step: %v", tool)
			}
		})
	}
}

// TestForbiddenToolNeverReachesAgent: the response is recorded, the tool
// call is blocked, and the agent gets the violation, never the call.
func TestForbiddenToolNeverReachesAgent(t *testing.T) {
	for _, d := range drivers {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{
				Text:      "Cleaning up.",
				ToolCalls: []llmhttptest.ToolCall{{Name: "shell", Arguments: `{"cmd":"rm -rf /"}`}},
				Usage:     llmhttptest.Usage{Input: 10, Output: 5},
			})
			got, err := d.call(e, "clean up")
			var v *governance.Violation
			if !errors.As(err, &v) || v.PolicyID() != "no-shell" || v.StepIndex != 1 {
				t.Fatalf("error %v, want the no-shell violation at step 1", err)
			}
			if len(got.tools) != 0 {
				t.Errorf("the agent saw tool calls %v", got.tools)
			}
			steps := e.steps()
			if len(steps) != 2 || steps[0].StepType != prevention.StepLLMResponse || steps[0].Status != trace.StatusOK ||
				steps[1].Tool != "shell" || !steps[1].Inflection || steps[1].Input != `{"cmd":"rm -rf /"}` {
				t.Errorf("steps: %v", steps)
			}
			if !e.run.Ended() {
				t.Error("run goes on")
			}
		})
	}
}

// TestContentViolationMidStream: the stream ends just before the chunk
// that completes the SSN; the step records exactly the text delivered.
func TestContentViolationMidStream(t *testing.T) {
	for _, d := range drivers {
		if !d.stream {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{
				Chunks: []string{"Your ", "number ", "is ", "123-45-", "6789", ", keep ", "it safe."},
				Text:   "Your number is 123-45-6789, keep it safe.",
				Usage:  llmhttptest.Usage{Input: 10, Output: 12},
			})
			got, err := d.call(e, "what is my number?")
			var v *governance.Violation
			if !errors.As(err, &v) || v.PolicyID() != "no-ssn" {
				t.Fatalf("stream error %v, want the no-ssn violation", err)
			}
			const want = "Your number is 123-45-"
			if got.text != want {
				t.Errorf("agent got %q, want %q", got.text, want)
			}
			steps := e.steps()
			if len(steps) != 1 {
				t.Fatalf("steps: %v", steps)
			}
			s := steps[0]
			if s.Output != want || !s.Inflection || s.Metadata[llmhttp.MetaStream] != "blocked" || s.Metadata[llmhttp.MetaWithheld] != "true" {
				t.Errorf("step: %v", s)
			}
		})
	}
}

// TestPreCallRefusalSendsNothing: a run that has ended, or whose budget is
// spent, gets an error and the provider no request, even with the SDKs'
// default retries.
func TestPreCallRefusalSendsNothing(t *testing.T) {
	for _, d := range []driver{drivers[0], drivers[3], drivers[4]} {
		t.Run(d.name+" budget spent", func(t *testing.T) {
			// 1000 output tokens at $10 or $15 per million: exactly the budget.
			limit := 1.0
			if d.api == "messages" {
				limit = 1.5
			}
			e := newEnv(t, policy(limit), llmhttptest.Reply{Text: "one", Usage: llmhttptest.Usage{Output: 1000}}, llmhttptest.Reply{Text: "two"})
			e.retries = 2 // the SDKs' default: a refusal must not be retried
			if _, err := d.call(e, "first"); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if rec := e.run.Record(); !near(rec.TotalCostCents, limit) {
				t.Fatalf("spent %v, want exactly the budget", rec.TotalCostCents)
			}
			_, err := d.call(e, "second")
			var v *governance.Violation
			if !errors.Is(err, llmhttp.ErrNotSent) || !errors.As(err, &v) || v.PolicyID() != "cost" || v.Reason() != prevention.ReasonBudgetExceeded {
				t.Fatalf("error %v, want ErrNotSent and the cost violation", err)
			}
			if n := e.srv.Requests(); n != 1 {
				t.Errorf("%d requests reached the provider, want 1", n)
			}
			if d := time.Since(start); d > 300*time.Millisecond {
				t.Errorf("the refusal took %v: retried with backoff?", d)
			}
			steps := e.steps()
			last := steps[len(steps)-1]
			if len(steps) != 2 || last.Tokens != 0 || last.CostCents != 0 || !last.Inflection ||
				last.Metadata[llmhttp.MetaPhase] != "before_request" || last.Metadata[llmhttp.MetaWithheld] != "true" || last.Input != "second" {
				t.Errorf("steps: %v", steps)
			}
		})
		t.Run(d.name+" run ended", func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{Text: "never"})
			e.retries = 2
			if _, err := e.run.Finish(ctx); err != nil {
				t.Fatal(err)
			}
			_, err := d.call(e, "hello")
			if !errors.Is(err, llmhttp.ErrNotSent) || !errors.Is(err, governance.ErrRunStopped) {
				t.Fatalf("error %v, want ErrNotSent matching ErrRunStopped", err)
			}
			if n := e.srv.Requests(); n != 0 {
				t.Errorf("%d requests reached the provider", n)
			}
		})
	}
}

// TestUnpricedModel: cost 0 and the metadata; a policy on that metadata
// refuses the call before it is sent.
func TestUnpricedModel(t *testing.T) {
	e := newEnv(t, policy(100), llmhttptest.Reply{Text: "hi", Usage: llmhttptest.Usage{Input: 5, Output: 5}})
	e.opts = nil // no price table
	if _, err := chatCall(e, "hello"); err != nil {
		t.Fatal(err)
	}
	s := e.steps()[0]
	if s.CostCents != 0 || s.Tokens != 10 || s.Metadata[llmhttp.MetaUnpriced] != "true" {
		t.Errorf("unpriced step: %v", s)
	}

	e = newEnv(t, policy(100, `{"id":"priced-only","kind":"expression","params":{"expr":"'stopline.unpriced' in step.metadata"}}`), llmhttptest.Reply{Text: "hi"})
	e.opts = []llmhttp.Option{llmhttp.WithPrices(llmhttp.Prices{"gpt-4o-mini": {Input: 0.15, Output: 0.6}})}
	_, err := chatCall(e, "hello")
	var v *governance.Violation
	if !errors.As(err, &v) || v.PolicyID() != "priced-only" || e.srv.Requests() != 0 {
		t.Errorf("unpriced call with a priced-only policy: %v, %d requests", err, e.srv.Requests())
	}
}

// TestErrorStatus: a provider error is recorded and passed on; it stops
// the run only when a policy says so.
func TestErrorStatus(t *testing.T) {
	for _, d := range []driver{drivers[0], drivers[1], drivers[4], drivers[5]} {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{Status: 500, Text: "boom"}, llmhttptest.Reply{Status: 429, Text: "slow down"}, llmhttptest.Reply{Text: "fine"})
			for _, code := range []string{"500", "429"} {
				_, err := d.call(e, "hi")
				if err == nil || !strings.Contains(err.Error(), code) {
					t.Fatalf("error %v, want the provider's %s", err, code)
				}
				var v *governance.Violation
				if errors.As(err, &v) {
					t.Fatalf("provider error stopped the run: %v", err)
				}
			}
			if got, err := d.call(e, "hi"); err != nil || got.text != "fine" {
				t.Fatalf("call after errors: %+v %v", got, err)
			}
			steps := e.steps()
			if len(steps) != 3 || steps[0].StepType != prevention.StepMessage || steps[0].Metadata[llmhttp.MetaHTTPStatus] != "500" ||
				!strings.Contains(steps[0].Output, "boom") || steps[1].Metadata[llmhttp.MetaHTTPStatus] != "429" || steps[0].Metadata[llmhttp.MetaRequestID] != "req_1" {
				t.Errorf("steps: %v", steps)
			}
		})
	}
	t.Run("policy stops on 5xx", func(t *testing.T) {
		e := newEnv(t, policy(100, `{"id":"provider-down","kind":"expression","params":{"reason":"system_failure",
			"expr":"step.type == 'message' && 'stopline.http_status' in step.metadata && step.metadata['stopline.http_status'].startsWith('5')"}}`),
			llmhttptest.Reply{Status: 503, Text: "unavailable"})
		_, err := chatCall(e, "hi")
		var v *governance.Violation
		if !errors.As(err, &v) || v.Reason() != prevention.ReasonSystemFailure {
			t.Fatalf("error %v, want the provider-down violation", err)
		}
		if rec := e.run.Record(); rec.Status != governance.StatusFailedPolicy || rec.TerminationReason != prevention.ReasonSystemFailure {
			t.Errorf("run %s / %s", rec.Status, rec.TerminationReason)
		}
	})
}
