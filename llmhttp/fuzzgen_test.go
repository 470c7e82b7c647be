package llmhttp_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// fuzzGen turns fuzz bytes into choices: a provider's response in a
// wire format, structurally valid most of the time, with the shapes that
// have hidden tool calls before (legacy function calls, every item and
// block type, names split across chunks, duplicate and case-variant
// keys, look-alike names, events after the end, text and a tool call in
// one chunk, unknown types, indexes out of order).
type fuzzGen struct {
	b []byte
	i int
}

func (g *fuzzGen) byte() byte {
	if g.i >= len(g.b) {
		return 0
	}
	c := g.b[g.i]
	g.i++
	return c
}

// n is a choice in [0, n).
func (g *fuzzGen) n(n int) int {
	if n <= 1 {
		return 0
	}
	return int(g.byte()) % n
}

// rare is true about once in k.
func (g *fuzzGen) rare(k int) bool { return g.n(k) == k-1 }

func (g *fuzzGen) rest() []byte {
	if g.i >= len(g.b) {
		return nil
	}
	r := g.b[g.i:]
	g.i = len(g.b)
	return r
}

var fuzzNames = []string{"search", "search", "search", "search", "shell", "shell", "calc", "calc", "sh", "ell", "Shell", "shell\u200b", "\u0455hell", "", "web_search", "she\u00adll"}

func (g *fuzzGen) name() string { return fuzzNames[g.n(len(fuzzNames))] }

var fuzzArgs = []string{`{}`, `{}`, `{"q":"x"}`, `{"q":"x"}`, `{"q":"x"}`, `{"cmd":"rm -rf /"}`, `{"cmd":"rm -rf /"}`, `{"q":"a","q":"b"}`, `not json`, `{"q":"\ud800\u0022"}`, ``, `{"Q":"x","q":"y"}`}

func (g *fuzzGen) args() string { return fuzzArgs[g.n(len(fuzzArgs))] }

var fuzzTexts = []string{"Hello", " there", "", "123-45-", "6789", "ok"}

func (g *fuzzGen) text() string { return fuzzTexts[g.n(len(fuzzTexts))] }

// split cuts s into 1 to 3 pieces.
func (g *fuzzGen) split(s string) []string {
	k := 1 + g.n(3)
	var out []string
	for i := 1; i < k && len(s) > 0; i++ {
		at := g.n(len(s) + 1)
		out = append(out, s[:at])
		s = s[at:]
	}
	return append(out, s)
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

var keyRe = regexp.MustCompile(`"([a-z_]+)":`)

// mutate, once in k, changes a JSON document's keys: a key duplicated before
// itself with another value, written in upper case, or both.
func (g *fuzzGen) mutate(doc string, k int) string {
	if !g.rare(k) {
		return doc
	}
	locs := keyRe.FindAllStringSubmatchIndex(doc, -1)
	if len(locs) == 0 {
		return doc
	}
	l := locs[g.n(len(locs))]
	key := doc[l[2]:l[3]]
	alt := js(g.name())
	switch g.n(3) {
	case 0:
		return doc[:l[0]] + `"` + key + `":` + alt + "," + doc[l[0]:]
	case 1:
		return doc[:l[2]] + strings.ToUpper(key) + doc[l[3]:]
	default:
		return doc[:l[0]] + `"` + strings.ToUpper(key) + `":` + alt + "," + doc[l[0]:]
	}
}

// shuffle rarely drops, repeats or swaps events, or adds one after the
// end.
func (g *fuzzGen) shuffle(ev []string, extra string) []string {
	if len(ev) == 0 {
		return ev
	}
	switch g.n(12) {
	case 0:
		i := g.n(len(ev))
		ev = append(ev[:i:i], ev[i+1:]...)
	case 1:
		i := g.n(len(ev))
		ev = append(ev[:i+1:i+1], ev[i:]...)
	case 2:
		i, j := g.n(len(ev)), g.n(len(ev))
		ev[i], ev[j] = ev[j], ev[i]
	case 3:
		ev = append(ev, extra)
	}
	return ev
}

func sse(name, data string) string {
	if name == "" {
		return "data: " + data + "\n\n"
	}
	return "event: " + name + "\ndata: " + data + "\n\n"
}

// OpenAI Chat Completions.

func (g *fuzzGen) chatTool(i int) map[string]any {
	tc := map[string]any{"id": fmt.Sprintf("call_%d", i), "type": "function"}
	switch g.n(8) {
	case 0:
		tc["type"] = "custom"
		tc["custom"] = map[string]any{"name": g.name(), "input": g.args()}
	case 1:
		tc["custom"] = map[string]any{"name": g.name(), "input": g.args()}
		tc["function"] = map[string]any{"name": g.name(), "arguments": g.args()}
	case 2:
		tc["type"] = "web_search"
	default:
		tc["function"] = map[string]any{"name": g.name(), "arguments": g.args()}
	}
	return tc
}

func (g *fuzzGen) chat(stream bool) string {
	if !stream {
		var choices []any
		for c := range 1 + g.n(2) {
			msg := map[string]any{"role": "assistant", "content": g.text(), "refusal": nil}
			var calls []any
			for i := range g.n(3) {
				calls = append(calls, g.chatTool(i))
			}
			if calls != nil {
				msg["tool_calls"] = calls
			}
			if g.rare(4) {
				msg["function_call"] = map[string]any{"name": g.name(), "arguments": g.args()}
			}
			choices = append(choices, map[string]any{"index": c, "message": msg, "finish_reason": "tool_calls"})
		}
		return g.mutate(js(map[string]any{"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o", "choices": choices,
			"usage": map[string]any{"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}), 6)
	}
	id := "c1"
	chunk := func(choice int, delta map[string]any, finish any) string {
		cid := id
		if g.rare(24) {
			cid = []string{"c2", ""}[g.n(2)]
		}
		return sse("", g.mutate(js(map[string]any{"id": cid, "object": "chat.completion.chunk", "model": "gpt-4o",
			"choices": []any{map[string]any{"index": choice, "delta": delta, "finish_reason": finish}}}), 64))
	}
	var ev []string
	choices := 1 + g.n(2)
	for c := range choices {
		ev = append(ev, chunk(c, map[string]any{"role": "assistant", "content": ""}, nil))
		for range g.n(3) {
			ev = append(ev, chunk(c, map[string]any{"content": g.text()}, nil))
		}
		for i := range g.n(3) {
			index := i
			switch g.n(10) {
			case 0:
				index = -1
			case 1:
				index = i + 2
			}
			tc := g.chatTool(i)
			f, _ := tc["function"].(map[string]any)
			if f == nil {
				tc["index"] = index
				ev = append(ev, chunk(c, map[string]any{"tool_calls": []any{tc}}, nil))
				continue
			}
			names := g.split(f["name"].(string))
			args := g.split(f["arguments"].(string))
			for k := 0; k < max(len(names), len(args)); k++ {
				part := map[string]any{"index": index}
				fn := map[string]any{}
				if k < len(names) {
					fn["name"] = names[k]
				}
				if k < len(args) {
					fn["arguments"] = args[k]
				}
				part["function"] = fn
				if k == 0 {
					part["id"], part["type"] = tc["id"], "function"
				}
				delta := map[string]any{"tool_calls": []any{part}}
				if g.rare(4) {
					delta["content"] = g.text()
				}
				ev = append(ev, chunk(c, delta, nil))
			}
		}
		if g.rare(5) {
			name, args := g.split(g.name()), g.split(g.args())
			for k := 0; k < max(len(name), len(args)); k++ {
				fc := map[string]any{}
				if k < len(name) {
					fc["name"] = name[k]
				}
				if k < len(args) {
					fc["arguments"] = args[k]
				}
				ev = append(ev, chunk(c, map[string]any{"function_call": fc}, nil))
			}
		}
		ev = append(ev, chunk(c, map[string]any{}, "stop"))
	}
	ev = append(ev, sse("", js(map[string]any{"id": id, "object": "chat.completion.chunk", "model": "gpt-4o", "choices": []any{},
		"usage": map[string]any{"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}})))
	if g.rare(12) {
		ev = append(ev, sse("", `{"error":{"message":"boom","type":"server_error"}}`))
	}
	if !g.rare(8) {
		ev = append(ev, "data: [DONE]\n\n")
	}
	extra := chunk(0, map[string]any{"tool_calls": []any{map[string]any{"index": 0, "id": "call_9", "type": "function",
		"function": map[string]any{"name": "shell", "arguments": "{}"}}}}, nil)
	return strings.Join(g.shuffle(ev, extra), "")
}

// OpenAI Responses.

var responsesItemTypes = []string{"function_call", "function_call", "function_call", "message", "message", "message", "custom_tool_call", "shell_call", "mcp_call",
	"computer_call", "reasoning", "web_search_call", "function_call_output", "telepathy_call"}

// responsesItemOf is an item of type typ, complete or as added.
func responsesItemOf(typ, id, name, args, text string, complete bool) map[string]any {
	status := "completed"
	if !complete {
		status = "in_progress"
	}
	it := map[string]any{"type": typ, "id": id, "status": status}
	switch typ {
	case "message":
		content := []any{}
		if complete {
			content = []any{map[string]any{"type": "output_text", "text": text, "annotations": []any{}}}
		}
		it["role"], it["content"] = "assistant", content
	case "function_call", "mcp_call":
		if !complete {
			args = ""
		}
		it["call_id"], it["name"], it["arguments"], it["server_label"] = "call_"+id, name, args, "ops"
	case "custom_tool_call":
		if !complete {
			args = ""
		}
		it["call_id"], it["name"], it["input"] = "call_"+id, name, args
	case "shell_call":
		it["call_id"], it["action"] = "call_"+id, map[string]any{"commands": []string{args}, "timeout_ms": 1000, "max_output_length": 100}
	case "computer_call":
		it["call_id"], it["action"] = "call_"+id, map[string]any{"type": "click", "x": 1, "y": 2}
	case "web_search_call":
		it["action"] = map[string]any{"type": "search", "query": args}
	case "reasoning":
		it["summary"] = []any{}
	default:
		it["call_id"], it["name"], it["output"] = "call_"+id, name, args
	}
	return it
}

func (g *fuzzGen) responses(stream bool) string {
	type item struct{ typ, id, name, args, text string }
	var items []item
	for i := range 1 + g.n(3) {
		items = append(items, item{responsesItemTypes[g.n(len(responsesItemTypes))], fmt.Sprintf("it_%d", i), g.name(), g.args(), g.text()})
	}
	body := func(status string, output []any) map[string]any {
		return map[string]any{"id": "resp_1", "object": "response", "status": status, "model": "gpt-4o", "output": output,
			"usage": map[string]any{"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}}
	}
	var output []any
	for _, it := range items {
		output = append(output, responsesItemOf(it.typ, it.id, it.name, it.args, it.text, true))
	}
	if !stream {
		return g.mutate(js(body("completed", output)), 6)
	}
	seq := 0
	event := func(typ string, fields map[string]any) string {
		fields["type"], fields["sequence_number"] = typ, seq
		seq++
		name := typ
		if g.rare(24) {
			name = []string{"", "response.completed", "thread.message"}[g.n(3)]
		}
		return sse(name, g.mutate(js(fields), 64))
	}
	ev := []string{event("response.created", map[string]any{"response": body("in_progress", []any{})})}
	for i, it := range items {
		ev = append(ev, event("response.output_item.added", map[string]any{"output_index": i, "item": responsesItemOf(it.typ, it.id, it.name, it.args, it.text, false)}))
		switch it.typ {
		case "message":
			ev = append(ev, event("response.content_part.added", map[string]any{"item_id": it.id, "output_index": i, "content_index": 0,
				"part": map[string]any{"type": "output_text", "text": "", "annotations": []any{}}}))
			for _, p := range g.split(it.text) {
				ev = append(ev, event("response.output_text.delta", map[string]any{"item_id": it.id, "output_index": i, "content_index": 0, "delta": p}))
			}
			done := it.text
			if g.rare(10) {
				done = g.text()
			}
			ev = append(ev, event("response.output_text.done", map[string]any{"item_id": it.id, "output_index": i, "content_index": 0, "text": done}))
		case "function_call", "custom_tool_call", "mcp_call":
			prefix := map[string]string{"function_call": "response.function_call_arguments", "custom_tool_call": "response.custom_tool_call_input", "mcp_call": "response.mcp_call_arguments"}[it.typ]
			field := "arguments"
			if it.typ == "custom_tool_call" {
				field = "input"
			}
			for _, p := range g.split(it.args) {
				ev = append(ev, event(prefix+".delta", map[string]any{"item_id": it.id, "output_index": i, "delta": p}))
			}
			done := it.args
			if g.rare(10) {
				done = g.args()
			}
			ev = append(ev, event(prefix+".done", map[string]any{"item_id": it.id, "output_index": i, field: done}))
		}
		done := responsesItemOf(it.typ, it.id, it.name, it.args, it.text, true)
		if g.rare(10) {
			done = responsesItemOf(it.typ, it.id, g.name(), g.args(), g.text(), true)
		}
		ev = append(ev, event("response.output_item.done", map[string]any{"output_index": i, "item": done}))
	}
	final := output
	switch g.n(10) {
	case 0:
		final = []any{}
	case 1:
		if len(items) > 0 {
			it := items[0]
			final = append([]any{responsesItemOf(it.typ, it.id, g.name(), g.args(), g.text(), true)}, output[1:]...)
		}
	}
	if g.rare(12) {
		ev = append(ev, event("error", map[string]any{"code": "server_error", "message": "boom", "param": nil}))
	}
	ev = append(ev, event([]string{"response.completed", "response.completed", "response.incomplete", "response.failed"}[g.n(4)], map[string]any{"response": body("completed", final)}))
	extra := event("response.output_item.added", map[string]any{"output_index": len(items), "item": responsesItemOf("function_call", "late", "shell", "{}", "", true)})
	return strings.Join(g.shuffle(ev, extra), "")
}

// Anthropic Messages.

var messagesBlockTypes = []string{"text", "text", "text", "tool_use", "tool_use", "tool_use", "server_tool_use", "mcp_tool_use", "thinking", "web_search_tool_result", "tool_result", "remote_tool_use"}

func messagesBlockOf(typ string, i int, name, input, text string) map[string]any {
	b := map[string]any{"type": typ}
	switch typ {
	case "text":
		b["text"] = text
	case "thinking":
		b["thinking"], b["signature"] = text, "sig"
	case "web_search_tool_result", "tool_result":
		b["tool_use_id"], b["content"] = fmt.Sprintf("toolu_%d", i), []any{}
	default:
		b["id"], b["name"] = fmt.Sprintf("toolu_%d", i), name
		if json.Valid([]byte(input)) && strings.HasPrefix(input, "{") {
			b["input"] = json.RawMessage(input)
		} else {
			b["input"] = map[string]any{}
		}
		if typ == "mcp_tool_use" {
			b["server_name"] = "ops"
		}
	}
	return b
}

func (g *fuzzGen) messages(stream bool) string {
	type block struct{ typ, name, input, text string }
	var blocks []block
	for range 1 + g.n(3) {
		blocks = append(blocks, block{messagesBlockTypes[g.n(len(messagesBlockTypes))], g.name(), g.args(), g.text()})
	}
	if !stream {
		var content []any
		for i, b := range blocks {
			content = append(content, messagesBlockOf(b.typ, i, b.name, b.input, b.text))
		}
		return g.mutate(js(map[string]any{"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5", "content": content,
			"stop_reason": "tool_use", "stop_sequence": nil, "usage": map[string]any{"input_tokens": 3, "output_tokens": 2}}), 6)
	}
	event := func(typ string, fields map[string]any) string {
		fields["type"] = typ
		name := typ
		if g.rare(24) {
			name = []string{"", "ping", "content_block_delta"}[g.n(3)]
		}
		return sse(name, g.mutate(js(fields), 64))
	}
	startContent := []any{}
	if g.rare(16) {
		startContent = []any{messagesBlockOf("tool_use", 9, "shell", "{}", "")}
	}
	ev := []string{event("message_start", map[string]any{"message": map[string]any{"id": "msg_1", "type": "message", "role": "assistant",
		"model": "claude-sonnet-4-5", "content": startContent, "stop_reason": nil, "usage": map[string]any{"input_tokens": 3, "output_tokens": 1}}})}
	lastText := -1
	for i, b := range blocks {
		index := i
		if g.rare(12) {
			index = []int{i + 1, i - 1, 0}[g.n(3)]
		}
		start := messagesBlockOf(b.typ, i, b.name, "{}", "")
		if b.typ == "tool_use" && g.rare(6) {
			start["input"] = json.RawMessage(`{"cmd":"ls"}`)
		}
		ev = append(ev, event("content_block_start", map[string]any{"index": index, "content_block": start}))
		switch b.typ {
		case "text":
			for _, p := range g.split(b.text) {
				ev = append(ev, event("content_block_delta", map[string]any{"index": index, "delta": map[string]any{"type": "text_delta", "text": p}}))
			}
			lastText = index
		case "thinking":
			ev = append(ev, event("content_block_delta", map[string]any{"index": index, "delta": map[string]any{"type": "thinking_delta", "thinking": b.text}}))
		case "tool_use", "server_tool_use", "mcp_tool_use", "remote_tool_use":
			for _, p := range g.split(b.input) {
				ev = append(ev, event("content_block_delta", map[string]any{"index": index, "delta": map[string]any{"type": "input_json_delta", "partial_json": p}}))
			}
		}
		if g.rare(10) && lastText >= 0 {
			ev = append(ev, event("content_block_delta", map[string]any{"index": lastText, "delta": map[string]any{"type": "text_delta", "text": g.text()}}))
		}
		ev = append(ev, event("content_block_stop", map[string]any{"index": index}))
		if g.rare(10) {
			ev = append(ev, event("content_block_delta", map[string]any{"index": index, "delta": map[string]any{"type": "input_json_delta", "partial_json": `"x"`}}))
		}
	}
	if g.rare(12) {
		ev = append(ev, event("error", map[string]any{"error": map[string]any{"type": "overloaded_error", "message": "Overloaded"}}))
	}
	ev = append(ev, event("message_delta", map[string]any{"delta": map[string]any{"stop_reason": "end_turn", "stop_sequence": nil}, "usage": map[string]any{"output_tokens": 5}}),
		event("message_stop", map[string]any{}))
	extra := event("content_block_start", map[string]any{"index": len(blocks), "content_block": messagesBlockOf("tool_use", len(blocks), "shell", "{}", "")})
	return strings.Join(g.shuffle(ev, extra), "")
}
