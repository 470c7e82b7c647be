package mcpgov

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/strictjson"
	"github.com/stopline/stopline/prevention"
)

// Metadata keys of the steps this package records. A tool_result step
// of a call that failed also carries governance.MetadataToolError, as
// governance.WrapTool records it.
const (
	MetaSide          = "stopline.mcp_side"            // "client" or "server": which end of the session recorded the step
	MetaMethod        = "stopline.mcp_method"          // "tools/call", "resources/read" or "prompts/get"
	MetaToolServer    = "stopline.tool_server"         // on a client: the server's name, as it gave it when the session began
	MetaClient        = "stopline.mcp_client"          // on a server: the client's name, as it gave it
	MetaSession       = "stopline.mcp_session"         // the session's id, when the transport has one
	MetaIsError       = "stopline.mcp_is_error"        // "true": a tool result with isError set
	MetaInputRequired = "stopline.mcp_input_required"  // "true": a result asking for input (multi round-trip); its output is the requests
	MetaInputResponse = "stopline.mcp_input_responses" // on a request retried with the input asked for: the responses, as JSON
	MetaError         = "stopline.error"               // what went wrong: a failed read, or a result that could not be described
)

// The methods this package governs.
const (
	methodCallTool     = "tools/call"
	methodReadResource = "resources/read"
	methodGetPrompt    = "prompts/get"
)

func governedMethod(method string) bool {
	return method == methodCallTool || method == methodReadResource || method == methodGetPrompt
}

// checkName refuses a tool name the runner would refuse, or one it would
// take for "no tool": empty, longer than governance.MaxNameBytes, or one
// that prevention.CheckName refuses (not UTF-8, a control, format or
// invisible character).
func checkName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: a tool call without a tool name", governance.ErrInvalidStep)
	}
	if len(name) > governance.MaxNameBytes {
		return fmt.Errorf("%w: tool name of %d bytes is longer than %d", governance.ErrInvalidStep, len(name), governance.MaxNameBytes)
	}
	if err := prevention.CheckName(name); err != nil {
		return fmt.Errorf("%w: tool: %w", governance.ErrInvalidStep, err)
	}
	return nil
}

// encodeJSON is v as the SDK sends it: encoding/json without HTML
// escaping, compact (the SDK's jsonrpc2 encoder).
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// checkJSON refuses a document that two readers could read differently
// (internal/strictjson: not one value, invalid UTF-8, an unpaired
// surrogate escape, a key written twice).
func checkJSON(b []byte) error {
	if err := strictjson.Check(b); err != nil {
		return fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return nil
}

// steps builds the steps of one governed request: each carries the
// request's metadata.
type steps struct {
	md map[string]string
}

// metadata is a copy of the request's metadata, for one step.
func (s steps) metadata() map[string]string { return maps.Clone(s.md) }

// toolCall is the tool_call step of a call of name with args (JSON) and
// the input responses of a multi round-trip retry, if any.
func (s steps) toolCall(name string, args []byte, responses mcp.InputResponseMap) (governance.StepInput, error) {
	in := governance.StepInput{Type: prevention.StepToolCall, Tool: name, Input: string(args), Metadata: s.metadata()}
	return in, s.responses(&in, responses)
}

// responses records the input responses a request carries: what the
// handler will act on besides the arguments (a user's answer, a model's).
func (s steps) responses(in *governance.StepInput, responses mcp.InputResponseMap) error {
	if len(responses) == 0 {
		return nil
	}
	b, err := encodeJSON(responses)
	if err != nil {
		return fmt.Errorf("%w: inputResponses: %w", ErrMalformed, err)
	}
	in.Metadata[MetaInputResponse] = string(b)
	return nil
}

// toolResult is the tool_result step of a call of name that returned res
// and callErr, and the error describing res, if it could not be.
func (s steps) toolResult(name string, res mcp.Result, callErr error) (governance.StepInput, error) {
	in := governance.StepInput{Type: prevention.StepToolResult, Tool: name, Metadata: s.metadata()}
	if callErr != nil {
		in.Metadata[governance.MetadataToolError] = callErr.Error()
	}
	r, ok := res.(*mcp.CallToolResult)
	switch {
	case res == nil || (ok && r == nil):
		return in, nil
	case !ok:
		err := fmt.Errorf("%w: a tools/call result of type %T", ErrMalformed, res)
		in.Metadata[MetaError] = err.Error()
		return in, err
	}
	if r.IsError {
		in.Metadata[MetaIsError] = "true"
		if err := r.GetError(); err != nil {
			in.Metadata[governance.MetadataToolError] = err.Error()
		}
	}
	out, needsInput, err := toolResultText(r)
	if needsInput {
		in.Metadata[MetaInputRequired] = "true"
	}
	if err != nil {
		in.Metadata[MetaError] = err.Error()
		return in, err
	}
	in.Output = out
	return in, nil
}

// read is the message step of a resources/read or prompts/get request
// before it is made: its input is what it asks for.
func (s steps) read(method string, params mcp.Params) (governance.StepInput, error) {
	in := governance.StepInput{Type: prevention.StepMessage, Metadata: s.metadata()}
	switch p := params.(type) {
	case *mcp.ReadResourceParams:
		if p != nil {
			in.Input = p.URI
			return in, s.responses(&in, p.InputResponses)
		}
	case *mcp.GetPromptParams:
		if p != nil {
			b, err := encodeJSON(struct {
				Name      string            `json:"name"`
				Arguments map[string]string `json:"arguments,omitempty"`
			}{p.Name, p.Arguments})
			if err != nil {
				return in, fmt.Errorf("%w: %w", ErrMalformed, err)
			}
			in.Input = string(b)
			return in, s.responses(&in, p.InputResponses)
		}
	}
	return in, fmt.Errorf("%w: %s params of type %T", ErrMalformed, method, params)
}

// readResult is the step of a read (as read made it) once it returned
// res and callErr, and the error describing res, if it could not be.
func (s steps) readResult(in governance.StepInput, res mcp.Result, callErr error) (governance.StepInput, error) {
	in.Metadata = maps.Clone(in.Metadata)
	if callErr != nil {
		in.Metadata[MetaError] = callErr.Error()
	}
	var (
		out        string
		needsInput bool
		err        error
	)
	switch r := res.(type) {
	case nil:
		return in, nil
	case *mcp.ReadResourceResult:
		if r == nil {
			return in, nil
		}
		out, needsInput, err = resourceResultText(r)
	case *mcp.GetPromptResult:
		if r == nil {
			return in, nil
		}
		out, needsInput, err = promptResultText(r)
	default:
		err = fmt.Errorf("%w: a result of type %T", ErrMalformed, res)
	}
	if needsInput {
		in.Metadata[MetaInputRequired] = "true"
	}
	if err != nil {
		in.Metadata[MetaError] = err.Error()
		return in, err
	}
	in.Output = out
	return in, nil
}
