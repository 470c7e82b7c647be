package llmhttp_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/llmhttp/llmhttptest"
)

func TestProviderErrorEvent(t *testing.T) {
	tests := []struct {
		d      driver
		events []string
	}{
		{drivers[1], []string{
			`data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}` + "\n\n",
			`data: {"error":{"message":"overloaded","type":"server_error","param":null,"code":null}}` + "\n\n",
		}},
		{drivers[5], []string{
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n",
			"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n",
			"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
		}},
	}
	for _, tc := range tests {
		t.Run(tc.d.name, func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{Events: tc.events})
			got, err := tc.d.call(e, "hi")
			var v *governance.Violation
			if err == nil || errors.As(err, &v) {
				t.Fatalf("error %v, want the provider's", err)
			}
			s := e.steps()
			if got.text != "Hi" || len(s) != 1 || s[0].Output != "Hi" || s[0].Metadata[llmhttp.MetaStream] != "provider_error" || e.run.Ended() {
				t.Errorf("agent got %q; steps %v", got.text, s)
			}
		})
	}
}

// TestBudgetMidStream: Anthropic reports input usage first; a call whose
// input alone breaks the budget is cut before any text is delivered.
func TestBudgetMidStream(t *testing.T) {
	e := newEnv(t, policy(5), llmhttptest.Reply{Text: "a long answer", Usage: llmhttptest.Usage{Input: 200000, Output: 50}})
	got, err := messagesStream(e, "summarise this book")
	var v *governance.Violation
	if !errors.As(err, &v) || v.PolicyID() != "cost" || got.text != "" {
		t.Fatalf("agent got %q, %v", got.text, err)
	}
	s := e.steps()
	if len(s) != 1 || s[0].Tokens != 200001 || s[0].Output != "" || s[0].Metadata[llmhttp.MetaUsage] != "partial" {
		t.Errorf("steps: %v", s)
	}
}

func TestChatStreamWithoutDone(t *testing.T) {
	e := newEnv(t, policy(100), llmhttptest.Reply{Events: []string{
		`data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":null}]}` + "\n\n",
		`data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}` + "\n\n",
	}})
	got, err := chatStream(e, "hi")
	if err != nil || got.text != "Hi" {
		t.Fatalf("agent got %q, %v", got.text, err)
	}
	if s := e.steps(); len(s) != 1 || s[0].Metadata[llmhttp.MetaStream] != "complete" || s[0].Tokens != 4 {
		t.Errorf("steps: %v", s)
	}
}

// TestAllowedThenForbiddenTool: a complete tool call is held until every
// tool call of the response is checked; the agent sees neither.
func TestAllowedThenForbiddenTool(t *testing.T) {
	for _, d := range drivers {
		if !d.stream {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{ToolCalls: []llmhttptest.ToolCall{
				{Name: "search", Arguments: `{"q":"disk usage"}`}, {Name: "shell", Arguments: `{"cmd":"du -sh /"}`}}})
			got, err := d.call(e, "how full is the disk?")
			var v *governance.Violation
			if !errors.As(err, &v) || v.StepIndex != 2 || len(got.tools) != 0 {
				t.Fatalf("agent saw %v, %v", got.tools, err)
			}
			s := e.steps()
			if len(s) != 3 || s[1].Tool != "search" || s[1].Input != `{"q":"disk usage"}` || s[2].Tool != "shell" || !s[2].Inflection {
				t.Errorf("steps: %v", s)
			}
		})
	}
}

// TestCancelledMidStream: the caller gives up; what was delivered is
// still recorded.
func TestCancelledMidStream(t *testing.T) {
	e := newEnv(t, policy(100), llmhttptest.Reply{Text: "one two three four five", Delay: 20 * time.Millisecond})
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s := e.openai().Chat.Completions.NewStreaming(cctx, chatParams("count"))
	text := ""
	for s.Next() {
		if len(s.Current().Choices) > 0 {
			text += s.Current().Choices[0].Delta.Content
		}
		if text != "" {
			cancel()
		}
	}
	if s.Err() == nil {
		t.Fatal("no error after cancel")
	}
	s.Close()
	st := e.steps()
	if len(st) != 1 || st[0].Output != text || st[0].Metadata[llmhttp.MetaStream] == "complete" {
		t.Errorf("agent read %q; steps: %v", text, st)
	}
}
