package llmhttp

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
)

// api is a model API this package understands.
type api uint8

const (
	apiNone api = iota
	apiChat
	apiResponses
	apiMessages
)

func (a api) provider() string {
	if a == apiMessages {
		return "anthropic"
	}
	return "openai"
}

func (a api) String() string {
	switch a {
	case apiChat:
		return "chat_completions"
	case apiResponses:
		return "responses"
	case apiMessages:
		return "messages"
	}
	return "none"
}

// apiOfPath recognises a model call by its method and path. The body
// confirms it (see readCall).
func apiOfPath(req *http.Request) api {
	if req.Method != http.MethodPost || req.URL == nil {
		return apiNone
	}
	p := strings.TrimSuffix(req.URL.Path, "/")
	switch {
	case strings.HasSuffix(p, "/chat/completions"):
		return apiChat
	case strings.HasSuffix(p, "/responses"):
		return apiResponses
	case strings.HasSuffix(p, "/messages"):
		return apiMessages
	}
	return apiNone
}

// call is what the middleware knows of a model request.
type call struct {
	api   api
	model string // as requested
	input string // text of the newest message sent
	// inspected is false when the request body was too big to parse.
	inspected bool
	// size is the request body's size in bytes: for a body over the cap,
	// its Content-Length if the request states one, else the cap.
	size int64
	// maxOutput is the output cap the request sets (0: none), per choice;
	// choices is the number of answers it asks for (chat's n), at least 1.
	maxOutput, choices int64
}

// readCall recognises a model call and reads what it asks for. It
// returns req itself when its body was not read, or a clone whose body
// replays the same bytes. A nil call means "not a model call".
func readCall(req *http.Request, maxBytes int64) (*call, *http.Request, error) {
	a := apiOfPath(req)
	if a == apiNone || req.Body == nil || req.Body == http.NoBody {
		return nil, req, nil
	}
	var (
		body []byte
		over bool
		out  = req
	)
	if req.GetBody != nil {
		// The body can be had again without consuming the caller's.
		rc, err := req.GetBody()
		if err != nil {
			return nil, req, err
		}
		body, over, err = readCapped(rc, maxBytes)
		rc.Close()
		if err != nil {
			return nil, req, err
		}
	} else {
		var err error
		body, over, err = readCapped(req.Body, maxBytes)
		if err != nil {
			return nil, req, err
		}
		out = req.Clone(req.Context())
		if over {
			out.Body = struct {
				io.Reader
				io.Closer
			}{io.MultiReader(bytes.NewReader(body), req.Body), req.Body}
		} else {
			req.Body.Close()
			b := body
			out.Body = io.NopCloser(bytes.NewReader(b))
			out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
		}
	}
	c := &call{api: a, size: int64(len(body)), choices: 1}
	if over {
		// Too big to read: the path decides, and the response says which
		// model answered.
		c.size = max(c.size, req.ContentLength)
		return c, out, nil
	}
	var rb struct {
		Model    *string           `json:"model"`
		Messages []json.RawMessage `json:"messages"`
		Input    json.RawMessage   `json:"input"`
		// Output caps and choices, read leniently (see count).
		MaxTokens           json.RawMessage `json:"max_tokens"`
		MaxCompletionTokens json.RawMessage `json:"max_completion_tokens"`
		MaxOutputTokens     json.RawMessage `json:"max_output_tokens"`
		N                   json.RawMessage `json:"n"`
	}
	if err := json.Unmarshal(body, &rb); err != nil || rb.Model == nil {
		if a == apiMessages {
			// POST .../threads/{id}/messages of the Assistants API, or
			// something else that is not a model call.
			return nil, out, nil
		}
		return c, out, nil
	}
	c.inspected = true
	c.model = *rb.Model
	switch a {
	case apiChat, apiMessages:
		if n := len(rb.Messages); n > 0 {
			c.input = textOf(rb.Messages[n-1])
		}
	case apiResponses:
		c.input = lastText(rb.Input)
	}
	switch a {
	case apiChat:
		// max_tokens is the older name of max_completion_tokens; if a
		// request has both, the larger bounds the answer.
		c.maxOutput = max(count(rb.MaxCompletionTokens), count(rb.MaxTokens))
		c.choices = max(count(rb.N), 1)
	case apiResponses:
		c.maxOutput = count(rb.MaxOutputTokens)
	case apiMessages:
		c.maxOutput = count(rb.MaxTokens)
	}
	return c, out, nil
}

// maxCount bounds the token counts an estimate works with (about 10^12),
// so that no sum or product of them overflows.
const maxCount = 1 << 40

// count reads a positive count from a JSON number, rounded up and capped
// at maxCount; anything else (absent, null, zero, negative, not a number)
// is 0. A value the provider would reject is not the request's cap, and a
// malformed one must not keep the rest of the request from being read.
func count(raw json.RawMessage) int64 {
	var f float64
	if len(raw) == 0 || json.Unmarshal(raw, &f) != nil || !(f > 0) {
		return 0
	}
	if f >= maxCount {
		return maxCount
	}
	return int64(math.Ceil(f))
}

// readCapped reads r up to max bytes. over reports that r had more; the
// bytes read so far are returned and the rest is left in r.
func readCapped(r io.Reader, max int64) (b []byte, over bool, err error) {
	b, err = io.ReadAll(io.LimitReader(r, max+1))
	if int64(len(b)) > max {
		return b, true, err
	}
	return b, false, err
}

// lastText is the text of the newest item of an input that is a string or
// a list of items.
func lastText(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '[' {
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil || len(items) == 0 {
			return ""
		}
		return textOf(items[len(items)-1])
	}
	return textOf(raw)
}

// textOf is the text of a message, a content block or a list of them: a
// string is itself; a list is the text of its elements, one a line; an
// object is its "text", or else the text of its "content" or "output".
func textOf(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		_ = json.Unmarshal(raw, &s)
		return s
	case '[':
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return ""
		}
		var parts []string
		for _, it := range items {
			if t := textOf(it); t != "" {
				parts = append(parts, t)
			}
		}
		return strings.Join(parts, "\n")
	case '{':
		var o struct {
			Text    *string         `json:"text"`
			Content json.RawMessage `json:"content"`
			Output  json.RawMessage `json:"output"`
		}
		if json.Unmarshal(raw, &o) != nil {
			return ""
		}
		if o.Text != nil {
			return *o.Text
		}
		if len(o.Content) > 0 {
			return textOf(o.Content)
		}
		return textOf(o.Output)
	}
	return ""
}
