package mcpgov

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// How results are described is in the package documentation, "Content,
// as a step records it".

// toolResultText is a tools/call result as a step records it, and
// whether it asks for input.
func toolResultText(r *mcp.CallToolResult) (string, bool, error) {
	if len(r.InputRequests) > 0 || r.NeedsInput() {
		s, err := inputRequestsText(r.InputRequests)
		return s, true, err
	}
	s, err := contentText(r.Content, r.StructuredContent)
	return s, false, err
}

// resourceResultText is a resources/read result as a step records it.
func resourceResultText(r *mcp.ReadResourceResult) (string, bool, error) {
	if len(r.InputRequests) > 0 || r.NeedsInput() {
		s, err := inputRequestsText(r.InputRequests)
		return s, true, err
	}
	parts := make([]string, 0, len(r.Contents))
	for i, rc := range r.Contents {
		s, err := resourceText(rc)
		if err != nil {
			return "", false, fmt.Errorf("contents[%d]: %w", i, err)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "\n"), false, nil
}

// promptResultText is a prompts/get result as a step records it: its
// description, then each message as "role: content".
func promptResultText(r *mcp.GetPromptResult) (string, bool, error) {
	if len(r.InputRequests) > 0 || r.NeedsInput() {
		s, err := inputRequestsText(r.InputRequests)
		return s, true, err
	}
	parts := make([]string, 0, len(r.Messages)+1)
	if r.Description != "" {
		parts = append(parts, r.Description)
	}
	for i, m := range r.Messages {
		if m == nil {
			return "", false, fmt.Errorf("%w: messages[%d] is null", ErrMalformed, i)
		}
		s, err := blockText(m.Content)
		if err != nil {
			return "", false, fmt.Errorf("messages[%d]: %w", i, err)
		}
		parts = append(parts, string(m.Role)+": "+s)
	}
	return strings.Join(parts, "\n"), false, nil
}

func inputRequestsText(reqs mcp.InputRequestMap) (string, error) {
	b, err := encodeJSON(reqs)
	if err != nil {
		return "", fmt.Errorf("%w: input requests: %w", ErrMalformed, err)
	}
	return string(b), nil
}

// contentText is content blocks, and structured content if any, as a
// step records them.
func contentText(blocks []mcp.Content, structured any) (string, error) {
	parts := make([]string, 0, len(blocks)+1)
	var texts []string
	for i, b := range blocks {
		s, err := blockText(b)
		if err != nil {
			return "", fmt.Errorf("content[%d]: %w", i, err)
		}
		parts = append(parts, s)
		if _, ok := b.(*mcp.TextContent); ok {
			texts = append(texts, s)
		}
	}
	if structured != nil {
		b, err := encodeJSON(structured)
		if err == nil {
			err = checkJSON(b)
		}
		if err != nil {
			return "", fmt.Errorf("%w: structuredContent: %w", ErrMalformed, err)
		}
		if !anySameJSON(b, texts) {
			parts = append(parts, string(b))
		}
	}
	return strings.Join(parts, "\n"), nil
}

// blockText is one content block as a step records it.
func blockText(b mcp.Content) (string, error) {
	switch c := b.(type) {
	case *mcp.TextContent:
		if c != nil {
			return c.Text, nil
		}
	case *mcp.ImageContent:
		if c != nil {
			return fmt.Sprintf("[image %s, %d bytes]", c.MIMEType, len(c.Data)), nil
		}
	case *mcp.AudioContent:
		if c != nil {
			return fmt.Sprintf("[audio %s, %d bytes]", c.MIMEType, len(c.Data)), nil
		}
	case *mcp.ResourceLink:
		if c != nil {
			return linkText(c), nil
		}
	case *mcp.EmbeddedResource:
		if c != nil {
			return resourceText(c.Resource)
		}
	default:
		return "", fmt.Errorf("%w: a content block of type %T", ErrMalformed, b)
	}
	return "", fmt.Errorf("%w: a null %T content block", ErrMalformed, b)
}

func linkText(c *mcp.ResourceLink) string {
	var b strings.Builder
	b.WriteString("[resource_link " + c.URI)
	if c.MIMEType != "" {
		b.WriteString(" " + c.MIMEType)
	}
	b.WriteString("]")
	sep := " "
	for _, f := range [][2]string{{"name", c.Name}, {"title", c.Title}, {"description", c.Description}} {
		if f[1] != "" {
			b.WriteString(sep + f[0] + ": " + f[1])
			sep = "; "
		}
	}
	return b.String()
}

// resourceText is a resource's contents as a step records them.
func resourceText(rc *mcp.ResourceContents) (string, error) {
	if rc == nil {
		return "", fmt.Errorf("%w: a null resource", ErrMalformed)
	}
	head := "[resource " + rc.URI
	if rc.MIMEType != "" {
		head += " " + rc.MIMEType
	}
	if rc.Blob != nil {
		head += fmt.Sprintf(", %d bytes", len(rc.Blob))
	}
	head += "]"
	if rc.Text == "" {
		return head, nil
	}
	return head + "\n" + rc.Text, nil
}

// anySameJSON reports whether one of texts is JSON of the same value as
// doc (a valid document).
func anySameJSON(doc []byte, texts []string) bool {
	want, ok := normalJSON(doc)
	if !ok {
		return false
	}
	for _, t := range texts {
		if got, ok := normalJSON([]byte(t)); ok && bytes.Equal(got, want) {
			return true
		}
	}
	return false
}

// normalJSON is b re-encoded with its object keys sorted and its numbers
// as written, if b is one JSON value every reader reads the same way.
func normalJSON(b []byte) ([]byte, bool) {
	if checkJSON(b) != nil {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if dec.Decode(&v) != nil {
		return nil, false
	}
	out, err := encodeJSON(v)
	return out, err == nil
}
