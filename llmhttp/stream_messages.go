package llmhttp

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// messagesAcc accumulates an Anthropic Messages stream as the SDK does
// (ssestream.Stream, then Message.Accumulate):
//
//   - the event name decides first: "ping" and an unnamed event are
//     skipped, "error" is the provider's error whatever its data; any
//     other event is read by the "type" of its data. An event whose name
//     and type differ, or an unnamed event with data (skipped by the SDK,
//     read by another reader), is refused;
//   - message_start comes first, once, with no content (the SDK would take
//     its content as the message's);
//   - content_block_start's index is the number of blocks started (the
//     SDK refuses any other); deltas and stops name a block started and
//     not yet stopped (the SDK would apply a late delta to a tool call an
//     agent has already run), of a delta type the block's type takes;
//   - a tool block's input is its start's input, replaced by the first
//     input_json_delta if the start's is exactly {}, else appended to,
//     and must be JSON at the end;
//   - text goes to the text block started last (deltas for other blocks
//     may interleave), so that the text checked as it arrives is the
//     text an agent reads block by block;
//   - a block or delta type that is not known (see messagesClasses) is
//     refused; message_stop ends the message.
type messagesAcc struct {
	accState
	started bool
	blocks  []*msgBlock
	usageIn messagesUsage
	// lastText is the text block started last: the only one text may
	// still be added to.
	lastText *msgBlock
}

type msgBlock struct {
	b       messagesBlock
	class   class
	input   []byte
	stopped bool
}

func newMessagesAcc() *messagesAcc { return &messagesAcc{accState: newAccState()} }

func (a *messagesAcc) state() *accState { return &a.accState }

func (a *messagesAcc) finished() bool { return false }

type messagesEvent struct {
	Type    string `json:"type"`
	Index   *int64 `json:"index"`
	Message *struct {
		ID      string            `json:"id"`
		Model   string            `json:"model"`
		Content []json.RawMessage `json:"content"`
		Usage   *messagesUsage    `json:"usage"`
	} `json:"message"`
	ContentBlock *messagesBlock `json:"content_block"`
	Delta        *struct {
		Type        string  `json:"type"`
		Text        *string `json:"text"`
		PartialJSON *string `json:"partial_json"`
		StopReason  *string `json:"stop_reason"`
	} `json:"delta"`
	Usage *messagesUsage `json:"usage"`
}

// The delta types each block type takes.
var messagesDeltas = map[string]map[string]bool{
	"text":            {"text_delta": true, "citations_delta": true},
	"thinking":        {"thinking_delta": true, "signature_delta": true},
	"compaction":      {"compaction_delta": true},
	"tool_use":        {"input_json_delta": true},
	"server_tool_use": {"input_json_delta": true},
	"mcp_tool_use":    {"input_json_delta": true},
}

var errBeforeStart = errors.New("an event before message_start")

func (a *messagesAcc) handle(ev sseEvent) (effect, error) {
	data := bytes.TrimSpace(ev.data)
	switch ev.name {
	case "error":
		return effTerminal | effError, nil
	case "ping":
		if len(data) > 0 {
			var e messagesEvent
			if err := strictUnmarshal(data, &e); err != nil {
				return 0, err
			}
			if e.Type != "ping" {
				return 0, fmt.Errorf("a ping event of type %q", e.Type)
			}
		}
		return 0, nil
	case "":
		if len(data) > 0 {
			return 0, errors.New("an event with data and no name")
		}
		return 0, nil
	}
	if len(data) == 0 {
		// The SDK skips it.
		return 0, nil
	}
	var e messagesEvent
	if err := strictUnmarshal(data, &e); err != nil {
		return 0, err
	}
	if e.Type != ev.name {
		return 0, fmt.Errorf("an event named %q of type %q", ev.name, e.Type)
	}
	if e.Type != "message_start" && !a.started {
		return 0, errBeforeStart
	}
	switch e.Type {
	case "message_start":
		if a.started {
			return 0, errors.New("a second message_start")
		}
		if e.Message == nil {
			return 0, errors.New("message_start without a message")
		}
		if len(e.Message.Content) > 0 {
			return 0, errors.New("message_start with content")
		}
		a.started = true
		a.id = e.Message.ID
		if err := a.setModel(e.Message.Model); err != nil {
			return 0, err
		}
		if e.Message.Usage != nil {
			a.usageIn.merge(e.Message.Usage)
			a.usage, a.hasUsage = a.usageIn.usage(), true
			return effUsage, nil
		}
		return 0, nil
	case "content_block_start":
		return a.start(&e)
	case "content_block_delta", "content_block_stop":
		if e.Index == nil || *e.Index < 0 || *e.Index >= int64(len(a.blocks)) {
			return 0, fmt.Errorf("%s for a block never started", e.Type)
		}
		b := a.blocks[*e.Index]
		if b.stopped {
			return 0, fmt.Errorf("%s for block %d, stopped", e.Type, *e.Index)
		}
		eff := effect(0)
		if holds(b.class) {
			eff = effTool
		}
		if e.Type == "content_block_stop" {
			b.stopped = true
			return eff, nil
		}
		return a.delta(b, &e, eff)
	case "message_delta":
		if e.Delta != nil && e.Delta.StopReason != nil {
			a.stopReason = *e.Delta.StopReason
		}
		if e.Usage != nil {
			a.usageIn.merge(e.Usage)
			a.usage, a.hasUsage = a.usageIn.usage(), true
			return effUsage, nil
		}
		return 0, nil
	case "message_stop":
		return effTerminal, nil
	}
	return 0, fmt.Errorf("an event of type %q", e.Type)
}

// start starts a content block.
func (a *messagesAcc) start(e *messagesEvent) (effect, error) {
	if e.ContentBlock == nil || e.Index == nil {
		return 0, errors.New("content_block_start without a content_block or its index")
	}
	if *e.Index != int64(len(a.blocks)) {
		return 0, fmt.Errorf("content_block_start at index %d after %d blocks", *e.Index, len(a.blocks))
	}
	c, err := e.ContentBlock.class()
	if err != nil {
		return 0, err
	}
	b := &msgBlock{b: *e.ContentBlock, class: c, input: bytes.Clone(e.ContentBlock.Input)}
	a.blocks = append(a.blocks, b)
	switch {
	case c == classText:
		a.lastText = b
		return a.appendText(0, b.b.Text), nil
	case holds(c):
		return effTool, nil
	}
	return 0, nil
}

// delta applies a content_block_delta to b.
func (a *messagesAcc) delta(b *msgBlock, e *messagesEvent, eff effect) (effect, error) {
	d := e.Delta
	if d == nil {
		return 0, errors.New("content_block_delta without a delta")
	}
	if !messagesDeltas[b.b.Type][d.Type] {
		return 0, fmt.Errorf("a %q delta for a %q block", d.Type, b.b.Type)
	}
	switch d.Type {
	case "text_delta":
		if d.Text == nil {
			return 0, errors.New("a text_delta without text")
		}
		if b != a.lastText {
			// The text checked is the text in the order it arrives; an agent
			// reads it block by block: the two agree only while text goes to
			// the last text block.
			return 0, errors.New("a text_delta for a text block before the last")
		}
		return eff | a.appendText(0, *d.Text), nil
	case "input_json_delta":
		if d.PartialJSON == nil {
			return 0, errors.New("an input_json_delta without partial_json")
		}
		if p := *d.PartialJSON; p != "" {
			if string(b.input) == "{}" {
				b.input = []byte(p)
			} else {
				b.input = append(b.input, p...)
			}
		}
	}
	return eff, nil
}

func (a *messagesAcc) result() (result, error) {
	r := a.base()
	for _, b := range a.blocks {
		if b.class != classTool {
			continue
		}
		if err := strictCheck(bytes.TrimSpace(b.input)); len(bytes.TrimSpace(b.input)) > 0 && err != nil {
			return result{}, fmt.Errorf("%s block %q: input: %w", b.b.Type, b.b.ID, err)
		}
		tc, err := b.b.toolCall(b.input)
		if err != nil {
			return result{}, err
		}
		r.tools = append(r.tools, tc)
	}
	return r, nil
}
