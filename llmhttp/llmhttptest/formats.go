package llmhttptest

import (
	"encoding/json"
	"fmt"
	"net/http"
)

const created = 1767225600 // 2026-01-01T00:00:00Z

// OpenAI Chat Completions.

type chatFormat struct{}

func (chatFormat) requestIDHeader() string { return "X-Request-Id" }

func openAIError(status int, msg string) string {
	typ := "server_error"
	switch {
	case status == http.StatusTooManyRequests:
		typ = "rate_limit_exceeded"
	case status < 500:
		typ = "invalid_request_error"
	}
	return js(obj{"error": obj{"message": msg, "type": typ, "param": nil, "code": nil}})
}

func (chatFormat) errorBody(status int, msg string) string { return openAIError(status, msg) }

func chatUsage(u Usage) obj {
	return obj{
		"prompt_tokens": u.Input, "completion_tokens": u.Output, "total_tokens": u.Input + u.Output,
		"prompt_tokens_details":     obj{"cached_tokens": u.Cached, "audio_tokens": 0},
		"completion_tokens_details": obj{"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
	}
}

func finishReason(rep Reply) string {
	if len(rep.ToolCalls) > 0 {
		return "tool_calls"
	}
	return "stop"
}

func (chatFormat) whole(n int, rep Reply) string {
	msg := obj{"role": "assistant", "content": nil, "refusal": nil, "annotations": []any{}}
	if rep.Text != "" {
		msg["content"] = rep.Text
	}
	if len(rep.ToolCalls) > 0 {
		var calls []obj
		for i, tc := range rep.ToolCalls {
			calls = append(calls, obj{"id": callID(tc, i), "type": "function", "function": obj{"name": tc.Name, "arguments": tc.Arguments}})
		}
		msg["tool_calls"] = calls
	}
	return js(obj{
		"id": fmt.Sprintf("chatcmpl-%d", n), "object": "chat.completion", "created": created, "model": rep.Model,
		"choices":            []obj{{"index": 0, "message": msg, "logprobs": nil, "finish_reason": finishReason(rep)}},
		"usage":              chatUsage(rep.Usage),
		"service_tier":       "default",
		"system_fingerprint": "fp_llmhttptest",
	})
}

func (chatFormat) events(n int, rep Reply, includeUsage bool) []string {
	id := fmt.Sprintf("chatcmpl-%d", n)
	chunk := func(delta obj, finish any) string {
		c := obj{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": rep.Model,
			"system_fingerprint": "fp_llmhttptest",
			"choices":            []obj{{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
		}
		if includeUsage {
			c["usage"] = nil
		}
		return sse("", c)
	}
	out := []string{chunk(obj{"role": "assistant", "content": "", "refusal": nil}, nil)}
	for _, t := range chunks(rep) {
		out = append(out, chunk(obj{"content": t}, nil))
	}
	for i, tc := range rep.ToolCalls {
		out = append(out, chunk(obj{"tool_calls": []obj{{"index": i, "id": callID(tc, i), "type": "function",
			"function": obj{"name": tc.Name, "arguments": ""}}}}, nil))
		for _, a := range argChunks(tc.Arguments) {
			out = append(out, chunk(obj{"tool_calls": []obj{{"index": i, "function": obj{"arguments": a}}}}, nil))
		}
	}
	out = append(out, chunk(obj{}, finishReason(rep)))
	if includeUsage {
		out = append(out, sse("", obj{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": rep.Model,
			"system_fingerprint": "fp_llmhttptest", "choices": []obj{}, "usage": chatUsage(rep.Usage),
		}))
	}
	return append(out, "data: [DONE]\n\n")
}

// OpenAI Responses.

type responsesFormat struct{}

func (responsesFormat) requestIDHeader() string { return "X-Request-Id" }

func (responsesFormat) errorBody(status int, msg string) string { return openAIError(status, msg) }

func responsesMessage(n int, text, status string) obj {
	content := []obj{}
	if status == "completed" {
		content = []obj{{"type": "output_text", "text": text, "annotations": []any{}, "logprobs": []any{}}}
	}
	return obj{"type": "message", "id": fmt.Sprintf("msg_%d", n), "status": status, "role": "assistant", "content": content}
}

func responsesCall(tc ToolCall, i int, status string) obj {
	args := tc.Arguments
	if status != "completed" {
		args = ""
	}
	return obj{"type": "function_call", "id": fmt.Sprintf("fc_%d", i+1), "call_id": callID(tc, i), "name": tc.Name, "arguments": args, "status": status}
}

func responsesBody(n int, rep Reply, status string, output []obj) obj {
	r := obj{
		"id": fmt.Sprintf("resp_%d", n), "object": "response", "created_at": created, "status": status,
		"error": nil, "incomplete_details": nil, "instructions": nil, "model": rep.Model,
		"output": output, "parallel_tool_calls": true, "previous_response_id": nil,
		"reasoning": obj{"effort": nil, "summary": nil}, "store": true, "temperature": 1.0,
		"text": obj{"format": obj{"type": "text"}}, "tool_choice": "auto", "tools": []any{}, "top_p": 1.0,
		"truncation": "disabled", "usage": nil, "user": nil, "metadata": obj{},
	}
	if status == "completed" {
		r["usage"] = obj{
			"input_tokens": rep.Usage.Input, "input_tokens_details": obj{"cached_tokens": rep.Usage.Cached},
			"output_tokens": rep.Usage.Output, "output_tokens_details": obj{"reasoning_tokens": 0},
			"total_tokens": rep.Usage.Input + rep.Usage.Output,
		}
	}
	return r
}

func responsesOutput(n int, rep Reply) []obj {
	out := []obj{}
	if rep.Text != "" {
		out = append(out, responsesMessage(n, rep.Text, "completed"))
	}
	for i, tc := range rep.ToolCalls {
		out = append(out, responsesCall(tc, i, "completed"))
	}
	return out
}

func (responsesFormat) whole(n int, rep Reply) string {
	return js(responsesBody(n, rep, "completed", responsesOutput(n, rep)))
}

func (responsesFormat) events(n int, rep Reply, _ bool) []string {
	seq := 0
	ev := func(typ string, fields obj) string {
		fields["type"] = typ
		fields["sequence_number"] = seq
		seq++
		return sse(typ, fields)
	}
	out := []string{
		ev("response.created", obj{"response": responsesBody(n, rep, "in_progress", []obj{})}),
		ev("response.in_progress", obj{"response": responsesBody(n, rep, "in_progress", []obj{})}),
	}
	idx := 0
	if rep.Text != "" {
		itemID := fmt.Sprintf("msg_%d", n)
		out = append(out,
			ev("response.output_item.added", obj{"output_index": idx, "item": responsesMessage(n, "", "in_progress")}),
			ev("response.content_part.added", obj{"item_id": itemID, "output_index": idx, "content_index": 0,
				"part": obj{"type": "output_text", "text": "", "annotations": []any{}, "logprobs": []any{}}}))
		for _, t := range chunks(rep) {
			out = append(out, ev("response.output_text.delta", obj{"item_id": itemID, "output_index": idx, "content_index": 0, "delta": t, "logprobs": []any{}}))
		}
		out = append(out,
			ev("response.output_text.done", obj{"item_id": itemID, "output_index": idx, "content_index": 0, "text": rep.Text, "logprobs": []any{}}),
			ev("response.content_part.done", obj{"item_id": itemID, "output_index": idx, "content_index": 0,
				"part": obj{"type": "output_text", "text": rep.Text, "annotations": []any{}, "logprobs": []any{}}}),
			ev("response.output_item.done", obj{"output_index": idx, "item": responsesMessage(n, rep.Text, "completed")}))
		idx++
	}
	for i, tc := range rep.ToolCalls {
		itemID := fmt.Sprintf("fc_%d", i+1)
		out = append(out, ev("response.output_item.added", obj{"output_index": idx, "item": responsesCall(tc, i, "in_progress")}))
		for _, a := range argChunks(tc.Arguments) {
			out = append(out, ev("response.function_call_arguments.delta", obj{"item_id": itemID, "output_index": idx, "delta": a}))
		}
		out = append(out,
			ev("response.function_call_arguments.done", obj{"item_id": itemID, "output_index": idx, "arguments": tc.Arguments}),
			ev("response.output_item.done", obj{"output_index": idx, "item": responsesCall(tc, i, "completed")}))
		idx++
	}
	return append(out, ev("response.completed", obj{"response": responsesBody(n, rep, "completed", responsesOutput(n, rep))}))
}

// Anthropic Messages.

type messagesFormat struct{}

func (messagesFormat) requestIDHeader() string { return "Request-Id" }

func (messagesFormat) errorBody(status int, msg string) string {
	typ := "api_error"
	switch status {
	case http.StatusBadRequest:
		typ = "invalid_request_error"
	case http.StatusTooManyRequests:
		typ = "rate_limit_error"
	case 529:
		typ = "overloaded_error"
	}
	return js(obj{"type": "error", "error": obj{"type": typ, "message": msg}})
}

func messagesUsage(u Usage, output int64) obj {
	return obj{"input_tokens": u.Input - u.Cached, "cache_read_input_tokens": u.Cached,
		"cache_creation_input_tokens": 0, "output_tokens": output, "service_tier": "standard"}
}

func stopReason(rep Reply) string {
	if len(rep.ToolCalls) > 0 {
		return "tool_use"
	}
	return "end_turn"
}

func rawJSON(s string) json.RawMessage {
	if !json.Valid([]byte(s)) {
		return json.RawMessage(js(s))
	}
	return json.RawMessage(s)
}

func (messagesFormat) whole(n int, rep Reply) string {
	content := []obj{}
	if rep.Text != "" {
		content = append(content, obj{"type": "text", "text": rep.Text})
	}
	for i, tc := range rep.ToolCalls {
		content = append(content, obj{"type": "tool_use", "id": callID(tc, i), "name": tc.Name, "input": rawJSON(tc.Arguments)})
	}
	return js(obj{
		"id": fmt.Sprintf("msg_%d", n), "type": "message", "role": "assistant", "model": rep.Model,
		"content": content, "stop_reason": stopReason(rep), "stop_sequence": nil,
		"usage": messagesUsage(rep.Usage, rep.Usage.Output),
	})
}

func (messagesFormat) events(n int, rep Reply, _ bool) []string {
	ev := func(typ string, fields obj) string {
		fields["type"] = typ
		return sse(typ, fields)
	}
	out := []string{
		ev("message_start", obj{"message": obj{
			"id": fmt.Sprintf("msg_%d", n), "type": "message", "role": "assistant", "model": rep.Model,
			"content": []any{}, "stop_reason": nil, "stop_sequence": nil, "usage": messagesUsage(rep.Usage, 1),
		}}),
	}
	idx := 0
	if rep.Text != "" {
		out = append(out,
			ev("content_block_start", obj{"index": idx, "content_block": obj{"type": "text", "text": ""}}),
			ev("ping", obj{}))
		for _, t := range chunks(rep) {
			out = append(out, ev("content_block_delta", obj{"index": idx, "delta": obj{"type": "text_delta", "text": t}}))
		}
		out = append(out, ev("content_block_stop", obj{"index": idx}))
		idx++
	}
	for i, tc := range rep.ToolCalls {
		out = append(out, ev("content_block_start", obj{"index": idx, "content_block": obj{"type": "tool_use", "id": callID(tc, i), "name": tc.Name, "input": obj{}}}))
		for _, a := range argChunks(tc.Arguments) {
			out = append(out, ev("content_block_delta", obj{"index": idx, "delta": obj{"type": "input_json_delta", "partial_json": a}}))
		}
		out = append(out, ev("content_block_stop", obj{"index": idx}))
		idx++
	}
	return append(out,
		ev("message_delta", obj{"delta": obj{"stop_reason": stopReason(rep), "stop_sequence": nil}, "usage": obj{"output_tokens": rep.Usage.Output}}),
		ev("message_stop", obj{}))
}
