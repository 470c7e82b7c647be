package llmhttp_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/llmhttp/llmhttptest"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

// Limits that span runs: a call reserves its worst case on the tenant's
// counters before its request is sent, and its response settles it.

var t0 = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)

const (
	dailyCostPolicy   = `{"id":"daily-cost","kind":"tenant_budget","params":{"metric":"cost_cents","threshold":"daily_cost","period":"day"}}`
	dailyTokensPolicy = `{"id":"daily-tokens","kind":"tenant_budget","params":{"metric":"tokens","threshold":"daily_tokens","period":"day"}}`
	noSSNPolicy       = `{"id":"no-ssn","kind":"content","params":{"fields":["output"],"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}}`
)

var (
	costCounter   = prevention.Counter{TenantID: "acme", Metric: prevention.MetricCostCents, Window: prevention.Window{Period: prevention.PeriodDay}}
	tokensCounter = prevention.Counter{TenantID: "acme", Metric: prevention.MetricTokens, Window: prevention.Window{Period: prevention.PeriodDay}}
	stepsCounter  = prevention.Counter{TenantID: "acme", Metric: prevention.MetricSteps, Window: prevention.Window{Rolling: time.Minute}}
)

// tenantDoc is a policy set of tenant acme with the given thresholds.
func tenantDoc(thresholds map[string]float64, policies ...string) string {
	th, _ := json.Marshal(thresholds)
	return fmt.Sprintf(`{"tenant_id":"acme","thresholds":%s,"policies":[%s]}`, th, strings.Join(policies, ","))
}

// units is an amount in cents as a cost_cents counter counts it.
func units(cents float64) int64 { return int64(math.Round(cents * prevention.CostUnitsPerCent)) }

// tenantEnv is runs of one tenant on one store, whose clock stands still,
// calling one fake provider.
type tenantEnv struct {
	t      *testing.T
	store  *memstore.Store
	runner *governance.Runner
	snap   *snapshot.PolicySnapshot
	srv    *llmhttptest.Server
	runs   []*governance.Run
}

func newTenantEnv(t *testing.T, doc string, replies ...llmhttptest.Reply) *tenantEnv {
	t.Helper()
	snap, err := snapshot.Parse("policy.json", []byte(doc), t0, prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	r, err := governance.NewRunner(st, governance.WithClock(governance.NewFakeClock(t0)))
	if err != nil {
		t.Fatal(err)
	}
	srv := llmhttptest.NewServer(replies...)
	t.Cleanup(srv.Close)
	return &tenantEnv{t: t, store: st, runner: r, snap: snap, srv: srv}
}

// start starts a run and returns its env, which shares the provider.
func (te *tenantEnv) start(opts ...llmhttp.Option) *env {
	te.t.Helper()
	run, err := te.runner.Start(ctx, governance.StartOptions{Snapshot: te.snap})
	if err != nil {
		te.t.Fatal(err)
	}
	te.runs = append(te.runs, run)
	return &env{t: te.t, store: te.store, run: run, srv: te.srv, opts: append([]llmhttp.Option{llmhttp.WithPrices(prices)}, opts...)}
}

func (te *tenantEnv) usage(c prevention.Counter) int64 {
	te.t.Helper()
	u, err := te.store.Ledger().Usage(ctx, c, t0)
	if err != nil {
		te.t.Fatal(err)
	}
	return u
}

// allowedUnits adds up, in cost units, the steps the policies let
// through in every run: what the ledger must count once every call has
// settled. A blocked step has happened too, but its cost is in its
// record, not in the budget (see package prevention).
func (te *tenantEnv) allowedUnits() int64 {
	te.t.Helper()
	var sum int64
	for _, run := range te.runs {
		recs, err := te.store.Records(ctx, "acme", run.ID())
		if err != nil {
			te.t.Fatal(err)
		}
		for _, rec := range recs {
			if rec.Kind == trace.KindStep && rec.Status != trace.StatusViolation {
				sum += units(rec.CostCents)
			}
		}
		if _, err := governance.VerifyRun(ctx, te.store, "acme", run.ID()); err != nil {
			te.t.Errorf("VerifyRun %s: %v", run.ID(), err)
		}
	}
	return sum
}

// worstCase is a request's worst case as the package documents it: its
// body's bytes / 2 (rounded up) input tokens at the highest input price,
// plus its output cap (per API; def if it sets none), times the choices,
// at the output price.
type worstCase struct {
	input, output int64
	cost          int64 // cost units
}

func worstOf(t *testing.T, api string, body []byte, def int64) worstCase {
	t.Helper()
	var b struct {
		Model               string          `json:"model"`
		MaxTokens           json.RawMessage `json:"max_tokens"`
		MaxCompletionTokens json.RawMessage `json:"max_completion_tokens"`
		MaxOutputTokens     json.RawMessage `json:"max_output_tokens"`
		N                   json.RawMessage `json:"n"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Fatal(err)
	}
	num := func(raw json.RawMessage) float64 {
		var f float64
		_ = json.Unmarshal(raw, &f) // anything but a number is no cap
		return f
	}
	var out float64
	n := 1.0
	switch api {
	case "chat_completions":
		out = max(num(b.MaxTokens), num(b.MaxCompletionTokens))
		n = max(num(b.N), 1)
	case "responses":
		out = num(b.MaxOutputTokens)
	case "messages":
		out = num(b.MaxTokens)
	}
	if out == 0 {
		out = float64(def)
	}
	w := worstCase{input: int64(len(body)+1) / 2, output: int64(out * n)}
	if p, ok := prices.Lookup(b.Model); ok {
		in := max(p.Input, p.CachedInput, p.CacheWrite)
		// Dollars per million tokens are micro-dollars per token; a cost
		// unit is a millionth of a cent, so a hundredth of a micro-dollar.
		w.cost = int64(math.Round((float64(w.input)*in + float64(w.output)*p.Output) * 100))
	}
	return w
}

// apiOf is the API of a request body the drivers send.
func apiOf(body []byte) string {
	switch {
	case strings.Contains(string(body), `"input":`):
		return "responses"
	case strings.Contains(string(body), `"claude`):
		return "messages"
	}
	return "chat_completions"
}

// gate is a llmhttptest.Reply.Gate, opened once by open or, at the
// latest, when the test ends (before the provider is closed, which waits
// for the answers it holds).
type gate struct {
	ch   chan struct{}
	once sync.Once
}

func newGate() *gate { return &gate{ch: make(chan struct{})} }

func (g *gate) open() { g.once.Do(func() { close(g.ch) }) }

// openAtEnd registers g.open as te's last cleanup to run first.
func (te *tenantEnv) openAtEnd(g *gate) { te.t.Cleanup(g.open) }

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTenantBudgetRace: many runs of one tenant call at once, with every
// API, whole and streamed, at the edge of a daily cost budget. The calls
// admitted are held in flight together at the provider: their worst
// cases, reserved, never add up past the budget; every refused call
// would not have fitted beside them and sent nothing; once every call has
// settled, the ledger counts exactly what the steps recorded.
func TestTenantBudgetRace(t *testing.T) {
	const runs = 12
	const budget = 15.0 // cents: room for a few worst cases of 1.5 to 4.2 cents
	gate := newGate()
	var replies []llmhttptest.Reply
	for range runs {
		replies = append(replies, llmhttptest.Reply{Text: "at the edge", Usage: llmhttptest.Usage{Input: 40, Output: 20}, Gate: gate.ch})
	}
	te := newTenantEnv(t, tenantDoc(map[string]float64{"daily_cost": budget}, dailyCostPolicy), replies...)
	te.openAtEnd(gate)
	envs := make([]*env, runs)
	for i := range envs {
		envs[i] = te.start()
	}

	errs := make([]error, runs)
	var refused atomic.Int64
	var wg sync.WaitGroup
	for i, e := range envs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = drivers[i%len(drivers)].call(e, "spend at the edge")
			if errors.Is(errs[i], llmhttp.ErrNotSent) {
				refused.Add(1)
			}
		}()
	}
	// Every call is now refused or waiting at the provider, holding its
	// worst case.
	waitFor(t, "every call to be refused or in flight", func() bool { return int(refused.Load())+te.srv.Requests() == runs })
	held := te.usage(costCounter)
	var admittedWorst int64
	for _, b := range te.srv.Bodies() {
		admittedWorst += worstOf(t, apiOf(b), b, llmhttp.DefaultMaxOutputTokens).cost
	}
	gate.open()
	wg.Wait()

	admitted := runs - int(refused.Load())
	if admitted == 0 || admitted == runs {
		t.Fatalf("%d of %d calls admitted: the budget is not at the edge", admitted, runs)
	}
	if n := te.srv.Requests(); n != admitted {
		t.Errorf("the provider got %d requests for %d calls admitted", n, admitted)
	}
	if held != admittedWorst || admittedWorst > units(budget) {
		t.Errorf("in flight the ledger held %d units; the admitted worst cases add up to %d, against a budget of %d", held, admittedWorst, units(budget))
	}
	for i, err := range errs {
		e, d := envs[i], drivers[i%len(drivers)]
		if !errors.Is(err, llmhttp.ErrNotSent) {
			if err != nil {
				t.Errorf("%s: admitted call failed: %v", d.name, err)
			}
			continue
		}
		var v *governance.Violation
		if !errors.As(err, &v) || v.PolicyID() != "daily-cost" || v.Reason() != prevention.ReasonBudgetExceeded {
			t.Errorf("%s: refused with %v, want the daily-cost violation", d.name, err)
			continue
		}
		// The refused call's worst case, as recorded, did not fit beside
		// the calls admitted (which held theirs until the gate opened).
		s := e.steps()
		last := s[len(s)-1]
		md := last.Metadata
		in, _ := strconv.ParseInt(md[llmhttp.MetaEstimatedInputTokens], 10, 64)
		out, _ := strconv.ParseInt(md[llmhttp.MetaMaxOutputTokens], 10, 64)
		p, _ := prices.Lookup(d.model)
		w := int64(math.Round((float64(in)*max(p.Input, p.CachedInput, p.CacheWrite) + float64(out)*p.Output) * 100))
		if len(s) != 1 || md[llmhttp.MetaPhase] != "before_request" || md[llmhttp.MetaWithheld] != "true" || last.Tokens != 0 || last.CostCents != 0 || in == 0 || out == 0 {
			t.Errorf("%s: refusal recorded as %v", d.name, s)
		}
		if held+w <= units(budget) {
			t.Errorf("%s: refused a worst case of %d units beside %d held, within the budget of %d", d.name, w, held, units(budget))
		}
	}
	if got, want := te.usage(costCounter), te.allowedUnits(); got != want || got == 0 {
		t.Errorf("after every call settled the ledger counts %d units, the steps recorded %d", got, want)
	}
}

// eventsBeforeText is how many events each API's stream sends (from
// llmhttptest) before its first text.
var eventsBeforeText = map[string]int{"chat_completions": 1, "responses": 4, "messages": 3}

// streamed makes a streamed call with driver d's SDK, calling onText with
// the text so far each time text reaches the agent.
func streamed(e *env, d driver, prompt string, onText func(text string)) (reply, error) {
	var r reply
	switch d.api {
	case "chat_completions":
		p := chatParams(prompt)
		p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
		s := e.openai().Chat.Completions.NewStreaming(ctx, p)
		defer s.Close()
		for s.Next() {
			if ch := s.Current(); len(ch.Choices) > 0 && ch.Choices[0].Delta.Content != "" {
				r.text += ch.Choices[0].Delta.Content
				onText(r.text)
			}
		}
		return r, s.Err()
	case "responses":
		s := e.openai().Responses.NewStreaming(ctx, responsesParams(prompt))
		defer s.Close()
		for s.Next() {
			if ev := s.Current(); ev.Type == "response.output_text.delta" {
				r.text += ev.Delta
				onText(r.text)
			}
		}
		return r, s.Err()
	default:
		s := e.anthropic().Messages.NewStreaming(ctx, messagesParams(prompt))
		defer s.Close()
		for s.Next() {
			if ev := s.Current(); ev.Type == "content_block_delta" && ev.Delta.Text != "" {
				r.text += ev.Delta.Text
				onText(r.text)
			}
		}
		return r, s.Err()
	}
}

// TestStreamHoldsItsReservation: a stream holds its worst case on the
// tenant's budget while it streams; blocked mid-way by a content policy,
// it gives the reservation back exactly once (a second release would take
// the first call's spend off the ledger too).
func TestStreamHoldsItsReservation(t *testing.T) {
	for _, d := range drivers {
		if !d.stream {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			// The provider pauses after the first two chunks of text.
			pause := newGate()
			te := newTenantEnv(t, tenantDoc(map[string]float64{"daily_cost": 100}, dailyCostPolicy, noSSNPolicy),
				llmhttptest.Reply{Text: "first", Usage: llmhttptest.Usage{Input: 100, Output: 50}},
				llmhttptest.Reply{
					Chunks: []string{"Your ", "number ", "is ", "123-45-", "6789", ", keep ", "it safe."},
					Text:   "Your number is 123-45-6789, keep it safe.",
					Usage:  llmhttptest.Usage{Input: 10, Output: 12},
					Gate:   pause.ch, GateAfter: eventsBeforeText[d.api] + 2,
				})
			te.openAtEnd(pause)
			e := te.start()
			if _, err := chatCall(e, "first"); err != nil {
				t.Fatal(err)
			}
			first := te.usage(costCounter)
			during := int64(-1)
			got, err := streamed(e, d, "what is my number?", func(text string) {
				if text == "Your number " {
					during = te.usage(costCounter)
					pause.open()
				}
			})
			var v *governance.Violation
			if !errors.As(err, &v) || v.PolicyID() != "no-ssn" || got.text != "Your number is 123-45-" {
				t.Fatalf("agent got %q, %v; want the text up to the SSN and the no-ssn violation", got.text, err)
			}
			w := worstOf(t, d.api, te.srv.Bodies()[1], llmhttp.DefaultMaxOutputTokens)
			if during != first+w.cost {
				t.Errorf("in the middle of the stream the ledger counted %d units, want the first call's %d plus the worst case %d", during, first, w.cost)
			}
			if after := te.usage(costCounter); after != first || after != te.allowedUnits() {
				t.Errorf("after the block the ledger counts %d units, want the first call's %d", after, first)
			}
			s := e.steps()
			if len(s) != 2 || s[1].Metadata[llmhttp.MetaStream] != "blocked" || s[1].Output != got.text || !s[1].Inflection {
				t.Errorf("steps: %v", s)
			}
			// The step records what the stream spent before the block
			// (Anthropic reports the input tokens first); a blocked step
			// counts nothing on the budget.
			if (s[1].CostCents > 0) != (d.api == "messages") {
				t.Errorf("blocked step: %v", s[1])
			}
		})
	}
}

// TestStreamAtTheEdge: a stream whose worst case takes the whole of the
// tenant's budgets completes, holding its reservation to the end. Its
// checks as it streams must not count it twice, once in its reservation
// and once in its usage so far.
func TestStreamAtTheEdge(t *testing.T) {
	for _, d := range drivers {
		if !d.stream {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			reply := llmhttptest.Reply{Text: "All of the budget, and not a cent more.", Usage: llmhttptest.Usage{Input: 30, Output: 40}}
			// The request's worst case, from the same call without limits.
			dry := newEnv(t, policy(100), reply)
			if _, err := d.call(dry, "spend it all"); err != nil {
				t.Fatal(err)
			}
			w := worstOf(t, d.api, dry.srv.Bodies()[0], llmhttp.DefaultMaxOutputTokens)

			budget := (float64(w.cost) + 0.5) / prevention.CostUnitsPerCent // exactly w.cost units
			// The provider pauses after the first three chunks of text.
			pause := newGate()
			reply.Gate, reply.GateAfter = pause.ch, eventsBeforeText[d.api]+3
			te := newTenantEnv(t, tenantDoc(map[string]float64{"daily_cost": budget, "daily_tokens": float64(w.input + w.output)},
				dailyCostPolicy, dailyTokensPolicy, noSSNPolicy), reply)
			te.openAtEnd(pause)
			e := te.start()
			during := int64(-1)
			got, err := streamed(e, d, "spend it all", func(text string) {
				if text == "All of the " {
					during = te.usage(costCounter)
					pause.open()
				}
			})
			if err != nil || got.text != reply.Text {
				t.Fatalf("agent got %q, %v", got.text, err)
			}
			if during != w.cost {
				t.Errorf("in the middle of the stream the ledger counted %d units, want the worst case %d", during, w.cost)
			}
			s := e.steps()
			if len(s) != 1 || s[0].Status != trace.StatusOK || s[0].Metadata[llmhttp.MetaStream] != "complete" || s[0].Tokens != 70 {
				t.Errorf("steps: %v", s)
			}
			if got, want := te.usage(costCounter), te.allowedUnits(); got != want || got == 0 {
				t.Errorf("the ledger counts %d cost units, the step %d", got, want)
			}
			if got := te.usage(tokensCounter); got != 70 {
				t.Errorf("the ledger counts %d tokens, want 70", got)
			}
		})
	}
}

// TestStreamAtTheRateLimit: a stream that takes the last step a tenant
// rate limit allows completes, holding its reservation to the end. Its
// checks as it streams leave the reservation out of the tenant's
// counters (Reservation.Check), so that its step is not counted twice.
func TestStreamAtTheRateLimit(t *testing.T) {
	for _, d := range drivers {
		if !d.stream {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			reply := llmhttptest.Reply{Text: "The last step of the minute.", Usage: llmhttptest.Usage{Input: 30, Output: 40}}
			// The provider pauses after the first three chunks of text.
			pause := newGate()
			reply.Gate, reply.GateAfter = pause.ch, eventsBeforeText[d.api]+3
			te := newTenantEnv(t, tenantDoc(map[string]float64{"daily_cost": 100, "tenant_steps": 1}, dailyCostPolicy, noSSNPolicy,
				`{"id":"pace","kind":"tenant_rate_limit","params":{"threshold":"tenant_steps","window_seconds":60}}`), reply)
			te.openAtEnd(pause)
			during := int64(-1)
			got, err := streamed(te.start(), d, "one more", func(text string) {
				if text == "The last step " {
					during = te.usage(stepsCounter)
					pause.open()
				}
			})
			if err != nil || got.text != reply.Text {
				t.Fatalf("agent got %q, %v", got.text, err)
			}
			if during != 1 {
				t.Errorf("in the middle of the stream the ledger counted %d steps, want its reservation's 1", during)
			}
			if got := te.usage(stepsCounter); got != 1 {
				t.Errorf("the ledger counts %d steps, want 1", got)
			}
			if got, want := te.usage(costCounter), te.allowedUnits(); got != want || got == 0 {
				t.Errorf("the ledger counts %d cost units, the step %d", got, want)
			}
			// The rate limit is reached: the next call is refused unsent.
			_, err = d.call(te.start(), "more")
			var v *governance.Violation
			if !errors.Is(err, llmhttp.ErrNotSent) || !errors.As(err, &v) || v.PolicyID() != "pace" || te.srv.Requests() != 1 {
				t.Errorf("call past the limit: %v, %d requests", err, te.srv.Requests())
			}
		})
	}
}

// TestReservationReleased: a call that records no llm_response step
// gives its reservation back, once; one that records a failed response
// settles it to what that step records.
func TestReservationReleased(t *testing.T) {
	closedEarly := func(e *env, prompt string) (reply, error) {
		s := e.anthropic().Messages.NewStreaming(ctx, messagesParams(prompt))
		for s.Next() {
			if s.Current().Type == "content_block_delta" {
				break
			}
		}
		return reply{}, s.Close()
	}
	tests := []struct {
		name  string
		call  func(e *env, prompt string) (reply, error)
		reply llmhttptest.Reply
		// down: the provider is down (a transport error).
		down bool
		// err: the call's error matches it, or is not nil (want nil).
		err error
		// stepType is the type of the step recorded for the call, if any.
		stepType prevention.StepType
	}{
		{name: "transport error", call: chatCall, down: true},
		{name: "5xx", call: chatCall, reply: llmhttptest.Reply{Status: 500, Text: "boom"}, stepType: prevention.StepMessage},
		{name: "5xx stream", call: messagesStream, reply: llmhttptest.Reply{Status: 529, Text: "overloaded"}, stepType: prevention.StepMessage},
		{name: "malformed", call: responsesCall, reply: llmhttptest.Reply{Raw: `{"id":"resp_1","output":[`}, err: llmhttp.ErrMalformed, stepType: prevention.StepLLMResponse},
		{name: "dropped stream", call: messagesStream, reply: llmhttptest.Reply{Text: "never said", Usage: llmhttptest.Usage{Input: 20, Output: 5}, CutAfter: 1, Drop: true},
			err: llmhttp.ErrTruncated, stepType: prevention.StepLLMResponse},
		{name: "stream closed early", call: closedEarly, reply: llmhttptest.Reply{Text: "one two three", Usage: llmhttptest.Usage{Input: 20, Output: 5}, Delay: 5 * time.Millisecond},
			stepType: prevention.StepLLMResponse},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newTenantEnv(t, tenantDoc(map[string]float64{"daily_cost": 100}, dailyCostPolicy),
				llmhttptest.Reply{Text: "first", Usage: llmhttptest.Usage{Input: 100, Output: 50}}, tc.reply)
			e := te.start()
			if _, err := chatCall(e, "first"); err != nil {
				t.Fatal(err)
			}
			first := te.usage(costCounter)
			if tc.down {
				te.srv.Close()
			}
			_, err := tc.call(e, "second")
			var v *governance.Violation
			switch {
			case errors.Is(err, llmhttp.ErrNotSent) || errors.As(err, &v):
				t.Fatalf("error %v: refused or blocked", err)
			case tc.err != nil && !errors.Is(err, tc.err):
				t.Fatalf("error %v, want %v", err, tc.err)
			case tc.err == nil && tc.stepType != prevention.StepLLMResponse && err == nil:
				t.Fatal("no error")
			}
			s := e.steps()
			want := 1
			if tc.stepType != "" {
				want = 2
				if len(s) == 2 && s[1].StepType != tc.stepType {
					t.Errorf("recorded %v", s[1])
				}
			}
			if len(s) != want || e.run.Ended() {
				t.Fatalf("steps: %v (run ended: %v)", s, e.run.Ended())
			}
			if got, allowed := te.usage(costCounter), te.allowedUnits(); got != allowed || got < first {
				t.Errorf("the ledger counts %d units, the steps recorded %d (the first call %d)", got, allowed, first)
			}
		})
	}
}

// TestWorstCaseReserved: what a call reserves, per API, while it is in
// flight, and what it settles to.
func TestWorstCaseReserved(t *testing.T) {
	tests := []struct {
		name, path, body string
		opts             []llmhttp.Option
		wantOutput       int64
		unpriced         bool
	}{
		{"chat max_completion_tokens and n", "/v1/chat/completions",
			`{"model":"gpt-4o","max_completion_tokens":300,"n":2,"messages":[{"role":"user","content":"hi"}]}`, nil, 600, false},
		{"chat both caps", "/v1/chat/completions",
			`{"model":"gpt-4o","max_tokens":100,"max_completion_tokens":50,"messages":[{"role":"user","content":"hi"}]}`, nil, 100, false},
		{"chat no cap", "/v1/chat/completions",
			`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, nil, llmhttp.DefaultMaxOutputTokens, false},
		{"chat default cap option", "/v1/chat/completions",
			`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`, []llmhttp.Option{llmhttp.WithDefaultMaxOutputTokens(1000)}, 1000, false},
		{"chat cap not a number", "/v1/chat/completions",
			`{"model":"gpt-4o","max_tokens":"many","messages":[{"role":"user","content":"hi"}]}`, nil, llmhttp.DefaultMaxOutputTokens, false},
		{"responses", "/v1/responses",
			`{"model":"gpt-4o","max_output_tokens":200,"input":"hi"}`, nil, 200, false},
		{"responses ignores max_tokens", "/v1/responses",
			`{"model":"gpt-4o","max_tokens":5,"input":"hi"}`, nil, llmhttp.DefaultMaxOutputTokens, false},
		{"messages", "/v1/messages",
			`{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`, nil, 64, false},
		{"unpriced", "/v1/messages",
			`{"model":"claude-opus-9","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}`, nil, 64, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gate := newGate()
			te := newTenantEnv(t, tenantDoc(map[string]float64{"daily_cost": 1000, "daily_tokens": 1e6}, dailyCostPolicy, dailyTokensPolicy),
				llmhttptest.Reply{Text: "ok", Usage: llmhttptest.Usage{Input: 3, Output: 2}, Gate: gate.ch})
			te.openAtEnd(gate)
			e := te.start(tc.opts...)
			hc := llmhttp.Client(e.run, e.opts...)
			done := make(chan error, 1)
			go func() {
				res, err := hc.Post(te.srv.URL+tc.path, "application/json", strings.NewReader(tc.body))
				if err == nil {
					_, err = io.Copy(io.Discard, res.Body)
					res.Body.Close()
					if err == nil && res.StatusCode != http.StatusOK {
						err = errors.New(res.Status)
					}
				}
				done <- err
			}()
			waitFor(t, "the request", func() bool { return te.srv.Requests() == 1 })
			wantInput := int64(len(tc.body)+1) / 2
			if got := te.usage(tokensCounter); got != wantInput+tc.wantOutput {
				t.Errorf("in flight the ledger holds %d tokens, want %d input + %d output", got, wantInput, tc.wantOutput)
			}
			w := worstOf(t, apiOf([]byte(tc.body)), []byte(tc.body), tc.wantOutput)
			if w.input != wantInput || w.output != tc.wantOutput || tc.unpriced != (w.cost == 0) {
				t.Fatalf("test case: worst case %+v", w)
			}
			if got := te.usage(costCounter); got != w.cost {
				t.Errorf("in flight the ledger holds %d cost units, want %d", got, w.cost)
			}
			gate.open()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if got := te.usage(tokensCounter); got != 5 {
				t.Errorf("settled to %d tokens, want 5", got)
			}
			if got, want := te.usage(costCounter), te.allowedUnits(); got != want {
				t.Errorf("settled to %d cost units, the step recorded %d", got, want)
			}
		})
	}
	if _, err := llmhttp.New(newEnv(t, policy(1)).run, llmhttp.WithDefaultMaxOutputTokens(0)); err == nil {
		t.Error("New accepted a default output cap of 0")
	}
}

// TestWithoutTenantLimitsTheLeastIsChecked: without limits on the
// tenant's tokens or cost, the check before sending is the least a call
// can add, as before reservations: a run budget that a call's worst case
// would break, but its spend so far does not, lets it through.
func TestWithoutTenantLimitsTheLeastIsChecked(t *testing.T) {
	e := newEnv(t, policy(1), llmhttptest.Reply{Text: "cheap", Usage: llmhttptest.Usage{Input: 10, Output: 10}})
	// Worst case: 4096 output tokens at $10 per million, 4 cents.
	if _, err := chatCall(e, "hi"); err != nil || e.srv.Requests() != 1 {
		t.Fatalf("call within the run budget: %v, %d requests", err, e.srv.Requests())
	}
}
