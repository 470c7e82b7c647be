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

// toolCall is a tool call the model requests, for the agent to execute.
type toolCall struct {
	id, name, args string
}

func parseResponse(a api, body []byte) (result, error) {
	switch a {
	case apiChat:
		return parseChat(body)
	case apiResponses:
		return parseResponses(body)
	case apiMessages:
		return parseMessages(body)
	}
	return result{}, errors.New("unknown API")
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

type chatToolCall struct {
	Index    int    `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function *struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
	Custom *struct {
		Name  string `json:"name"`
		Input string `json:"input"`
	} `json:"custom"`
}

func parseChat(body []byte) (result, error) {
	var r struct {
		ID      string `json:"id"`
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content   *string        `json:"content"`
				Refusal   *string        `json:"refusal"`
				ToolCalls []chatToolCall `json:"tool_calls"`
			} `json:"message"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *chatUsage `json:"usage"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
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
		for _, tc := range ch.Message.ToolCalls {
			switch {
			case tc.Function != nil && tc.Type != "custom":
				out.tools = append(out.tools, toolCall{id: tc.ID, name: tc.Function.Name, args: tc.Function.Arguments})
			case tc.Custom != nil:
				out.tools = append(out.tools, toolCall{id: tc.ID, name: tc.Custom.Name, args: tc.Custom.Input})
			default:
				return result{}, fmt.Errorf("tool call %q has neither a function nor a custom tool", tc.ID)
			}
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

// responsesItem is an output item of a response.
type responsesItem struct {
	Type      string          `json:"type"`
	ID        string          `json:"id"`
	CallID    string          `json:"call_id"`
	Name      string          `json:"name"`
	Arguments string          `json:"arguments"`
	Input     string          `json:"input"`
	Action    json.RawMessage `json:"action"`
	Operation json.RawMessage `json:"operation"`
	Content   []struct {
		Type    string `json:"type"`
		Text    string `json:"text"`
		Refusal string `json:"refusal"`
	} `json:"content"`
}

// clientTools are the output items the agent, not the provider, executes,
// and the tool name each is governed under.
var clientTools = map[string]string{
	"function_call":    "",
	"custom_tool_call": "",
	"computer_call":    "computer",
	"local_shell_call": "local_shell",
	"shell_call":       "shell",
	"apply_patch_call": "apply_patch",
}

// toolCall returns the item as a tool call, if the agent executes it.
func (it *responsesItem) toolCall() (toolCall, bool) {
	name, ok := clientTools[it.Type]
	if !ok {
		return toolCall{}, false
	}
	id := it.CallID
	if id == "" {
		id = it.ID
	}
	switch it.Type {
	case "function_call":
		return toolCall{id: id, name: it.Name, args: it.Arguments}, true
	case "custom_tool_call":
		return toolCall{id: id, name: it.Name, args: it.Input}, true
	case "apply_patch_call":
		return toolCall{id: id, name: name, args: compactJSON(it.Operation)}, true
	}
	return toolCall{id: id, name: name, args: compactJSON(it.Action)}, true
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
	if err := json.Unmarshal(body, &r); err != nil {
		return result{}, err
	}
	if r.Output == nil && r.Status == "" {
		return result{}, errors.New(`no "output"`)
	}
	return r.result(), nil
}

func (r *responsesBody) result() result {
	out := result{id: r.ID, model: r.Model, stop: r.Status}
	var text strings.Builder
	for i := range r.Output {
		it := &r.Output[i]
		if it.Type == "message" {
			for _, c := range it.Content {
				text.WriteString(c.Text)
				text.WriteString(c.Refusal)
			}
			continue
		}
		if tc, ok := it.toolCall(); ok {
			out.tools = append(out.tools, tc)
		}
	}
	out.text = text.String()
	if r.Usage != nil {
		out.usage, out.hasUsage = r.Usage.usage(), true
	}
	return out
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

type messagesBlock struct {
	Type  string          `json:"type"`
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Text  string          `json:"text"`
	Input json.RawMessage `json:"input"`
}

func parseMessages(body []byte) (result, error) {
	var r struct {
		ID         string          `json:"id"`
		Model      string          `json:"model"`
		Content    []messagesBlock `json:"content"`
		StopReason *string         `json:"stop_reason"`
		Usage      *messagesUsage  `json:"usage"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return result{}, err
	}
	if r.Content == nil {
		return result{}, errors.New(`no "content"`)
	}
	out := result{id: r.ID, model: r.Model}
	var text strings.Builder
	for _, b := range r.Content {
		switch b.Type {
		case "text":
			text.WriteString(b.Text)
		case "tool_use":
			out.tools = append(out.tools, toolCall{id: b.ID, name: b.Name, args: compactJSON(b.Input)})
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
