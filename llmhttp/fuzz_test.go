package llmhttp_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

// Differential fuzzing, one target per wire format, whole and streamed:
// a provider's response, generated or raw, goes through the real SDK
// with the middleware installed, and every tool call the SDK hands the
// agent must have been recorded as an allowed tool_call step with the
// same name and arguments, or the call must have failed closed (the SDK
// returned an error, and no part of a tool call reached the agent
// before it).
//
// An input's first byte chooses: even, a response generated from the
// bytes that follow (fuzzGen); odd, the raw bytes that follow as the
// body, with a status and content type chosen by the next two bytes.

var fuzzSnap = func() *snapshot.PolicySnapshot {
	snap, err := snapshot.Parse("fuzz.json", []byte(`{"tenant_id":"acme","thresholds":{"max_cost_cents":1e9},"policies":[
		{"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}},
		{"id":"no-shell","kind":"tool_denylist","params":{"deny":["shell"]}}]}`), time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC), prevention.Builtin())
	if err != nil {
		panic(err)
	}
	return snap
}()

// fuzzEnv is an env whose provider is rt, without a server.
func fuzzEnv(t *testing.T, rt http.RoundTripper) *env {
	st := memstore.New()
	r, err := governance.NewRunner(st)
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: fuzzSnap})
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, store: st, run: run, srv: nil, rt: rt, opts: []llmhttp.Option{llmhttp.WithPrices(prices), llmhttp.WithMaxBodyBytes(1 << 20)}}
}

var fuzzStatuses = []int{200, 200, 200, 201, 203, 204, 206, 300, 303, 304, 307, 399, 100, 101, 400, 500, 0}
var fuzzTypes = []string{"application/json", "text/event-stream", "text/event-stream; charset=utf-8", "application/problem+json", "text/plain", ""}

// fuzzCase is the provider's answer.
type fuzzCase struct {
	stream bool
	rt     fixedTransport
}

func decodeFuzz(data []byte, api string) fuzzCase {
	g := &fuzzGen{b: data}
	mode := g.byte()
	stream := mode&1 != 0
	if mode&2 != 0 {
		// Raw: the status, the content type, the body.
		status := fuzzStatuses[g.n(len(fuzzStatuses))]
		ctype := fuzzTypes[g.n(len(fuzzTypes))]
		return fuzzCase{stream: stream, rt: fixedTransport{status: status, ctype: ctype, body: string(g.rest())}}
	}
	fc := fuzzCase{stream: stream, rt: fixedTransport{status: 200, ctype: "application/json"}}
	if stream {
		fc.rt.ctype = "text/event-stream"
	}
	if g.n(16) == 0 {
		fc.rt.status = fuzzStatuses[g.n(len(fuzzStatuses))]
	}
	switch api {
	case "chat_completions":
		fc.rt.body = g.chat(stream)
	case "responses":
		fc.rt.body = g.responses(stream)
	default:
		fc.rt.body = g.messages(stream)
	}
	return fc
}

// encodeRaw is a fuzz input for a raw body.
func encodeRaw(stream bool, status, ctype int, body string) []byte {
	b := byte(2)
	if stream {
		b |= 1
	}
	return append([]byte{b, byte(status), byte(ctype)}, body...)
}

// allowedTools are the tool calls recorded as allowed, "name args".
func allowedTools(t *testing.T, e *env) map[string]bool {
	recs, err := e.store.Records(ctx, "acme", e.run.ID())
	if err != nil {
		t.Fatal(err)
	}
	contents, err := e.store.Contents(ctx, "acme", e.run.ID())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, r := range recs {
		if r.Kind == trace.KindStep && r.StepType == prevention.StepToolCall && r.Status == trace.StatusOK {
			c := contents[r.StepIndex]
			out[r.Tool+" "+c.Input] = true
			out["type:"+c.Metadata[llmhttp.MetaToolType]+" id:"+c.Metadata[llmhttp.MetaToolCallID]] = true
		}
	}
	return out
}

// recordedText is the output of the llm_response step recorded.
func recordedText(t *testing.T, e *env) (string, bool) {
	recs, err := e.store.Records(ctx, "acme", e.run.ID())
	if err != nil {
		t.Fatal(err)
	}
	contents, _ := e.store.Contents(ctx, "acme", e.run.ID())
	for _, r := range recs {
		if r.Kind == trace.KindStep && r.StepType == prevention.StepLLMResponse && r.Status == trace.StatusOK {
			return contents[r.StepIndex].Output, true
		}
	}
	return "", false
}

// seen is what the agent got.
type seen struct {
	tools     []string // "name args", or "type:T id:ID" for built-in tools
	fragments bool     // a part of a tool call reached it
	accErr    error    // the SDK's accumulator refused an event
	text      string   // the text it read
	checkText bool     // text is comparable with the recorded output
	unknown   string   // a type it got that the package does not know
	err       error
}

// fuzzStats counts outcomes, for TestFuzzGenerator.
var fuzzStats struct{ calls, failed, withTools, blocked int }

var fuzzReasons map[string]int

func (s *seen) fail(t *testing.T, e *env, fc fuzzCase) {
	t.Helper()
	ok := allowedTools(t, e)
	fuzzStats.calls++
	var v *governance.Violation
	switch {
	case errors.As(s.err, &v):
		fuzzStats.blocked++
	case s.err != nil:
		fuzzStats.failed++
		if fuzzReasons != nil {
			msg := s.err.Error()
			if i := strings.LastIndex(msg, ": "); i > 0 && len(msg) > 90 {
				msg = msg[:90]
			}
			fuzzReasons[msg]++
		}
	case len(s.tools) > 0:
		fuzzStats.withTools++
	}
	if s.err != nil {
		if s.fragments {
			t.Errorf("the call failed (%v) after a part of a tool call reached the agent\nbody: %q", s.err, fc.rt.body)
		}
		return
	}
	if s.accErr != nil {
		t.Errorf("the SDK's accumulator refused an event the middleware passed: %v\nbody: %q", s.accErr, fc.rt.body)
	}
	if s.unknown != "" {
		t.Errorf("the agent got a %s the middleware does not know\nbody: %q", s.unknown, fc.rt.body)
	}
	for _, tc := range s.tools {
		if !ok[tc] {
			t.Errorf("the agent got the tool call %q, not recorded as allowed (recorded %v)\nbody: %q", tc, ok, fc.rt.body)
		}
	}
	if s.checkText {
		if rec, found := recordedText(t, e); found && rec != s.text {
			t.Errorf("the agent read %q, the step recorded %q\nbody: %q", s.text, rec, fc.rt.body)
		}
	}
}

func compact(raw string) string {
	var b bytes.Buffer
	if json.Compact(&b, []byte(strings.TrimSpace(raw))) != nil {
		return raw
	}
	return b.String()
}

func fuzzChat(t *testing.T, fc fuzzCase) {
	e := fuzzEnv(t, fc.rt)
	var s seen
	if !fc.stream {
		c, err := e.openai().Chat.Completions.New(ctx, chatParams("go"))
		s.err = err
		if err == nil {
			for _, ch := range c.Choices {
				m := ch.Message
				for _, tc := range m.ToolCalls {
					if tc.JSON.Function.Valid() || tc.Type == "function" {
						s.tools = append(s.tools, tc.Function.Name+" "+tc.Function.Arguments)
					}
					if tc.JSON.Custom.Valid() || tc.Type == "custom" {
						s.tools = append(s.tools, tc.Custom.Name+" "+tc.Custom.Input)
					}
				}
				//lint:ignore SA1019 an agent of the legacy API runs it
				if f := m.FunctionCall; m.JSON.FunctionCall.Valid() {
					s.tools = append(s.tools, f.Name+" "+f.Arguments)
				}
			}
		}
		s.fail(t, e, fc)
		return
	}
	st := e.openai().Chat.Completions.NewStreaming(ctx, chatParams("go"))
	acc := openai.ChatCompletionAccumulator{}
	legacy := map[int64][2]string{}
	for st.Next() {
		ch := st.Current()
		if !acc.AddChunk(ch) {
			s.accErr = fmt.Errorf("AddChunk refused %s", ch.RawJSON())
		}
		for _, c := range ch.Choices {
			if len(c.Delta.ToolCalls) > 0 || c.Delta.JSON.FunctionCall.Valid() {
				s.fragments = true
			}
			//lint:ignore SA1019 an agent of the legacy API runs it
			f := c.Delta.FunctionCall
			if c.Delta.JSON.FunctionCall.Valid() {
				l := legacy[c.Index]
				legacy[c.Index] = [2]string{l[0] + f.Name, l[1] + f.Arguments}
			}
		}
	}
	s.err = st.Err()
	st.Close()
	for _, ch := range acc.Choices {
		for _, tc := range ch.Message.ToolCalls {
			s.tools = append(s.tools, tc.Function.Name+" "+tc.Function.Arguments)
		}
	}
	for _, l := range legacy {
		s.tools = append(s.tools, l[0]+" "+l[1])
	}
	s.fail(t, e, fc)
}

// responsesKnown are the output item types the middleware knows.
var responsesKnown = map[string]bool{"message": true, "reasoning": true, "compaction": true, "tool_search_output": true, "program_output": true, "shell_call_output": true}

// responsesTool is the agent's view of a tool item; "" for none.
func responsesTool(it responses.ResponseOutputItemUnion) string {
	switch it.Type {
	case "function_call", "mcp_call", "mcp_approval_request":
		return it.Name + " " + it.Arguments.OfString
	case "custom_tool_call":
		return it.Name + " " + it.Input
	}
	if responsesKnown[it.Type] {
		return ""
	}
	id := it.CallID
	if id == "" {
		id = it.ID
	}
	return "type:" + it.Type + " id:" + id
}

var responsesToolTypes = map[string]bool{"function_call": true, "custom_tool_call": true, "computer_call": true, "local_shell_call": true, "shell_call": true,
	"apply_patch_call": true, "mcp_call": true, "mcp_approval_request": true, "mcp_list_tools": true, "web_search_call": true, "file_search_call": true,
	"code_interpreter_call": true, "image_generation_call": true, "tool_search_call": true, "program": true}

func (s *seen) responsesItem(it responses.ResponseOutputItemUnion) {
	if !responsesKnown[it.Type] && !responsesToolTypes[it.Type] {
		s.unknown = "output item of type " + it.Type
	}
	if tc := responsesTool(it); tc != "" {
		s.tools = append(s.tools, tc)
	}
}

func fuzzResponses(t *testing.T, fc fuzzCase) {
	e := fuzzEnv(t, fc.rt)
	var s seen
	if !fc.stream {
		r, err := e.openai().Responses.New(ctx, responsesParams("go"))
		s.err = err
		if err == nil {
			for _, it := range r.Output {
				s.responsesItem(it)
			}
			s.text, s.checkText = r.OutputText(), true
		}
		s.fail(t, e, fc)
		return
	}
	st := e.openai().Responses.NewStreaming(ctx, responsesParams("go"))
	var text strings.Builder
	for st.Next() {
		ev := st.Current()
		switch ev.Type {
		case "response.created", "response.in_progress", "response.queued", "response.output_text.delta", "response.output_text.done",
			"response.refusal.delta", "response.refusal.done", "response.content_part.added", "response.content_part.done",
			"response.output_text.annotation.added", "response.reasoning_summary_part.added", "response.reasoning_summary_part.done",
			"response.reasoning_summary_text.delta", "response.reasoning_summary_text.done", "response.reasoning_text.delta", "response.reasoning_text.done":
		case "response.output_item.added", "response.output_item.done":
			if it := ev.Item; it.Type != "message" && it.Type != "reasoning" && it.Type != "compaction" {
				s.fragments = true
			}
			if ev.Type == "response.output_item.done" {
				s.responsesItem(ev.Item)
			}
		case "response.completed", "response.incomplete", "response.failed":
			for _, it := range ev.Response.Output {
				if it.Type != "message" && it.Type != "reasoning" && it.Type != "compaction" {
					s.fragments = true
				}
				s.responsesItem(it)
			}
		default:
			s.fragments = true
		}
		switch ev.Type {
		case "response.output_text.delta", "response.refusal.delta":
			text.WriteString(ev.Delta)
		case "response.content_part.added":
			text.WriteString(ev.Part.Text + ev.Part.Refusal)
		}
	}
	s.err = st.Err()
	st.Close()
	s.text, s.checkText = text.String(), true
	s.fail(t, e, fc)
}

var messagesKnown = map[string]bool{"text": true, "thinking": true, "redacted_thinking": true, "compaction": true,
	"tool_use": true, "server_tool_use": true, "mcp_tool_use": true,
	"web_search_tool_result": true, "web_fetch_tool_result": true, "code_execution_tool_result": true, "bash_code_execution_tool_result": true,
	"text_editor_code_execution_tool_result": true, "tool_search_tool_result": true, "advisor_tool_result": true, "mcp_tool_result": true, "container_upload": true}

func (s *seen) messagesContent(content []anthropic.ContentBlockUnion) {
	var text strings.Builder
	for _, b := range content {
		if !messagesKnown[b.Type] {
			s.unknown = "content block of type " + b.Type
		}
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use", "server_tool_use", "mcp_tool_use":
			s.tools = append(s.tools, b.Name+" "+compact(string(b.Input)))
		}
	}
	s.text, s.checkText = text.String(), true
}

func fuzzMessages(t *testing.T, fc fuzzCase) {
	e := fuzzEnv(t, fc.rt)
	var s seen
	if !fc.stream {
		m, err := e.anthropic().Messages.New(ctx, messagesParams("go"))
		s.err = err
		if err == nil {
			s.messagesContent(m.Content)
		}
		s.fail(t, e, fc)
		return
	}
	st := e.anthropic().Messages.NewStreaming(ctx, messagesParams("go"))
	msg := anthropic.Message{}
	for st.Next() {
		ev := st.Current()
		if ev.Type == "content_block_start" && ev.ContentBlock.Type != "text" && ev.ContentBlock.Type != "thinking" && ev.ContentBlock.Type != "redacted_thinking" {
			s.fragments = true
		}
		if ev.Type == "content_block_delta" && ev.Delta.Type == "input_json_delta" {
			s.fragments = true
		}
		if err := msg.Accumulate(ev); err != nil && s.accErr == nil {
			s.accErr = err
		}
	}
	s.err = st.Err()
	st.Close()
	s.messagesContent(msg.Content)
	s.fail(t, e, fc)
}

func FuzzChatCompletions(f *testing.F) {
	for _, seed := range fuzzSeeds["chat_completions"] {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzChat(t, decodeFuzz(data, "chat_completions"))
	})
}

func FuzzResponses(f *testing.F) {
	for _, seed := range fuzzSeeds["responses"] {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzResponses(t, decodeFuzz(data, "responses"))
	})
}

func FuzzMessages(f *testing.F) {
	for _, seed := range fuzzSeeds["messages"] {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzMessages(t, decodeFuzz(data, "messages"))
	})
}

// fuzzSeeds are the cases that hid tool calls before, as raw bodies, and
// a few generated responses.
var fuzzSeeds = func() map[string][][]byte {
	const json, sse = 0, 1 // fuzzTypes
	seeds := map[string][][]byte{}
	add := func(api string, stream bool, status int, body string) {
		ct := json
		if stream {
			ct = sse
		}
		seeds[api] = append(seeds[api], encodeRaw(stream, status, ct, body))
	}
	shell := `{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"shell","arguments":"{}"}}]}`
	add("chat_completions", false, 0, chatBody(`{"role":"assistant","content":null,"function_call":{"name":"shell","arguments":"{}"}}`))
	add("chat_completions", false, 7, chatBody(shell)) // 300
	add("chat_completions", false, 0, chatBody(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"shell","arguments":"{}"},"function":{"name":"search","arguments":"{}"}}]}`))
	add("chat_completions", false, 0, chatBody(`{"role":"assistant","content":null,"TOOL_CALLS":[{"id":"call_1","type":"function","function":{"name":"search","arguments":"{}"}}],"tool_calls":[{"id":"call_2","type":"function","function":{"name":"shell","arguments":"{}"}}]}`))
	add("chat_completions", false, 0, chatBody(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"search","arguments":"{\"q\":\"x\ud800\u0022,\"cmd\":\"rm\"}"}}]}`))
	add("chat_completions", true, 0, chatChunk(`{"role":"assistant","content":null,"function_call":{"name":"shell","arguments":""}}`)+chatEnd)
	add("chat_completions", true, 0, chatChunk(`{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"sh","arguments":""}}]}`)+
		chatChunk(`{"tool_calls":[{"index":0,"function":{"name":"ell","arguments":"{}"}}]}`)+chatEnd)
	add("chat_completions", true, 0, chatChunk(`{"role":"assistant","content":"","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"shell","arguments":"{"}}]}`)+
		chatChunk(`{"content":"Running.","tool_calls":[{"index":0,"function":{"arguments":"}"}}]}`)+chatEnd)
	add("chat_completions", true, 0, chatChunk(`{"role":"assistant","content":"Hi"}`)+chatEnd+
		chatChunk(`{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"shell","arguments":"{}"}}]}`))

	add("responses", false, 0, responsesBody(`{"type":"shell_call","id":"sh_1","call_id":"call_1","action":{"commands":["ls"]},"status":"completed"}`))
	add("responses", false, 8, responsesBody(`{"type":"function_call","id":"fc_1","call_id":"call_1","name":"shell","arguments":"{}"}`)) // 303
	add("responses", false, 0, responsesBody(`{"type":"function_call","id":"fc_1","call_id":"call_1","NAME":"search","name":"shell","arguments":"{}"}`))
	add("responses", false, 0, responsesBody(`{"type":"mcp_call","id":"mcp_1","name":"shell","server_label":"ops","arguments":"{}"}`))
	// Compact streams (a long seed makes the fuzzer's minimizing slow).
	rev := func(typ, fields string) string {
		return "event: " + typ + "\ndata: {\"type\":\"" + typ + "\"," + fields + "}\n\n"
	}
	created := rev("response.created", `"response":{"id":"r1","model":"gpt-4o","status":"in_progress","output":[]}`)
	textItem := rev("response.output_item.added", `"output_index":0,"item":{"type":"message","id":"m1","role":"assistant","content":[]}`) +
		rev("response.content_part.added", `"output_index":0,"item_id":"m1","content_index":0,"part":{"type":"output_text","text":""}`) +
		rev("response.output_text.delta", `"output_index":0,"item_id":"m1","content_index":0,"delta":"Hi"`)
	toolItem := func(i int) string {
		return rev("response.output_item.added", fmt.Sprintf(`"output_index":%d,"item":{"type":"function_call","id":"f1","call_id":"c1","name":"shell","arguments":""}`, i)) +
			rev("response.function_call_arguments.delta", fmt.Sprintf(`"output_index":%d,"item_id":"f1","delta":"{}"`, i)) +
			rev("response.output_item.done", fmt.Sprintf(`"output_index":%d,"item":{"type":"function_call","id":"f1","call_id":"c1","name":"shell","arguments":"{}"}`, i))
	}
	completed := rev("response.completed", `"response":{"id":"r1","model":"gpt-4o","status":"completed","output":[]}`)
	add("responses", true, 0, created+textItem+completed+toolItem(1))
	add("responses", true, 0, created+toolItem(0)+completed)
	add("responses", true, 0, created+rev("error", `"code":"server_error","message":"boom","param":null`)+toolItem(0)+completed)

	add("messages", false, 0, messagesBody(`{"type":"server_tool_use","id":"srvtoolu_1","name":"shell","input":{}}`))
	add("messages", false, 10, messagesBody(`{"type":"tool_use","id":"toolu_1","name":"shell","input":{}}`)) // 307
	add("messages", false, 0, messagesBody(`{"type":"tool_use","id":"toolu_1","name":"shell","name":"search","input":{}}`))
	add("messages", true, 0, strings.Join(concat([]string{messagesStart}, messagesText(0, "Hi"), messagesEnd, messagesTool(1, "shell", `{}`)), ""))
	add("messages", true, 0, strings.Join(concat([]string{messagesStart}, messagesTool(0, "search", `{"q":`),
		[]string{messagesEvent("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"1}"}}`)}, messagesEnd), ""))
	for _, api := range []string{"chat_completions", "responses", "messages"} {
		for i := range 8 {
			seed := []byte{byte(i & 1)}
			for j := range 64 {
				seed = append(seed, byte(i*31+j*7))
			}
			seeds[api] = append(seeds[api], seed)
		}
	}
	return seeds
}()

// TestFuzzGenerator: the generator makes responses whose tool calls reach
// the agent, responses that are blocked and responses that are refused,
// and the oracle holds on a few thousand of them.
func TestFuzzGenerator(t *testing.T) {
	fuzzStats.calls, fuzzStats.failed, fuzzStats.withTools, fuzzStats.blocked = 0, 0, 0, 0
	fuzzReasons = map[string]int{}
	defer func() { fuzzReasons = nil }()
	for i := range 1500 {
		data := make([]byte, 96)
		for j := range data {
			data[j] = byte((i*131 + j*(i%17+1)*29 + i*j) % 251)
		}
		data[0] = byte(i % 2)
		switch i % 3 {
		case 0:
			fuzzChat(t, decodeFuzz(data, "chat_completions"))
		case 1:
			fuzzResponses(t, decodeFuzz(data, "responses"))
		case 2:
			fuzzMessages(t, decodeFuzz(data, "messages"))
		}
	}
	st := fuzzStats
	if testing.Verbose() {
		for k, v := range fuzzReasons {
			if v > 10 {
				t.Logf("%4d %s", v, k)
			}
		}
	}
	t.Logf("%d calls: %d delivered tool calls, %d blocked by a policy, %d refused or failed", st.calls, st.withTools, st.blocked, st.failed)
	if st.withTools < st.calls/10 || st.blocked < st.calls/40 || st.failed < st.calls/20 {
		t.Errorf("the generator is lopsided: %+v", st)
	}
}
