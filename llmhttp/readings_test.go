package llmhttp_test

import (
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/openai/openai-go/v3"

	"github.com/stopline/stopline/llmhttp/llmhttptest"
)

// What the SDK hands the agent is what was governed, read the same way:
// JSON that two parsers read differently, names that look like others,
// stream events an accumulator would apply differently, are refused.

// TestJSONTwoParsersReadDifferently: the SDKs read the first of a
// duplicated key and keys in their exact case; encoding/json the last,
// and ignoring case. Such a response is refused.
func TestJSONTwoParsersReadDifferently(t *testing.T) {
	tests := []struct {
		name string
		d    driver
		raw  string
	}{
		{"second function object", drivers[0], chatBody(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"shell","arguments":"{}"},"function":{"name":"search","arguments":"{}"}}]}`)},
		{"FUNCTION beside function", drivers[0], chatBody(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"shell","arguments":"{}"},"FUNCTION":{"name":"search","arguments":"{}"}}]}`)},
		{"TOOL_CALLS", drivers[0], chatBody(`{"role":"assistant","content":null,"TOOL_CALLS":[{"id":"call_1","type":"function","function":{"name":"search","arguments":"{}"}}],"tool_calls":[{"id":"call_2","type":"function","function":{"name":"shell","arguments":"{}"}}]}`)},
		{"Name alone", drivers[0], chatBody(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"Name":"search","name":"shell","arguments":"{}"}}]}`)},
		{"escaped duplicate", drivers[0], chatBody(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"shell","n\u0061me":"search","arguments":"{}"}}]}`)},
		{"unpaired surrogate in arguments", drivers[0], chatBody(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"search","arguments":"{\"q\":\"x\ud800\u0022,\"cmd\":\"rm\"}"}}]}`)},
		{"duplicate key in arguments", drivers[0], chatBody(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"search","arguments":"{\"q\":\"x\",\"q\":\"rm -rf /\"}"}}]}`)},
		{"repeated name", drivers[4], messagesBody(`{"type":"tool_use","id":"toolu_1","name":"shell","name":"search","input":{}}`)},
		{"repeated type", drivers[4], messagesBody(`{"type":"tool_use","type":"text","id":"toolu_1","name":"shell","text":"","input":{}}`)},
		{"responses NAME", drivers[2], responsesBody(`{"type":"function_call","id":"fc_1","call_id":"call_1","NAME":"search","name":"shell","arguments":"{}"}`)},
		{"invalid UTF-8", drivers[2], responsesBody("{\"type\":\"function_call\",\"id\":\"fc_1\",\"call_id\":\"call_1\",\"name\":\"sh\xffell\",\"arguments\":\"{}\"}")},
		{"trailing value", drivers[4], messagesBody(`{"type":"text","text":"hi"}`) + `{"content":[{"type":"tool_use","id":"x","name":"shell","input":{}}]}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{Raw: tc.raw})
			got, err := tc.d.call(e, "go")
			wantMalformed(t, e, got, err)
		})
	}
	t.Run("stream event", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Events: []string{
			chatChunk(`{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"shell","arguments":"{}"},"function":{"name":"search","arguments":"{}"}}]}`),
			chatEnd,
		}})
		got, err := legacyChatStream(e, "go")
		wantMalformed(t, e, got, err)
	})
}

// TestNamesThatLookAlike: a tool or model name the runner refuses, or
// with a character no one sees, is refused.
func TestNamesThatLookAlike(t *testing.T) {
	for _, name := range []string{"shell\u200b", "sh\u00adell", "\u202eshell", "shell\ufffd", "shell\u0000", strings.Repeat("s", 2000)} {
		t.Run("tool "+name[:min(len(name), 12)], func(t *testing.T) {
			for _, d := range drivers {
				e := newEnv(t, policy(100), llmhttptest.Reply{ToolCalls: []llmhttptest.ToolCall{{Name: name, Arguments: `{}`}}})
				got, err := d.call(e, "go")
				wantMalformed(t, e, got, err)
			}
		})
	}
	t.Run("response model", func(t *testing.T) {
		for _, d := range drivers {
			e := newEnv(t, policy(100), llmhttptest.Reply{Model: "gpt-4o\u200b", Text: "hi"})
			got, err := d.call(e, "go")
			wantMalformed(t, e, got, err)
		}
	})
	t.Run("tool without a name", func(t *testing.T) {
		for _, d := range drivers {
			e := newEnv(t, policy(100), llmhttptest.Reply{ToolCalls: []llmhttptest.ToolCall{{Name: "", Arguments: `{}`}}})
			got, err := d.call(e, "go")
			wantMalformed(t, e, got, err)
		}
	})
}

// TestStreamedNameAsTheSDKReadsIt: the SDK's accumulator concatenates a
// tool name sent in pieces; so does the governed view.
func TestStreamedNameAsTheSDKReadsIt(t *testing.T) {
	e := newEnv(t, policy(100), llmhttptest.Reply{Events: []string{
		chatChunk(`{"role":"assistant","content":null,"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"sh","arguments":""}}]}`),
		chatChunk(`{"tool_calls":[{"index":0,"function":{"name":"ell","arguments":"{\"cmd\":\"rm -rf /\"}"}}]}`),
		chatEnd,
	}})
	got, err := chatStream(e, "go")
	wantViolation(t, e, got, err)
}

// TestToolFragmentsHeldFromTheFirst: a chunk with text and the last piece
// of a tool call's arguments makes the SDK's accumulator report the call
// finished; the agent sees no piece of it before it is recorded.
func TestToolFragmentsHeldFromTheFirst(t *testing.T) {
	e := newEnv(t, policy(100), llmhttptest.Reply{Events: []string{
		chatChunk(`{"role":"assistant","content":"","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"shell","arguments":"{\"cmd\":"}}]}`),
		chatChunk(`{"content":"Running it.","tool_calls":[{"index":0,"function":{"arguments":"\"rm -rf /\"}"}}]}`),
		chatChunk(`{"content":" Done."}`),
		chatEnd,
	}})
	// The agent runs a tool call as soon as the SDK reports it finished.
	s := e.openai().Chat.Completions.NewStreaming(ctx, chatParams("go"))
	defer s.Close()
	acc := openai.ChatCompletionAccumulator{}
	var ran []string
	for s.Next() {
		acc.AddChunk(s.Current())
		if tc, ok := acc.JustFinishedToolCall(); ok {
			ran = append(ran, tc.Name)
		}
	}
	wantViolation(t, e, reply{tools: ran}, s.Err())
}

// messagesEvent is an Anthropic event, named after its type.
func messagesEvent(typ, data string) string {
	return "event: " + typ + "\ndata: " + data + "\n\n"
}

var messagesStart = messagesEvent("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"usage":{"input_tokens":5,"output_tokens":1}}}`)

func messagesText(index int, text string) []string {
	return []string{
		messagesEvent("content_block_start", `{"type":"content_block_start","index":`+itoa(index)+`,"content_block":{"type":"text","text":""}}`),
		messagesEvent("content_block_delta", `{"type":"content_block_delta","index":`+itoa(index)+`,"delta":{"type":"text_delta","text":"`+text+`"}}`),
		messagesEvent("content_block_stop", `{"type":"content_block_stop","index":`+itoa(index)+`}`),
	}
}

func messagesTool(index int, name, input string) []string {
	return []string{
		messagesEvent("content_block_start", `{"type":"content_block_start","index":`+itoa(index)+`,"content_block":{"type":"tool_use","id":"toolu_`+itoa(index)+`","name":"`+name+`","input":{}}}`),
		messagesEvent("content_block_delta", `{"type":"content_block_delta","index":`+itoa(index)+`,"delta":{"type":"input_json_delta","partial_json":`+quote(input)+`}}`),
		messagesEvent("content_block_stop", `{"type":"content_block_stop","index":`+itoa(index)+`}`),
	}
}

var messagesEnd = []string{
	messagesEvent("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":5}}`),
	messagesEvent("message_stop", `{"type":"message_stop"}`),
}

func concat(parts ...[]string) []string {
	var out []string
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// accumulatedStream is messagesStream, for an agent that runs the tool
// calls of the message it accumulated, at the end.
func accumulatedStream(e *env, prompt string) (reply, error) {
	s := e.anthropic().Messages.NewStreaming(ctx, messagesParams(prompt))
	defer s.Close()
	var r reply
	msg := anthropic.Message{}
	for s.Next() {
		if err := msg.Accumulate(s.Current()); err != nil {
			return r, err
		}
	}
	for _, b := range msg.Content {
		switch b.Type {
		case "text":
			r.text += b.Text
		case "tool_use":
			r.tools = append(r.tools, b.Name+" "+string(b.Input))
		}
	}
	return r, s.Err()
}

// TestEventsAfterTheEnd: events after a stream's final event are applied
// by the SDK (which reads to the end of the body); they are refused.
func TestEventsAfterTheEnd(t *testing.T) {
	t.Run("messages", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Events: concat([]string{messagesStart}, messagesText(0, "Hi"), messagesEnd,
			messagesTool(1, "shell", `{"cmd":"rm -rf /"}`))})
		got, err := accumulatedStream(e, "go")
		wantMalformed(t, e, got, err)
	})
	t.Run("responses", func(t *testing.T) {
		shell := llmhttptest.Events(llmhttptest.Responses, llmhttptest.Reply{Model: "gpt-4o", ToolCalls: []llmhttptest.ToolCall{{Name: "shell", Arguments: `{}`}}})
		events := append(llmhttptest.Events(llmhttptest.Responses, llmhttptest.Reply{Model: "gpt-4o", Text: "Hi"}), shell[2:]...)
		e := newEnv(t, policy(100), llmhttptest.Reply{Events: events})
		got, err := responsesStream(e, "go")
		wantMalformed(t, e, got, err)
	})
	t.Run("responses after an error", func(t *testing.T) {
		shell := llmhttptest.Events(llmhttptest.Responses, llmhttptest.Reply{Model: "gpt-4o", ToolCalls: []llmhttptest.ToolCall{{Name: "shell", Arguments: `{}`}}})
		events := append([]string{shell[0], "event: error\ndata: {\"type\":\"error\",\"code\":\"server_error\",\"message\":\"boom\",\"param\":null,\"sequence_number\":1}\n\n"}, shell[2:]...)
		e := newEnv(t, policy(100), llmhttptest.Reply{Events: events})
		got, err := responsesStream(e, "go")
		wantMalformed(t, e, got, err)
	})
	t.Run("chat", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Events: []string{
			chatChunk(`{"role":"assistant","content":"Hi"}`), chatEnd,
			chatChunk(`{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"shell","arguments":"{}"}}]}`),
		}})
		got, err := chatStream(e, "go")
		wantMalformed(t, e, got, err)
	})
}

// TestStreamsTheSDKReadsOtherwise: events an SDK would apply in a way
// that gives the agent another tool call than the one recorded.
func TestStreamsTheSDKReadsOtherwise(t *testing.T) {
	tests := []struct {
		name   string
		d      driver
		events []string
	}{
		{"delta after the block stopped", drivers[5], concat([]string{messagesStart}, messagesTool(0, "search", `{"q":`),
			[]string{messagesEvent("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"\"x\"}"}}`)}, messagesEnd)},
		{"block started twice at an index", drivers[5], concat([]string{messagesStart}, messagesTool(0, "search", `{}`), messagesTool(0, "shell", `{}`), messagesEnd)},
		{"block at an index that is not the next", drivers[5], concat([]string{messagesStart}, messagesTool(1, "shell", `{}`), messagesEnd)},
		{"delta for a block never started", drivers[5], concat([]string{messagesStart}, messagesTool(0, "search", `{}`)[1:], messagesEnd)},
		{"message_start with content", drivers[5], concat([]string{messagesEvent("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"tool_use","id":"t","name":"shell","input":{}}],"usage":{"input_tokens":5,"output_tokens":1}}}`)}, messagesEnd)},
		{"name and type differ", drivers[5], concat([]string{messagesStart}, []string{messagesEvent("ping", `{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"shell","input":{}}}`)}, messagesEnd)},
		{"input_json_delta to a text block", drivers[5], concat([]string{messagesStart}, messagesText(0, "Hi")[:1],
			[]string{messagesEvent("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}}`)}, messagesEnd)},
		{"chat chunk of another id", drivers[1], []string{
			chatChunk(`{"role":"assistant","content":"Hi"}`),
			strings.Replace(chatChunk(`{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"shell","arguments":"{}"}}]}`), `"c1"`, `"c2"`, 1),
			chatEnd}},
		{"chat custom tool call, which the SDK's chunk does not carry", drivers[1], []string{
			chatChunk(`{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"custom","custom":{"name":"shell","input":"rm -rf /"}}]}`),
			chatEnd}},
		{"text for a text block before the last", drivers[5], concat([]string{messagesStart}, messagesText(0, "123-")[:2], messagesText(1, "xx")[:2],
			[]string{messagesEvent("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"45-6789"}}`)}, messagesEnd)},
		{"text for a message part before the last", drivers[3], func() []string {
			ev := llmhttptest.Events(llmhttptest.Responses, llmhttptest.Reply{Model: "gpt-4o", Text: "Hi there"})
			for i, e := range ev {
				if strings.Contains(e, "response.output_text.delta") {
					part := strings.Replace(strings.Replace(e, "response.output_text.delta", "response.content_part.added", 2), `"delta":"Hi "`, `"part":{"type":"output_text","text":""}`, 1)
					part = strings.Replace(part, `"content_index":0`, `"content_index":1`, 1)
					return append(ev[:i+1:i+1], append([]string{part}, ev[i+1:]...)...)
				}
			}
			return ev
		}()},
		{"an SSE field the SDK ignores and a browser reads", drivers[1], []string{
			"\ufeff" + chatChunk(`{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"shell","arguments":"{}"}}]}`),
			chatEnd}},
		{"chat tool index that is not the next", drivers[1], []string{
			chatChunk(`{"role":"assistant","tool_calls":[{"index":2,"id":"call_1","type":"function","function":{"name":"shell","arguments":"{}"}}]}`),
			chatEnd}},
		{"responses text done differs", drivers[3], func() []string {
			ev := llmhttptest.Events(llmhttptest.Responses, llmhttptest.Reply{Model: "gpt-4o", Text: "Hi there"})
			for i, e := range ev {
				if strings.Contains(e, "response.output_text.done") {
					ev[i] = strings.Replace(e, `"text":"Hi there"`, `"text":"123-45-6789"`, 1)
				}
			}
			return ev
		}()},
		{"responses final text differs", drivers[3], func() []string {
			ev := llmhttptest.Events(llmhttptest.Responses, llmhttptest.Reply{Model: "gpt-4o", Text: "Hi there"})
			last := len(ev) - 1
			ev[last] = strings.Replace(ev[last], `"text":"Hi there"`, `"text":"123-45-6789"`, 1)
			return ev
		}()},
		{"responses final arguments differ", drivers[3], func() []string {
			ev := llmhttptest.Events(llmhttptest.Responses, llmhttptest.Reply{Model: "gpt-4o", ToolCalls: []llmhttptest.ToolCall{{Name: "search", Arguments: `{"q":"x"}`}}})
			last := len(ev) - 1
			ev[last] = strings.Replace(ev[last], `"name":"search"`, `"name":"shell"`, 1)
			return ev
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{Events: tc.events})
			var got reply
			var err error
			if tc.d.api == "messages" {
				got, err = accumulatedStream(e, "go")
			} else {
				got, err = tc.d.call(e, "go")
			}
			wantMalformed(t, e, got, err)
		})
	}
}

func itoa(i int) string { return string(rune('0' + i)) }

func quote(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
}
