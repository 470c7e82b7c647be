package llmhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// chatAcc accumulates an OpenAI chat completion stream as the SDK does
// (ssestream.Stream, then ChatCompletionAccumulator.AddChunk):
//
//   - data that starts with "[DONE]" ends the stream; an event whose JSON
//     has a top-level "error" key (null included) is the provider's error;
//     an event name is ignored, but one that starts with "thread." (which
//     the SDK rewrites) is refused;
//   - the first non-empty chunk id is the stream's: a chunk with another
//     (an empty one included), which the SDK's accumulator drops while an
//     agent reading chunks still sees it, is refused;
//   - choice indexes run from 0 to 127; a tool call's index -1 is 0; a
//     tool call's name and arguments are concatenated across chunks, its
//     id and type replaced by the latest non-empty ones;
//   - a tool call index must be one already started or the next one (the
//     SDK fills a gap with empty tool calls, an agent would see them);
//   - the legacy function_call is accumulated the same way (the SDK's
//     accumulator ignores it; an agent reading chunks would not), as a
//     tool call of its own, after the choice's tool_calls;
//   - a custom tool call, which the SDK's chunk type does not carry (its
//     accumulator would hand the agent a tool call without a name), is
//     refused.
type chatAcc struct {
	accState
	streamID string
	idSet    bool
	choices  []*chatChoice
}

type chatChoice struct {
	finished bool
	tools    []*chatTool
	legacy   *chatTool
}

type chatTool struct {
	id, typ    string
	kind       string // "function" or "custom", once known
	name, args strings.Builder
}

func newChatAcc() *chatAcc { return &chatAcc{accState: newAccState()} }

func (a *chatAcc) state() *accState { return &a.accState }

// chatChunk is a chunk of a chat completion stream.
type chatChunk struct {
	ID      string `json:"id"`
	Model   string `json:"model"`
	Choices []struct {
		Index int64 `json:"index"`
		Delta struct {
			Content      *string         `json:"content"`
			Refusal      *string         `json:"refusal"`
			ToolCalls    []chatDeltaTool `json:"tool_calls"`
			FunctionCall *chatFunction   `json:"function_call"`
		} `json:"delta"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *chatUsage      `json:"usage"`
	Error json.RawMessage `json:"error"`
}

type chatDeltaTool struct {
	Index    int64         `json:"index"`
	ID       string        `json:"id"`
	Type     string        `json:"type"`
	Function *chatFunction `json:"function"`
	Custom   *chatCustom   `json:"custom"`
}

// maxChoices bounds the choices of a chat stream, as the SDK's
// accumulator does (indexes 0 to 127).
const maxChoices = 128

func (a *chatAcc) handle(ev sseEvent) (effect, error) {
	if strings.HasPrefix(ev.name, "thread.") {
		return 0, fmt.Errorf("an event named %q", ev.name)
	}
	if !ev.hasData || len(ev.data) == 0 {
		// The SDK dispatches no event without data.
		return 0, nil
	}
	if bytes.HasPrefix(ev.data, []byte("[DONE]")) {
		return effTerminal, nil
	}
	var ch chatChunk
	if err := strictUnmarshal(ev.data, &ch); err != nil {
		return 0, err
	}
	if len(ch.Error) > 0 {
		return effTerminal | effError, nil
	}
	if a.idSet && ch.ID != a.streamID {
		return 0, fmt.Errorf("a chunk of id %q in the stream of %q", ch.ID, a.streamID)
	}
	if !a.idSet && ch.ID != "" {
		a.streamID, a.idSet, a.id = ch.ID, true, ch.ID
	}
	if err := a.setModel(ch.Model); err != nil {
		return 0, err
	}
	var eff effect
	for i := range ch.Choices {
		c := &ch.Choices[i]
		if c.Index < 0 || c.Index >= maxChoices {
			return 0, fmt.Errorf("choice index %d", c.Index)
		}
		idx := int(c.Index)
		for len(a.texts) <= idx {
			a.texts = append(a.texts, &strings.Builder{})
		}
		for len(a.choices) <= idx {
			a.choices = append(a.choices, &chatChoice{})
		}
		choice := a.choices[idx]
		if c.Delta.Content != nil {
			eff |= a.appendText(idx, *c.Delta.Content)
		}
		if c.Delta.Refusal != nil {
			eff |= a.appendText(idx, *c.Delta.Refusal)
		}
		for j := range c.Delta.ToolCalls {
			eff |= effTool
			if err := choice.tool(&c.Delta.ToolCalls[j]); err != nil {
				return 0, err
			}
		}
		if f := c.Delta.FunctionCall; f != nil {
			eff |= effTool
			if choice.legacy == nil {
				choice.legacy = &chatTool{kind: "function_call"}
			}
			choice.legacy.name.WriteString(f.Name)
			choice.legacy.args.WriteString(f.Arguments)
		}
		if c.FinishReason != nil && *c.FinishReason != "" {
			choice.finished = true
			if a.stopReason == "" {
				a.stopReason = *c.FinishReason
			}
		}
	}
	if ch.Usage != nil {
		a.usage, a.hasUsage = ch.Usage.usage(), true
		eff |= effUsage
	}
	return eff, nil
}

// tool applies one tool call delta.
func (c *chatChoice) tool(d *chatDeltaTool) error {
	idx := d.Index
	if idx == -1 {
		idx = 0
	}
	if idx < 0 || idx > int64(len(c.tools)) {
		return fmt.Errorf("tool call index %d after %d tool calls", d.Index, len(c.tools))
	}
	if idx == int64(len(c.tools)) {
		c.tools = append(c.tools, &chatTool{})
	}
	t := c.tools[idx]
	if d.ID != "" {
		t.id = d.ID
	}
	if d.Type != "" {
		t.typ = d.Type
	}
	kind := ""
	switch {
	case d.Custom != nil:
		// The SDK's chunk has no custom field: its accumulator hands the
		// agent a tool call without a name, where a reader of the raw
		// chunk sees a named one.
		return fmt.Errorf("tool call %d is a custom tool call, which the SDK's chunk does not carry", idx)
	case d.Function != nil:
		kind = "function"
		t.name.WriteString(d.Function.Name)
		t.args.WriteString(d.Function.Arguments)
	}
	if kind == "" && (t.typ == "function" || t.typ == "custom") {
		kind = t.typ
	}
	if kind != "" {
		if t.kind != "" && t.kind != kind {
			return fmt.Errorf("tool call %d is a %s, then a %s", idx, t.kind, kind)
		}
		t.kind = kind
	}
	if t.kind != "" && (t.typ == "function" || t.typ == "custom") && t.typ != t.kind {
		return fmt.Errorf("tool call %d of type %q has a %s", idx, t.typ, t.kind)
	}
	return nil
}

func (a *chatAcc) finished() bool {
	if len(a.choices) == 0 {
		return false
	}
	for _, c := range a.choices {
		if !c.finished {
			return false
		}
	}
	return true
}

var errToolWithoutKind = errors.New("a tool call with neither a function nor a custom tool")

func (a *chatAcc) result() (result, error) {
	r := a.base()
	for _, c := range a.choices {
		for _, t := range c.tools {
			if t.kind == "" {
				return result{}, fmt.Errorf("%w (id %q)", errToolWithoutKind, t.id)
			}
			r.tools = append(r.tools, toolCall{id: t.id, name: t.name.String(), args: t.args.String(), meta: []string{MetaToolType, t.kind}})
		}
		if t := c.legacy; t != nil {
			r.tools = append(r.tools, toolCall{name: t.name.String(), args: t.args.String(), meta: []string{MetaToolType, t.kind}})
		}
	}
	return r, nil
}
