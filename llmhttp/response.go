package llmhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// result is what a model response says, whatever its API.
type result struct {
	id, model string
	text      string
	usage     usage
	hasUsage  bool
	tools     []toolCall
	stop      string // finish reason, stop reason or response status
}

// toolCall is a tool call the model requests, for the agent to execute,
// or reports, for a tool the provider ran. meta is the step's metadata
// besides its id (key, value pairs; empty values are left out).
type toolCall struct {
	id, name, args string
	meta           []string
}

func parseResponse(a api, body []byte) (result, error) {
	var (
		r   result
		err error
	)
	switch a {
	case apiChat:
		r, err = parseChat(body)
	case apiResponses:
		r, err = parseResponses(body)
	case apiMessages:
		r, err = parseMessages(body)
	default:
		return result{}, errors.New("unknown API")
	}
	if err == nil {
		err = r.check()
	}
	return r, err
}

// OpenAI Chat Completions.

type chatUsage struct {
	PromptTokens        int64 `json:"prompt_tokens"`
	CompletionTokens    int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens     int64 `json:"cached_tokens"`
		CacheWriteTokens int64 `json:"cache_write_tokens"`
	} `json:"prompt_tokens_details"`
}

func (u *chatUsage) usage() usage {
	out := usage{input: u.PromptTokens, output: u.CompletionTokens}
	if d := u.PromptTokensDetails; d != nil {
		out.cached, out.cacheWrite = d.CachedTokens, d.CacheWriteTokens
	}
	return out
}

// chatFunction is a function call of a chat completion: a tool call's
// function, or the legacy function_call.
type chatFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// chatCustom is a custom tool call of a chat completion.
type chatCustom struct {
	Name  string `json:"name"`
	Input string `json:"input"`
}

type chatToolCall struct {
	ID       string        `json:"id"`
	Type     string        `json:"type"`
	Function *chatFunction `json:"function"`
	Custom   *chatCustom   `json:"custom"`
}

// toolCall reads a tool call of a chat completion. The SDK's union has
// both a function and a custom field, read whatever the type says: a
// call with both (or neither) has no single reading, and is refused.
func (tc *chatToolCall) toolCall() (toolCall, error) {
	switch {
	case tc.Function != nil && tc.Custom != nil:
		return toolCall{}, fmt.Errorf("tool call %q has both a function and a custom tool", tc.ID)
	case tc.Function != nil && tc.Type != "custom":
		return toolCall{id: tc.ID, name: tc.Function.Name, args: tc.Function.Arguments, meta: []string{MetaToolType, "function"}}, nil
	case tc.Custom != nil && tc.Type != "function":
		return toolCall{id: tc.ID, name: tc.Custom.Name, args: tc.Custom.Input, meta: []string{MetaToolType, "custom"}}, nil
	}
	return toolCall{}, fmt.Errorf("tool call %q of type %q has no %s", tc.ID, tc.Type, map[bool]string{true: "custom tool", false: "function"}[tc.Type == "custom"])
}

// legacyCall is a legacy function_call as a tool call.
func legacyCall(f *chatFunction) toolCall {
	return toolCall{name: f.Name, args: f.Arguments, meta: []string{MetaToolType, "function_call"}}
}

func parseChat(body []byte) (result, error) {
	var r struct {
		ID      string `json:"id"`
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content      *string        `json:"content"`
				Refusal      *string        `json:"refusal"`
				ToolCalls    []chatToolCall `json:"tool_calls"`
				FunctionCall *chatFunction  `json:"function_call"`
			} `json:"message"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *chatUsage `json:"usage"`
	}
	if err := strictUnmarshal(body, &r); err != nil {
		return result{}, err
	}
	if r.Choices == nil {
		return result{}, errors.New(`no "choices"`)
	}
	out := result{id: r.ID, model: r.Model}
	var texts []string
	for _, ch := range r.Choices {
		var t string
		if ch.Message.Content != nil {
			t += *ch.Message.Content
		}
		if ch.Message.Refusal != nil {
			t += *ch.Message.Refusal
		}
		texts = append(texts, t)
		for i := range ch.Message.ToolCalls {
			tc, err := ch.Message.ToolCalls[i].toolCall()
			if err != nil {
				return result{}, err
			}
			out.tools = append(out.tools, tc)
		}
		if f := ch.Message.FunctionCall; f != nil {
			out.tools = append(out.tools, legacyCall(f))
		}
		if ch.FinishReason != nil && out.stop == "" {
			out.stop = *ch.FinishReason
		}
	}
	out.text = strings.Join(texts, "\n")
	if r.Usage != nil {
		out.usage, out.hasUsage = r.Usage.usage(), true
	}
	return out, nil
}

// OpenAI Responses.

type responsesUsage struct {
	InputTokens        int64 `json:"input_tokens"`
	OutputTokens       int64 `json:"output_tokens"`
	InputTokensDetails *struct {
		CachedTokens     int64 `json:"cached_tokens"`
		CacheWriteTokens int64 `json:"cache_write_tokens"`
	} `json:"input_tokens_details"`
}

func (u *responsesUsage) usage() usage {
	out := usage{input: u.InputTokens, output: u.OutputTokens}
	if d := u.InputTokensDetails; d != nil {
		out.cached, out.cacheWrite = d.CachedTokens, d.CacheWriteTokens
	}
	return out
}

type responsesBody struct {
	ID     string          `json:"id"`
	Model  string          `json:"model"`
	Status string          `json:"status"`
	Output []responsesItem `json:"output"`
	Usage  *responsesUsage `json:"usage"`
}

func parseResponses(body []byte) (result, error) {
	var r responsesBody
	if err := strictUnmarshal(body, &r); err != nil {
		return result{}, err
	}
	if r.Output == nil && r.Status == "" {
		return result{}, errors.New(`no "output"`)
	}
	return r.result()
}

// result reads a whole response: its text, and a tool call per tool
// item; an item of a refused type is an error.
func (r *responsesBody) result() (result, error) {
	out := result{id: r.ID, model: r.Model, stop: r.Status}
	var text strings.Builder
	for i := range r.Output {
		it := &r.Output[i]
		c, err := it.class()
		if err != nil {
			return result{}, err
		}
		switch c {
		case classText:
			t, err := it.text()
			if err != nil {
				return result{}, err
			}
			text.WriteString(t)
		case classTool:
			tc, err := it.toolCall()
			if err != nil {
				return result{}, err
			}
			out.tools = append(out.tools, tc)
		}
	}
	out.text = text.String()
	if r.Usage != nil {
		out.usage, out.hasUsage = r.Usage.usage(), true
	}
	return out, nil
}

// Anthropic Messages.

type messagesUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	OutputTokens             *int64 `json:"output_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
}

// merge overwrites the counts u has: message_delta's counts are
// cumulative totals and override message_start's.
func (u *messagesUsage) merge(v *messagesUsage) {
	if v == nil {
		return
	}
	if v.InputTokens != nil {
		u.InputTokens = v.InputTokens
	}
	if v.OutputTokens != nil {
		u.OutputTokens = v.OutputTokens
	}
	if v.CacheReadInputTokens != nil {
		u.CacheReadInputTokens = v.CacheReadInputTokens
	}
	if v.CacheCreationInputTokens != nil {
		u.CacheCreationInputTokens = v.CacheCreationInputTokens
	}
}

// usage: Anthropic's input_tokens counts only the input that was neither
// read from nor written to the cache.
func (u *messagesUsage) usage() usage {
	v := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	read, write := v(u.CacheReadInputTokens), v(u.CacheCreationInputTokens)
	return usage{input: v(u.InputTokens) + read + write, cached: read, cacheWrite: write, output: v(u.OutputTokens)}
}

func parseMessages(body []byte) (result, error) {
	var r struct {
		ID         string          `json:"id"`
		Model      string          `json:"model"`
		Content    []messagesBlock `json:"content"`
		StopReason *string         `json:"stop_reason"`
		Usage      *messagesUsage  `json:"usage"`
	}
	if err := strictUnmarshal(body, &r); err != nil {
		return result{}, err
	}
	if r.Content == nil {
		return result{}, errors.New(`no "content"`)
	}
	out := result{id: r.ID, model: r.Model}
	var text strings.Builder
	for i := range r.Content {
		b := &r.Content[i]
		c, err := b.class()
		if err != nil {
			return result{}, err
		}
		switch c {
		case classText:
			text.WriteString(b.Text)
		case classTool:
			tc, err := b.toolCall(b.Input)
			if err != nil {
				return result{}, err
			}
			if len(bytes.TrimSpace(b.Input)) == 0 {
				// A block without input reaches the agent without input
				// (the SDK's Input is empty), not as {}.
				tc.args = ""
			}
			out.tools = append(out.tools, tc)
		}
	}
	out.text = text.String()
	if r.StopReason != nil {
		out.stop = *r.StopReason
	}
	if r.Usage != nil {
		out.usage, out.hasUsage = r.Usage.usage(), true
	}
	return out, nil
}

// compactJSON returns raw without insignificant space, or as it is if it
// is not JSON; "{}" for nothing.
func compactJSON(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "{}"
	}
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}
