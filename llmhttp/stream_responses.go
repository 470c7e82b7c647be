package llmhttp

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// responsesAcc accumulates an OpenAI Responses stream. The SDK hands
// the agent each event as it is (ssestream.Stream; an event name is
// ignored, but one that starts with "thread." is rewritten, and an event
// whose JSON has a top-level "error" key ends the stream with an error),
// and an agent acts on any of several views of the same tool call: the
// item added, its argument deltas and their done event, the item done,
// the final response's output. They must all say the same, or the stream
// is refused:
//
//   - output items are added in order (output_index 0, 1, ...), once;
//     every event about an item names it by output_index and, if it gives
//     one, the item's id;
//   - a tool item's name is the same in every view; its arguments (input,
//     code, shell commands) as streamed are those of its done events, of
//     the item done and of the final response;
//   - a message's text as streamed (content_part.added, output_text and
//     refusal deltas) is the text of its done events, of the item done
//     and of the final response; it goes to the part added last, so that
//     the text checked as it arrives is the text an agent reads;
//   - the final response's output, unless empty, is the items streamed;
//     the created response's output is empty;
//   - an item type that is not known (see responsesClasses), and an event
//     type that is not known, are refused.
type responsesAcc struct {
	accState
	items []*respItem
	final *responsesBody
	// lastPart is the message part added last: the only one text may
	// still be added to.
	lastPart *respPart
}

// respItem is an output item as streamed.
type respItem struct {
	typ, id string
	class   class
	added   *responsesItem
	done    *responsesItem
	// A message's parts: their type and text.
	parts []*respPart
	// A tool item's streamed fields (arguments, input, code), their
	// done events, and a shell call's commands.
	fields     map[string]*strings.Builder
	doneFields map[string]string
	commands   []*strings.Builder
}

type respPart struct {
	typ  string
	text strings.Builder
	done bool
}

func newResponsesAcc() *responsesAcc { return &responsesAcc{accState: newAccState()} }

func (a *responsesAcc) state() *accState { return &a.accState }

func (a *responsesAcc) finished() bool { return false }

type responsesEvent struct {
	Type         string          `json:"type"`
	ItemID       string          `json:"item_id"`
	OutputIndex  *int64          `json:"output_index"`
	ContentIndex *int64          `json:"content_index"`
	CommandIndex *int64          `json:"command_index"`
	Delta        *string         `json:"delta"`
	Item         *responsesItem  `json:"item"`
	Part         *responsesPart  `json:"part"`
	Arguments    *string         `json:"arguments"`
	Input        *string         `json:"input"`
	Code         *string         `json:"code"`
	Command      *string         `json:"command"`
	Text         *string         `json:"text"`
	Refusal      *string         `json:"refusal"`
	Response     *responsesBody  `json:"response"`
	Error        json.RawMessage `json:"error"`
}

// The events about a tool item's streamed arguments: the item type they
// belong to and the field they stream.
var responsesArgEvents = map[string]struct{ itemType, field string }{
	"response.function_call_arguments":    {"function_call", "arguments"},
	"response.custom_tool_call_input":     {"custom_tool_call", "input"},
	"response.mcp_call_arguments":         {"mcp_call", "arguments"},
	"response.code_interpreter_call_code": {"code_interpreter_call", "code"},
}

// The events that report a tool item's progress, and carry nothing the
// accumulator reads.
var responsesProgressEvents = map[string]bool{
	"response.web_search_call.in_progress":         true,
	"response.web_search_call.searching":           true,
	"response.web_search_call.completed":           true,
	"response.file_search_call.in_progress":        true,
	"response.file_search_call.searching":          true,
	"response.file_search_call.completed":          true,
	"response.code_interpreter_call.in_progress":   true,
	"response.code_interpreter_call.interpreting":  true,
	"response.code_interpreter_call.completed":     true,
	"response.image_generation_call.in_progress":   true,
	"response.image_generation_call.generating":    true,
	"response.image_generation_call.partial_image": true,
	"response.image_generation_call.completed":     true,
	"response.mcp_call.in_progress":                true,
	"response.mcp_call.completed":                  true,
	"response.mcp_call.failed":                     true,
	"response.mcp_list_tools.in_progress":          true,
	"response.mcp_list_tools.completed":            true,
	"response.mcp_list_tools.failed":               true,
	"response.shell_call_output_content.delta":     true,
	"response.shell_call_output_content.done":      true,
	"response.reasoning_summary_part.added":        true,
	"response.reasoning_summary_part.done":         true,
	"response.reasoning_summary_text.delta":        true,
	"response.reasoning_summary_text.done":         true,
	"response.reasoning_text.delta":                true,
	"response.reasoning_text.done":                 true,
	"response.output_text.annotation.added":        true,
}

func (a *responsesAcc) handle(ev sseEvent) (effect, error) {
	if strings.HasPrefix(ev.name, "thread.") {
		return 0, fmt.Errorf("an event named %q", ev.name)
	}
	if !ev.hasData || len(ev.data) == 0 {
		return 0, nil
	}
	var e responsesEvent
	if err := strictUnmarshal(ev.data, &e); err != nil {
		return 0, err
	}
	if len(e.Error) > 0 {
		// The SDK ends the stream with this error.
		return effTerminal | effError, nil
	}
	if ev.name != "" && ev.name != e.Type {
		return 0, fmt.Errorf("an event named %q of type %q", ev.name, e.Type)
	}
	switch e.Type {
	case "error":
		return effTerminal | effError, nil
	case "response.created", "response.in_progress", "response.queued", "response.compaction.compacting":
		if r := e.Response; r != nil {
			if len(r.Output) > 0 {
				return 0, fmt.Errorf("%s with output", e.Type)
			}
			if err := a.setResponse(r); err != nil {
				return 0, err
			}
		}
		return 0, nil
	case "response.completed", "response.incomplete", "response.failed":
		if e.Response == nil {
			return 0, fmt.Errorf("%s without a response", e.Type)
		}
		if err := a.setResponse(e.Response); err != nil {
			return 0, err
		}
		a.final = e.Response
		a.stopReason = e.Response.Status
		eff := effTerminal
		if u := e.Response.Usage; u != nil {
			a.usage, a.hasUsage = u.usage(), true
			eff |= effUsage
		}
		return eff, nil
	case "response.output_item.added":
		return a.added(&e)
	}
	it, err := a.item(&e)
	if err != nil {
		return 0, err
	}
	eff := effect(0)
	if holds(it.class) {
		eff = effTool
	}
	switch e.Type {
	case "response.output_item.done":
		return eff, a.itemDone(it, &e)
	case "response.content_part.added", "response.output_text.delta", "response.refusal.delta",
		"response.output_text.done", "response.refusal.done", "response.content_part.done":
		return a.text(it, &e)
	case "response.shell_call_command.added", "response.shell_call_command.delta", "response.shell_call_command.done":
		return effTool, it.command(&e)
	}
	if responsesProgressEvents[e.Type] {
		return eff, nil
	}
	base, suffix, _ := cutLast(e.Type, ".")
	if arg, ok := responsesArgEvents[base]; ok && (suffix == "delta" || suffix == "done") {
		if it.typ != arg.itemType && !(arg.itemType == "mcp_call" && it.typ == "mcp_approval_request") {
			return 0, fmt.Errorf("%s for an item of type %q", e.Type, it.typ)
		}
		return effTool, it.field(arg.field, suffix == "done", &e)
	}
	return 0, fmt.Errorf("an event of type %q", e.Type)
}

func cutLast(s, sep string) (string, string, bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}

// setResponse takes the id and model of a response event.
func (a *responsesAcc) setResponse(r *responsesBody) error {
	if r.ID != "" {
		if a.id != "" && a.id != r.ID {
			return fmt.Errorf("response %q, then %q", a.id, r.ID)
		}
		a.id = r.ID
	}
	return a.setModel(r.Model)
}

// added starts an output item.
func (a *responsesAcc) added(e *responsesEvent) (effect, error) {
	if e.Item == nil || e.OutputIndex == nil {
		return 0, fmt.Errorf("%s without an item or its output_index", e.Type)
	}
	if *e.OutputIndex != int64(len(a.items)) {
		return 0, fmt.Errorf("item added at output_index %d after %d items", *e.OutputIndex, len(a.items))
	}
	c, err := e.Item.class()
	if err != nil {
		return 0, err
	}
	if c == classText && len(e.Item.Content) > 0 {
		return 0, fmt.Errorf("a message added with content")
	}
	a.items = append(a.items, &respItem{typ: e.Item.Type, id: e.Item.ID, class: c, added: e.Item})
	if holds(c) {
		return effTool, nil
	}
	return 0, nil
}

// item is the item an event is about.
func (a *responsesAcc) item(e *responsesEvent) (*respItem, error) {
	if e.OutputIndex == nil || *e.OutputIndex < 0 || *e.OutputIndex >= int64(len(a.items)) {
		return nil, fmt.Errorf("%s for an item never added", e.Type)
	}
	it := a.items[*e.OutputIndex]
	id := e.ItemID
	if e.Item != nil {
		if e.Item.Type != it.typ {
			return nil, fmt.Errorf("%s: item %d is a %q, not a %q", e.Type, *e.OutputIndex, it.typ, e.Item.Type)
		}
		if id == "" {
			id = e.Item.ID
		}
	}
	if id != "" && it.id != "" && id != it.id {
		return nil, fmt.Errorf("%s: item %d is %q, not %q", e.Type, *e.OutputIndex, it.id, id)
	}
	return it, nil
}

// itemDone takes an item's final form; a message's text must be the
// text streamed.
func (a *responsesAcc) itemDone(it *respItem, e *responsesEvent) error {
	if it.done != nil {
		return fmt.Errorf("item %q done twice", it.id)
	}
	it.done = e.Item
	if it.class == classText {
		return it.sameText(e.Item)
	}
	return nil
}

// sameText checks that a message item's text is the text streamed.
func (it *respItem) sameText(m *responsesItem) error {
	if len(m.Content) != len(it.parts) {
		return fmt.Errorf("message %q has %d parts, %d streamed", it.id, len(m.Content), len(it.parts))
	}
	for i := range m.Content {
		t, err := m.Content[i].text()
		if err != nil {
			return err
		}
		if m.Content[i].Type != it.parts[i].typ || t != it.parts[i].text.String() {
			return fmt.Errorf("message %q part %d is not the text streamed", it.id, i)
		}
	}
	return nil
}

// text applies an event about a message's text.
func (a *responsesAcc) text(it *respItem, e *responsesEvent) (effect, error) {
	if it.class != classText {
		return 0, fmt.Errorf("%s for an item of type %q", e.Type, it.typ)
	}
	if e.ContentIndex == nil {
		return 0, fmt.Errorf("%s without a content_index", e.Type)
	}
	ci := *e.ContentIndex
	if e.Type == "response.content_part.added" {
		if ci != int64(len(it.parts)) || e.Part == nil {
			return 0, fmt.Errorf("%s at content_index %d after %d parts", e.Type, ci, len(it.parts))
		}
		t, err := e.Part.text()
		if err != nil {
			return 0, err
		}
		p := &respPart{typ: e.Part.Type}
		p.text.WriteString(t)
		it.parts = append(it.parts, p)
		a.lastPart = p
		return a.appendText(0, t), nil
	}
	if ci < 0 || ci >= int64(len(it.parts)) {
		return 0, fmt.Errorf("%s for a part never added", e.Type)
	}
	p := it.parts[ci]
	want := "output_text"
	if strings.HasPrefix(e.Type, "response.refusal.") {
		want = "refusal"
	}
	var done *string
	switch e.Type {
	case "response.output_text.delta", "response.refusal.delta":
		if p.typ != want || p.done || e.Delta == nil {
			return 0, fmt.Errorf("%s for a part of type %q", e.Type, p.typ)
		}
		if p != a.lastPart {
			// The text checked is the text in the order it arrives; an agent
			// reads it item by item, part by part: the two agree only while
			// text goes to the part added last.
			return 0, fmt.Errorf("%s for a part before the last", e.Type)
		}
		p.text.WriteString(*e.Delta)
		return a.appendText(0, *e.Delta), nil
	case "response.output_text.done":
		done = e.Text
	case "response.refusal.done":
		done = e.Refusal
	case "response.content_part.done":
		if e.Part == nil {
			return 0, fmt.Errorf("%s without a part", e.Type)
		}
		t, err := e.Part.text()
		if err != nil {
			return 0, err
		}
		want, done = e.Part.Type, &t
	}
	if p.typ != want || done == nil || *done != p.text.String() {
		return 0, fmt.Errorf("%s is not the text streamed", e.Type)
	}
	p.done = true
	return 0, nil
}

// field applies a delta or done event of a tool item's streamed field.
func (it *respItem) field(name string, done bool, e *responsesEvent) error {
	if it.doneFields == nil {
		it.fields, it.doneFields = map[string]*strings.Builder{}, map[string]string{}
	}
	if _, ok := it.doneFields[name]; ok {
		return fmt.Errorf("%s after its done event", e.Type)
	}
	if !done {
		if e.Delta == nil {
			return fmt.Errorf("%s without a delta", e.Type)
		}
		b := it.fields[name]
		if b == nil {
			b = &strings.Builder{}
			it.fields[name] = b
		}
		b.WriteString(*e.Delta)
		return nil
	}
	var v *string
	switch name {
	case "arguments":
		v = e.Arguments
	case "input":
		v = e.Input
	case "code":
		v = e.Code
	}
	if v == nil {
		return fmt.Errorf("%s without its %s", e.Type, name)
	}
	if b := it.fields[name]; b != nil && b.String() != *v {
		return fmt.Errorf("%s: %s is not the %s streamed", e.Type, name, name)
	}
	it.doneFields[name] = *v
	return nil
}

// command applies an event of a shell call's streamed commands.
func (it *respItem) command(e *responsesEvent) error {
	if it.typ != "shell_call" || e.CommandIndex == nil {
		return fmt.Errorf("%s for an item of type %q", e.Type, it.typ)
	}
	ci := *e.CommandIndex
	switch {
	case e.Type == "response.shell_call_command.added" && ci == int64(len(it.commands)):
		b := &strings.Builder{}
		if e.Command != nil {
			b.WriteString(*e.Command)
		}
		it.commands = append(it.commands, b)
		return nil
	case ci < 0 || ci >= int64(len(it.commands)):
		return fmt.Errorf("%s for command %d of %d", e.Type, ci, len(it.commands))
	case e.Type == "response.shell_call_command.delta" && e.Delta != nil:
		it.commands[ci].WriteString(*e.Delta)
		return nil
	case e.Type == "response.shell_call_command.done" && e.Command != nil && *e.Command == it.commands[ci].String():
		return nil
	}
	return fmt.Errorf("%s is not the command streamed", e.Type)
}

// streamed is the tool call as its streamed fields give it, with f the
// item it was added as: the view of an agent that reads deltas.
func (it *respItem) streamed() (responsesItem, map[string]string) {
	v := *it.added
	vals := map[string]string{}
	for name, b := range it.fields {
		vals[name] = b.String()
	}
	for name, s := range it.doneFields {
		vals[name] = s
	}
	for name, s := range vals {
		switch name {
		case "arguments":
			q, _ := json.Marshal(s)
			v.Arguments = q
		case "input":
			v.Input = s
		case "code":
			v.Code = s
		}
	}
	return v, vals
}

func (a *responsesAcc) result() (result, error) {
	r := a.base()
	var final []responsesItem
	if a.final != nil {
		final = a.final.Output
	}
	if len(final) > 0 && len(final) != len(a.items) {
		return result{}, fmt.Errorf("a final response of %d items, %d streamed", len(final), len(a.items))
	}
	for i, it := range a.items {
		var f *responsesItem
		if len(final) > 0 {
			f = &final[i]
			if f.Type != it.typ || (f.ID != "" && it.id != "" && f.ID != it.id) {
				return result{}, fmt.Errorf("final item %d is not the item streamed", i)
			}
		}
		switch it.class {
		case classText:
			if f != nil {
				if err := it.sameText(f); err != nil {
					return result{}, err
				}
			}
		case classTool:
			tc, err := it.toolCall(f)
			if err != nil {
				return result{}, err
			}
			r.tools = append(r.tools, tc)
		}
	}
	return r, nil
}

// toolCall is a tool item's call, the same in every view of it: as
// added and streamed, as done, in the final response (f, if any).
func (it *respItem) toolCall(f *responsesItem) (toolCall, error) {
	streamedItem, vals := it.streamed()
	views := []*responsesItem{&streamedItem}
	if it.done != nil {
		views = append(views, it.done)
	}
	if f != nil {
		views = append(views, f)
	}
	// The last view is the most complete: the item done, or final.
	tc, err := views[len(views)-1].toolCall()
	if err != nil {
		return toolCall{}, err
	}
	for _, v := range views[:len(views)-1] {
		other, err := v.toolCall()
		if err != nil {
			return toolCall{}, err
		}
		if other.name != tc.name {
			return toolCall{}, fmt.Errorf("tool item %q named %q, then %q", it.id, other.name, tc.name)
		}
		if v != &streamedItem && other.args != tc.args {
			return toolCall{}, fmt.Errorf("tool item %q: its arguments differ between the item done and the final response", it.id)
		}
	}
	// What was streamed must be what the complete views say.
	last := views[len(views)-1]
	for name, s := range vals {
		var want string
		switch name {
		case "arguments":
			want, _ = jsonString(last.Arguments)
		case "input":
			want = last.Input
		case "code":
			want = last.Code
		}
		if s != want {
			return toolCall{}, fmt.Errorf("tool item %q: the %s streamed are not its %s", it.id, name, name)
		}
	}
	if len(it.commands) > 0 {
		var action struct {
			Commands []string `json:"commands"`
		}
		_ = json.Unmarshal(last.Action, &action)
		streamed := make([]string, len(it.commands))
		for i, b := range it.commands {
			streamed[i] = b.String()
		}
		if !slices.Equal(streamed, action.Commands) {
			return toolCall{}, fmt.Errorf("shell call %q: the commands streamed are not its commands", it.id)
		}
	}
	return tc, nil
}
