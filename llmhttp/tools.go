package llmhttp

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// What a response may hold, per API. A response is read as the SDK reads
// it, and every shape in which it asks for a tool to run (or reports a
// tool the provider ran) is a tool call, recorded as a governed tool_call
// step. Anything else must be known to be harmless: text, reasoning, or
// the data a tool the same response calls returns. A type this package
// does not know is refused (ErrMalformed): it may be a new way of asking
// for a tool.

// class is what an output item or content block is.
type class uint8

const (
	classRefused class = iota // unknown, or not something a model answers with
	classText                 // output text, checked as it streams
	classQuiet                // reasoning and other harmless content, not text
	classData                 // the result of a tool the provider ran
	classTool                 // a tool call: a tool_call step
)

// Responses output items, by type. A tool item's tool name is the one in
// responsesToolNames, or its "name" field.
var responsesClasses = map[string]class{
	"message":   classText,
	"reasoning": classQuiet,
	// An opaque summary of earlier turns.
	"compaction": classQuiet,

	// Tools the agent runs.
	"function_call":    classTool,
	"custom_tool_call": classTool,
	"computer_call":    classTool,
	"local_shell_call": classTool,
	"shell_call":       classTool,
	"apply_patch_call": classTool,
	// Tools the provider runs, or asks the agent to approve.
	"mcp_call":              classTool,
	"mcp_approval_request":  classTool,
	"mcp_list_tools":        classTool,
	"web_search_call":       classTool,
	"file_search_call":      classTool,
	"code_interpreter_call": classTool,
	"image_generation_call": classTool,
	"tool_search_call":      classTool,
	"program":               classTool,

	// What tools the provider runs return.
	"tool_search_output": classData,
	"program_output":     classData,
	"shell_call_output":  classData,

	// Refused: an agent's own answers to tool calls
	// (function_call_output, custom_tool_call_output,
	// computer_call_output, local_shell_call_output,
	// apply_patch_call_output, mcp_approval_response) and tool
	// definitions (additional_tools) are input, not a model's answer.
}

// responsesToolNames are the tool names of the items that have no name
// of their own: the built-in tools.
var responsesToolNames = map[string]string{
	"computer_call":         "computer",
	"local_shell_call":      "local_shell",
	"shell_call":            "shell",
	"apply_patch_call":      "apply_patch",
	"mcp_list_tools":        "mcp_list_tools",
	"web_search_call":       "web_search",
	"file_search_call":      "file_search",
	"code_interpreter_call": "code_interpreter",
	"image_generation_call": "image_generation",
	"tool_search_call":      "tool_search",
	"program":               "program",
}

// Anthropic content blocks, by type (Messages and its beta).
var messagesClasses = map[string]class{
	"text":              classText,
	"thinking":          classQuiet,
	"redacted_thinking": classQuiet,
	"compaction":        classQuiet,

	"tool_use":        classTool, // the agent runs it
	"server_tool_use": classTool, // the provider runs it
	"mcp_tool_use":    classTool, // the provider calls an MCP server

	"web_search_tool_result":                 classData,
	"web_fetch_tool_result":                  classData,
	"code_execution_tool_result":             classData,
	"bash_code_execution_tool_result":        classData,
	"text_editor_code_execution_tool_result": classData,
	"tool_search_tool_result":                classData,
	"advisor_tool_result":                    classData,
	"mcp_tool_result":                        classData,
	"container_upload":                       classData,
}

// Metadata of tool_call steps, besides MetaToolCallID.
const (
	// MetaToolType is the wire type of the tool call: "function" or
	// "custom" (a chat completion's tool_calls), "function_call" (its
	// legacy function_call), a Responses output item type
	// ("function_call", "shell_call", "mcp_call", ...) or an Anthropic
	// content block type ("tool_use", "server_tool_use", "mcp_tool_use").
	MetaToolType = "stopline.tool_type"
	// MetaToolNamespace is the namespace (Responses) or toolset (Anthropic)
	// the tool is in, when the call names one.
	MetaToolNamespace = "stopline.tool_namespace"
	// MetaToolServer is the MCP server the call goes to (its
	// server_label, or server_name).
	MetaToolServer = "stopline.tool_server"
)

// responsesItem is an output item of a response.
type responsesItem struct {
	Type        string          `json:"type"`
	ID          string          `json:"id"`
	CallID      string          `json:"call_id"`
	Name        string          `json:"name"`
	Namespace   string          `json:"namespace"`
	ServerLabel string          `json:"server_label"`
	Arguments   json.RawMessage `json:"arguments"`
	Input       string          `json:"input"`
	Code        string          `json:"code"`
	Action      json.RawMessage `json:"action"`
	Actions     json.RawMessage `json:"actions"`
	Operation   json.RawMessage `json:"operation"`
	Queries     json.RawMessage `json:"queries"`
	Content     []responsesPart `json:"content"`
}

// responsesPart is a part of a message item's content.
type responsesPart struct {
	Type    string `json:"type"`
	Text    string `json:"text"`
	Refusal string `json:"refusal"`
}

func (p *responsesPart) text() (string, error) {
	switch p.Type {
	case "output_text":
		return p.Text, nil
	case "refusal":
		return p.Refusal, nil
	}
	return "", fmt.Errorf("a message part of type %q", p.Type)
}

// class is the item's class; an error for a type that is refused.
func (it *responsesItem) class() (class, error) {
	c := responsesClasses[it.Type]
	if c == classRefused {
		return 0, fmt.Errorf("an output item of type %q", it.Type)
	}
	return c, nil
}

// toolName is the name a tool item is governed under.
func (it *responsesItem) toolName() string {
	if n, ok := responsesToolNames[it.Type]; ok {
		return n
	}
	return it.Name
}

// toolCall returns a tool item as a tool call.
func (it *responsesItem) toolCall() (toolCall, error) {
	id := it.CallID
	if id == "" {
		id = it.ID
	}
	tc := toolCall{id: id, name: it.toolName(), meta: []string{MetaToolType, it.Type, MetaToolNamespace, it.Namespace, MetaToolServer, it.ServerLabel}}
	var err error
	switch it.Type {
	case "function_call", "mcp_call", "mcp_approval_request":
		tc.args, err = jsonString(it.Arguments)
	case "custom_tool_call":
		tc.args = it.Input
	case "code_interpreter_call", "program":
		tc.args = it.Code
	case "apply_patch_call":
		tc.args = compactJSON(it.Operation)
	case "file_search_call":
		tc.args = compactJSON(it.Queries)
	case "tool_search_call":
		tc.args = compactJSON(it.Arguments)
	case "computer_call":
		if len(it.Action) == 0 || string(it.Action) == "null" {
			tc.args = compactJSON(it.Actions)
		} else {
			tc.args = compactJSON(it.Action)
		}
	default: // local_shell_call, shell_call, web_search_call, image_generation_call, mcp_list_tools
		tc.args = compactJSON(it.Action)
	}
	if err != nil {
		return toolCall{}, fmt.Errorf("%s item %q: arguments: %w", it.Type, id, err)
	}
	return tc, nil
}

// text is a message item's text, its parts one after the other.
func (it *responsesItem) text() (string, error) {
	var b bytes.Buffer
	for i := range it.Content {
		t, err := it.Content[i].text()
		if err != nil {
			return "", err
		}
		b.WriteString(t)
	}
	return b.String(), nil
}

// jsonString reads a JSON string (absent or null: "").
func jsonString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	err := json.Unmarshal(raw, &s)
	return s, err
}

// messagesBlock is a content block of an Anthropic message.
type messagesBlock struct {
	Type        string          `json:"type"`
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Text        string          `json:"text"`
	Input       json.RawMessage `json:"input"`
	ToolsetName string          `json:"toolset_name"`
	ServerName  string          `json:"server_name"`
}

func (b *messagesBlock) class() (class, error) {
	c := messagesClasses[b.Type]
	if c == classRefused {
		return 0, fmt.Errorf("a content block of type %q", b.Type)
	}
	return c, nil
}

// toolCall returns a tool block as a tool call with input as its
// arguments, which must be JSON (the SDK empties input that is not).
func (b *messagesBlock) toolCall(input []byte) (toolCall, error) {
	input = bytes.TrimSpace(input)
	if len(input) == 0 {
		input = []byte("{}")
	}
	if !json.Valid(input) {
		return toolCall{}, fmt.Errorf("%s block %q: input is not JSON", b.Type, b.ID)
	}
	return toolCall{id: b.ID, name: b.Name, args: compactJSON(input),
		meta: []string{MetaToolType, b.Type, MetaToolNamespace, b.ToolsetName, MetaToolServer, b.ServerName}}, nil
}
