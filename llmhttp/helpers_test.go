package llmhttp_test

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/kinds/cel"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/llmhttp/llmhttptest"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

var ctx = context.Background()

var prices = llmhttp.Prices{
	"gpt-4o":            {Input: 2.5, CachedInput: 1.25, Output: 10},
	"claude-sonnet-4-5": {Input: 3, CachedInput: 0.3, Output: 15},
}

// policy is the test policy set: a cost budget, no SSNs in output, no
// shell tool.
func policy(maxCents float64, extra ...string) string {
	pols := append([]string{
		`{"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}}`,
		`{"id":"no-ssn","kind":"content","params":{"fields":["output"],"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}}`,
		`{"id":"no-shell","kind":"tool_denylist","params":{"deny":["shell"]}}`,
	}, extra...)
	return fmt.Sprintf(`{"tenant_id":"acme","thresholds":{"max_cost_cents":%g},"policies":[%s]}`, maxCents, strings.Join(pols, ","))
}

type env struct {
	t     *testing.T
	store *memstore.Store
	run   *governance.Run
	srv   *llmhttptest.Server
	opts  []llmhttp.Option
	// retries is the SDKs' retry count (0 unless a test wants the SDKs'
	// own behaviour).
	retries int
	// rt, if set, answers the SDKs' requests instead of srv.
	rt http.RoundTripper
}

// url is the provider's URL.
func (e *env) url() string {
	if e.srv == nil {
		return "http://model.test"
	}
	return e.srv.URL
}

// fixedTransport answers every request with the same response.
type fixedTransport struct {
	status int
	ctype  string
	body   string
}

func (f fixedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	return &http.Response{StatusCode: f.status, Status: http.StatusText(f.status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {f.ctype}}, Body: io.NopCloser(strings.NewReader(f.body)), Request: req}, nil
}

// testKinds are the built-in policy kinds and CEL expressions.
var testKinds = func() *prevention.Kinds {
	k, err := prevention.NewKinds(cel.Kind())
	if err != nil {
		panic(err)
	}
	return k
}()

func newEnv(t *testing.T, doc string, replies ...llmhttptest.Reply) *env {
	t.Helper()
	snap, err := snapshot.Parse("policy.json", []byte(doc), time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	r, err := governance.NewRunner(st, governance.WithKinds(testKinds))
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	srv := llmhttptest.NewServer(replies...)
	t.Cleanup(srv.Close)
	return &env{t: t, store: st, run: run, srv: srv, opts: []llmhttp.Option{llmhttp.WithPrices(prices)}}
}

// step is a recorded step with its content.
type step struct {
	trace.Record
	trace.Content
}

func (e *env) steps() []step {
	e.t.Helper()
	recs, err := e.store.Records(ctx, "acme", e.run.ID())
	if err != nil {
		e.t.Fatal(err)
	}
	contents, err := e.store.Contents(ctx, "acme", e.run.ID())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []step
	for _, r := range recs {
		if r.Kind == trace.KindStep {
			out = append(out, step{r, contents[r.StepIndex]})
		}
	}
	if _, err := governance.VerifyRun(ctx, e.store, "acme", e.run.ID()); err != nil {
		e.t.Errorf("chain: %v", err)
	}
	return out
}

func (s step) String() string {
	var md []string
	for k, v := range s.Metadata {
		md = append(md, k+"="+v)
	}
	sort.Strings(md)
	return fmt.Sprintf("#%d %s model=%q tool=%q tokens=%d cost=%g status=%s out=%q in=%q md=%v",
		s.StepIndex, s.StepType, s.Model, s.Tool, s.Tokens, s.CostCents, s.Status, s.Output, s.Input, md)
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// reply is what the agent got from a call.
type reply struct {
	text  string   // the text delivered to the agent
	tools []string // tool calls the agent saw complete: name + " " + arguments
}

// driver makes one call with an official SDK, through the middleware.
type driver struct {
	name   string
	api    string
	stream bool
	model  string
	call   func(e *env, prompt string) (reply, error)
}

func (e *env) openai(extra ...option.RequestOption) *openai.Client {
	opts := append([]option.RequestOption{
		option.WithBaseURL(e.url() + "/v1"), option.WithAPIKey("test"), option.WithMaxRetries(e.retries),
		option.WithMiddleware(llmhttp.Middleware(e.run, e.opts...)),
	}, extra...)
	if e.rt != nil {
		opts = append(opts, option.WithHTTPClient(&http.Client{Transport: e.rt}))
	}
	c := openai.NewClient(opts...)
	return &c
}

// optionsWithout are the options of e.openai, without the middleware.
func optionsWithout(e *env) []option.RequestOption {
	return []option.RequestOption{option.WithBaseURL(e.srv.URL + "/v1"), option.WithAPIKey("test"), option.WithMaxRetries(0)}
}

func (e *env) anthropic(extra ...aoption.RequestOption) *anthropic.Client {
	opts := append([]aoption.RequestOption{
		aoption.WithBaseURL(e.url()), aoption.WithAPIKey("test"), aoption.WithMaxRetries(e.retries),
		aoption.WithMiddleware(llmhttp.Middleware(e.run, e.opts...)),
	}, extra...)
	if e.rt != nil {
		opts = append(opts, aoption.WithHTTPClient(&http.Client{Transport: e.rt}))
	}
	c := anthropic.NewClient(opts...)
	return &c
}

func chatParams(prompt string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:    "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)},
	}
}

func chatCall(e *env, prompt string) (reply, error) {
	c, err := e.openai().Chat.Completions.New(ctx, chatParams(prompt))
	if err != nil {
		return reply{}, err
	}
	r := reply{text: c.Choices[0].Message.Content}
	for _, tc := range c.Choices[0].Message.ToolCalls {
		r.tools = append(r.tools, tc.Function.Name+" "+tc.Function.Arguments)
	}
	return r, nil
}

func chatStream(e *env, prompt string) (reply, error) {
	p := chatParams(prompt)
	p.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	s := e.openai().Chat.Completions.NewStreaming(ctx, p)
	defer s.Close()
	var r reply
	acc := openai.ChatCompletionAccumulator{}
	for s.Next() {
		ch := s.Current()
		acc.AddChunk(ch)
		if len(ch.Choices) > 0 {
			r.text += ch.Choices[0].Delta.Content
		}
		if tc, ok := acc.JustFinishedToolCall(); ok {
			r.tools = append(r.tools, tc.Name+" "+tc.Arguments)
		}
	}
	return r, s.Err()
}

func responsesParams(prompt string) responses.ResponseNewParams {
	return responses.ResponseNewParams{Model: "gpt-4o", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String(prompt)}}
}

func responsesCall(e *env, prompt string) (reply, error) {
	res, err := e.openai().Responses.New(ctx, responsesParams(prompt))
	if err != nil {
		return reply{}, err
	}
	r := reply{text: res.OutputText()}
	for _, it := range res.Output {
		if it.Type == "function_call" {
			r.tools = append(r.tools, it.Name+" "+it.Arguments.OfString)
		}
	}
	return r, nil
}

func responsesStream(e *env, prompt string) (reply, error) {
	s := e.openai().Responses.NewStreaming(ctx, responsesParams(prompt))
	defer s.Close()
	var r reply
	for s.Next() {
		ev := s.Current()
		switch ev.Type {
		case "response.output_text.delta":
			r.text += ev.Delta
		case "response.output_item.done":
			if ev.Item.Type == "function_call" {
				r.tools = append(r.tools, ev.Item.Name+" "+ev.Item.Arguments.OfString)
			}
		}
	}
	return r, s.Err()
}

func messagesParams(prompt string) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model: "claude-sonnet-4-5", MaxTokens: 1024,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(prompt))},
	}
}

func messagesCall(e *env, prompt string) (reply, error) {
	m, err := e.anthropic().Messages.New(ctx, messagesParams(prompt))
	if err != nil {
		return reply{}, err
	}
	var r reply
	for _, b := range m.Content {
		switch b.Type {
		case "text":
			r.text += b.Text
		case "tool_use":
			r.tools = append(r.tools, b.Name+" "+string(b.Input))
		}
	}
	return r, nil
}

func messagesStream(e *env, prompt string) (reply, error) {
	s := e.anthropic().Messages.NewStreaming(ctx, messagesParams(prompt))
	defer s.Close()
	var r reply
	msg := anthropic.Message{}
	for s.Next() {
		ev := s.Current()
		if err := msg.Accumulate(ev); err != nil {
			return r, err
		}
		switch ev.Type {
		case "content_block_delta":
			r.text += ev.Delta.Text
		case "content_block_stop":
			if b := msg.Content[ev.Index]; b.Type == "tool_use" {
				r.tools = append(r.tools, b.Name+" "+string(b.Input))
			}
		}
	}
	return r, s.Err()
}

var drivers = []driver{
	{"chat", "chat_completions", false, "gpt-4o", chatCall},
	{"chat stream", "chat_completions", true, "gpt-4o", chatStream},
	{"responses", "responses", false, "gpt-4o", responsesCall},
	{"responses stream", "responses", true, "gpt-4o", responsesStream},
	{"messages", "messages", false, "claude-sonnet-4-5", messagesCall},
	{"messages stream", "messages", true, "claude-sonnet-4-5", messagesStream},
}

func provider(d driver) string {
	if d.api == "messages" {
		return "anthropic"
	}
	return "openai"
}
