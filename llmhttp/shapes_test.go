package llmhttp_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/llmhttp/llmhttptest"
	"github.com/stopline/stopline/prevention"
)

// Every shape in which a provider asks for a tool is a governed tool_call
// step, whole and streamed; a shape this package does not know is
// refused.

// wantViolation fails unless err is the no-shell violation and the agent
// saw no tool call.
func wantViolation(t *testing.T, e *env, got reply, err error) {
	t.Helper()
	var v *governance.Violation
	if !errors.As(err, &v) || v.PolicyID() != "no-shell" {
		t.Fatalf("error %v, want the no-shell violation; steps %v", err, e.steps())
	}
	if len(got.tools) != 0 {
		t.Errorf("the agent saw tool calls %v", got.tools)
	}
	s := e.steps()
	if last := s[len(s)-1]; last.StepType != prevention.StepToolCall || last.Tool != "shell" || !last.Inflection {
		t.Errorf("steps: %v", s)
	}
}

// wantMalformed fails unless err matches ErrMalformed, the agent saw no
// tool call, and the response is recorded as malformed.
func wantMalformed(t *testing.T, e *env, got reply, err error) {
	t.Helper()
	if !errors.Is(err, llmhttp.ErrMalformed) {
		t.Fatalf("error %v, want ErrMalformed; agent got %+v; steps %v", err, got, e.steps())
	}
	if len(got.tools) != 0 {
		t.Errorf("the agent saw tool calls %v", got.tools)
	}
	s := e.steps()
	last := s[len(s)-1]
	if last.Metadata[llmhttp.MetaBody] != "malformed" && last.Metadata[llmhttp.MetaStream] != "malformed" {
		t.Errorf("steps: %v", s)
	}
	for _, st := range s {
		if st.StepType == prevention.StepToolCall {
			t.Errorf("a tool call recorded from a malformed response: %v", st)
		}
	}
}

func chatChunk(delta string) string {
	return `data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":` + delta + `,"finish_reason":null}]}` + "\n\n"
}

const chatEnd = `data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}` + "\n\n" + "data: [DONE]\n\n"

func chatBody(message string) string {
	return `{"id":"chatcmpl-1","object":"chat.completion","model":"gpt-4o","choices":[{"index":0,"message":` + message + `,"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}`
}

// legacyChatCall is chatCall, for an agent that also runs the legacy
// function_call.
func legacyChatCall(e *env, prompt string) (reply, error) {
	c, err := e.openai().Chat.Completions.New(ctx, chatParams(prompt))
	if err != nil {
		return reply{}, err
	}
	m := c.Choices[0].Message
	r := reply{text: m.Content}
	for _, tc := range m.ToolCalls {
		r.tools = append(r.tools, tc.Function.Name+tc.Custom.Name+" "+tc.Function.Arguments+tc.Custom.Input)
	}
	//lint:ignore SA1019 an agent of the legacy API runs it
	if f := m.FunctionCall; f.Name != "" {
		r.tools = append(r.tools, f.Name+" "+f.Arguments)
	}
	return r, nil
}

// legacyChatStream is chatStream, for an agent that also runs the legacy
// function_call it concatenates from the chunks.
func legacyChatStream(e *env, prompt string) (reply, error) {
	s := e.openai().Chat.Completions.NewStreaming(ctx, chatParams(prompt))
	defer s.Close()
	var r reply
	acc := openai.ChatCompletionAccumulator{}
	var name, args string
	for s.Next() {
		ch := s.Current()
		acc.AddChunk(ch)
		for _, c := range ch.Choices {
			r.text += c.Delta.Content
			//lint:ignore SA1019 an agent of the legacy API runs it
			f := c.Delta.FunctionCall
			name += f.Name
			args += f.Arguments
		}
		if tc, ok := acc.JustFinishedToolCall(); ok {
			r.tools = append(r.tools, tc.Name+" "+tc.Arguments)
		}
	}
	if name != "" {
		r.tools = append(r.tools, name+" "+args)
	}
	return r, s.Err()
}

// TestLegacyFunctionCall: the deprecated function_call is a tool call.
func TestLegacyFunctionCall(t *testing.T) {
	t.Run("whole", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Raw: chatBody(`{"role":"assistant","content":null,"function_call":{"name":"shell","arguments":"{\"cmd\":\"rm -rf /\"}"}}`)})
		got, err := legacyChatCall(e, "clean up")
		wantViolation(t, e, got, err)
		if s := e.steps(); s[1].Input != `{"cmd":"rm -rf /"}` || s[1].Metadata[llmhttp.MetaToolType] != "function_call" {
			t.Errorf("steps: %v", s)
		}
	})
	t.Run("streamed", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Events: []string{
			chatChunk(`{"role":"assistant","content":null,"function_call":{"name":"shell","arguments":""}}`),
			chatChunk(`{"function_call":{"arguments":"{\"cmd\":"}}`),
			chatChunk(`{"function_call":{"arguments":"\"rm -rf /\"}"}}`),
			chatEnd,
		}})
		got, err := legacyChatStream(e, "clean up")
		wantViolation(t, e, got, err)
	})
}

// TestChatToolShapes: a custom tool call is a tool call; one with both a
// function and a custom tool has two readings, and is refused.
func TestChatToolShapes(t *testing.T) {
	t.Run("custom", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Raw: chatBody(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"custom","custom":{"name":"shell","input":"rm -rf /"}}]}`)})
		got, err := legacyChatCall(e, "clean up")
		wantViolation(t, e, got, err)
	})
	t.Run("function and custom", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Raw: chatBody(`{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"custom","custom":{"name":"search","input":"x"},"function":{"name":"shell","arguments":"{}"}}]}`)})
		got, err := legacyChatCall(e, "clean up")
		wantMalformed(t, e, got, err)
	})
}

func responsesBody(items ...string) string {
	return `{"id":"resp_1","object":"response","status":"completed","model":"gpt-4o","output":[` + strings.Join(items, ",") +
		`],"usage":{"input_tokens":3,"output_tokens":2,"total_tokens":5}}`
}

// TestResponsesItemTypes: every item type the agent or the provider runs
// is a tool call, under its name; types not known are refused.
func TestResponsesItemTypes(t *testing.T) {
	calls := []struct{ item, tool, args string }{
		{`{"type":"function_call","id":"fc_1","call_id":"call_1","name":"shell","arguments":"{\"cmd\":\"ls\"}","status":"completed"}`, "shell", `{"cmd":"ls"}`},
		{`{"type":"custom_tool_call","id":"ct_1","call_id":"call_1","name":"shell","input":"ls"}`, "shell", "ls"},
		{`{"type":"shell_call","id":"sh_1","call_id":"call_1","action":{"commands":["ls"],"timeout_ms":1000,"max_output_length":100},"status":"completed"}`, "shell", `{"commands":["ls"],"timeout_ms":1000,"max_output_length":100}`},
		{`{"type":"local_shell_call","id":"ls_1","call_id":"call_1","action":{"type":"exec","command":["ls"],"env":{}},"status":"completed"}`, "local_shell", `{"type":"exec","command":["ls"],"env":{}}`},
		{`{"type":"computer_call","id":"cc_1","call_id":"call_1","action":{"type":"click","x":1,"y":2,"button":"left"},"pending_safety_checks":[],"status":"completed"}`, "computer", `{"type":"click","x":1,"y":2,"button":"left"}`},
		{`{"type":"apply_patch_call","id":"ap_1","call_id":"call_1","operation":{"type":"delete_file","path":"/etc/passwd"},"status":"completed"}`, "apply_patch", `{"type":"delete_file","path":"/etc/passwd"}`},
		{`{"type":"mcp_call","id":"mcp_1","name":"shell","server_label":"ops","arguments":"{}"}`, "shell", `{}`},
		{`{"type":"mcp_approval_request","id":"mcpr_1","name":"shell","server_label":"ops","arguments":"{}"}`, "shell", `{}`},
		{`{"type":"mcp_list_tools","id":"mcpl_1","server_label":"ops","tools":[]}`, "mcp_list_tools", `{}`},
		{`{"type":"web_search_call","id":"ws_1","action":{"type":"search","query":"x"},"status":"completed"}`, "web_search", `{"type":"search","query":"x"}`},
		{`{"type":"file_search_call","id":"fs_1","queries":["x"],"status":"completed"}`, "file_search", `["x"]`},
		{`{"type":"code_interpreter_call","id":"ci_1","code":"print(1)","container_id":"c","outputs":[],"status":"completed"}`, "code_interpreter", "print(1)"},
		{`{"type":"image_generation_call","id":"ig_1","result":"","status":"completed"}`, "image_generation", `{}`},
		{`{"type":"tool_search_call","id":"ts_1","call_id":"call_1","arguments":{"query":"x"},"execution":"server","status":"completed"}`, "tool_search", `{"query":"x"}`},
		{`{"type":"program","id":"p_1","call_id":"call_1","code":"run()","fingerprint":"f"}`, "program", "run()"},
	}
	for _, c := range calls {
		typ := strings.Split(strings.Split(c.item, `"type":"`)[1], `"`)[0]
		t.Run(typ, func(t *testing.T) {
			doc := policy(100, `{"id":"nothing-else","kind":"tool_denylist","params":{"deny":["`+c.tool+`"]}}`)
			e := newEnv(t, doc, llmhttptest.Reply{Raw: responsesBody(c.item)})
			_, err := responsesCall(e, "go")
			var v *governance.Violation
			if !errors.As(err, &v) {
				t.Fatalf("error %v, want a violation; steps %v", err, e.steps())
			}
			s := e.steps()
			if len(s) != 2 || s[1].Tool != c.tool || s[1].Input != c.args || s[1].Metadata[llmhttp.MetaToolType] != typ {
				t.Errorf("steps: %v", s)
			}
		})
	}
	for _, item := range []string{
		`{"type":"function_call_output","id":"o_1","call_id":"call_1","output":"done"}`,
		`{"type":"additional_tools","id":"a_1","role":"system","tools":[]}`,
		`{"type":"telepathy_call","id":"x_1","name":"shell"}`,
		`{"type":"message","id":"m_1","role":"assistant","status":"completed","content":[{"type":"output_audio","data":"x"}]}`,
	} {
		t.Run("refused "+item, func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{Raw: responsesBody(item)})
			got, err := responsesCall(e, "go")
			wantMalformed(t, e, got, err)
		})
	}
}

func messagesBody(blocks ...string) string {
	return `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[` + strings.Join(blocks, ",") +
		`],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":2}}`
}

// TestMessagesBlockTypes: server tool uses and MCP tool uses are tool
// calls; a block type not known is refused.
func TestMessagesBlockTypes(t *testing.T) {
	for _, b := range []string{
		`{"type":"server_tool_use","id":"srvtoolu_1","name":"shell","input":{"command":"ls"}}`,
		`{"type":"mcp_tool_use","id":"mcptoolu_1","name":"shell","server_name":"ops","input":{"command":"ls"}}`,
	} {
		t.Run(b, func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{Raw: messagesBody(`{"type":"text","text":"ok"}`, b)})
			got, err := messagesCall(e, "go")
			wantViolation(t, e, got, err)
			if s := e.steps(); s[1].Input != `{"command":"ls"}` {
				t.Errorf("steps: %v", s)
			}
		})
	}
	for _, b := range []string{
		`{"type":"remote_tool_use","id":"x","name":"shell","input":{}}`,
		`{"type":"tool_result","tool_use_id":"x","content":"ok"}`,
	} {
		t.Run("refused "+b, func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{Raw: messagesBody(b)})
			got, err := messagesCall(e, "go")
			wantMalformed(t, e, got, err)
		})
	}
}

// TestStatusesTheSDKsReadAsResults: a 3xx (not followed: no Location, or
// 300) or a 2xx other than 200 is a result to the SDKs, so it is
// governed: the tool call in it is blocked.
func TestStatusesTheSDKsReadAsResults(t *testing.T) {
	shell := llmhttptest.Reply{ToolCalls: []llmhttptest.ToolCall{{Name: "shell", Arguments: `{"cmd":"rm -rf /"}`}}}
	for _, status := range []int{300, 303, 307, 399, 203, 206} {
		for _, d := range drivers {
			t.Run(fmt.Sprint(status, " ", d.name), func(t *testing.T) {
				shell.Model = d.model
				rep := llmhttptest.Reply{Raw: llmhttptest.Whole(llmhttptest.API(d.api), shell), Status: status}
				if d.stream {
					rep = llmhttptest.Reply{Events: llmhttptest.Events(llmhttptest.API(d.api), shell), Status: status}
				}
				e := newEnv(t, policy(100), rep)
				got, err := d.call(e, "clean up")
				wantViolation(t, e, got, err)
			})
		}
	}
}

// TestStatusesNoResultHas: a 204 or 304 with a body (from a transport
// other than net/http's, which drops it) is governed as a result too; an
// informational status, or a status that is none, is refused.
func TestStatusesNoResultHas(t *testing.T) {
	shell := llmhttptest.Reply{ToolCalls: []llmhttptest.ToolCall{{Name: "shell", Arguments: `{"cmd":"rm -rf /"}`}}}
	for _, status := range []int{204, 304, 101, 199, 100, 0, -1} {
		for _, d := range drivers {
			t.Run(fmt.Sprint(status, " ", d.name), func(t *testing.T) {
				shell.Model = d.model
				rt := fixedTransport{status: status, ctype: "application/json", body: llmhttptest.Whole(llmhttptest.API(d.api), shell)}
				if d.stream {
					rt.ctype, rt.body = "text/event-stream", strings.Join(llmhttptest.Events(llmhttptest.API(d.api), shell), "")
				}
				e := newEnv(t, policy(100))
				e.rt = rt
				got, err := d.call(e, "clean up")
				if status >= 200 {
					wantViolation(t, e, got, err)
				} else {
					wantMalformed(t, e, got, err)
				}
			})
		}
	}
}
