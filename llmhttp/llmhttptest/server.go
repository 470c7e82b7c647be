// Package llmhttptest is a fake model provider for tests and examples: an
// httptest.Server that answers OpenAI Chat Completions, OpenAI Responses
// and Anthropic Messages requests with scripted replies, in each API's
// wire format, as JSON or as server-sent events when the request asks to
// stream. The same script serves every API, so one test can drive either
// SDK.
//
//	srv := llmhttptest.NewServer(
//		llmhttptest.Reply{Text: "Let me look.", ToolCalls: []llmhttptest.ToolCall{{Name: "search", Arguments: `{"q":"go"}`}}},
//		llmhttptest.Reply{Text: "Go is a language."},
//	)
//	defer srv.Close()
//	client := openai.NewClient(option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey("test"))
//
// A Server is safe for concurrent use. It answers each request with the
// next reply of its script, and with an error status once the script is
// used up.
package llmhttptest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Reply is one scripted answer.
type Reply struct {
	// Model is the model the reply names; default: the requested model.
	Model string
	// Text is the output text. Streamed, it is sent in Chunks if they are
	// given, else word by word.
	Text   string
	Chunks []string
	// ToolCalls are tool calls the model requests, after the text.
	ToolCalls []ToolCall
	// Usage is reported in the reply (for a chat completion stream, only
	// if the request asks for it with stream_options.include_usage, as
	// OpenAI does).
	Usage Usage

	// Status, if not 0 or 200, makes the reply an error of the provider's
	// format with this status and Text as its message; with Raw or Events,
	// the status they are sent with (any status a handler can send: 2xx
	// to 5xx).
	Status int
	// Raw, if set, is sent as the body as it is, with ContentType
	// (default application/json).
	Raw         string
	ContentType string
	// Events, if set, are sent as the stream, each as it is, flushed one
	// at a time, with content type text/event-stream.
	Events []string
	// CutAfter, if > 0, ends a stream after that many events, without its
	// final events. With Drop, the connection is dropped there instead of
	// ending the body cleanly.
	CutAfter int
	Drop     bool
	// Burst sends a whole stream in one write, as a fast model or a
	// buffering proxy would, instead of one event at a time.
	Burst bool
	// Delay is a pause before each streamed event after the first, as a
	// model generating its answer would make.
	Delay time.Duration
	// Gate, if not nil, holds the answer (counted by Requests as soon as
	// the request arrives) until Gate is closed or the request is
	// cancelled: a slow model, to keep calls in flight together. With
	// GateAfter > 0, a stream is held after that many events instead, to
	// look at what an agent sees in the middle of a stream.
	Gate      <-chan struct{}
	GateAfter int
}

// ToolCall is a tool call in a reply. ID defaults to "call_<n>".
type ToolCall struct {
	ID        string
	Name      string
	Arguments string // JSON
}

// Usage is a reply's token usage. Input counts every input token, Cached
// (read from the prompt cache) included.
type Usage struct {
	Input, Output, Cached int64
}

// Server is a fake provider. Its URL serves OpenAI's API under /v1
// (POST /v1/chat/completions, /v1/responses) and Anthropic's
// (POST /v1/messages): point an SDK at srv.URL+"/v1" (OpenAI) or srv.URL
// (Anthropic).
type Server struct {
	*httptest.Server

	mu       sync.Mutex
	script   []Reply
	requests int
	bodies   [][]byte
}

// NewServer starts a Server answering with replies, in order.
func NewServer(replies ...Reply) *Server {
	s := &Server{script: append([]Reply(nil), replies...)}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// Push appends replies to the script.
func (s *Server) Push(replies ...Reply) {
	s.mu.Lock()
	s.script = append(s.script, replies...)
	s.mu.Unlock()
}

// Requests is the number of requests the server has received.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Bodies returns the bodies of the requests received, in order.
func (s *Server) Bodies() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.bodies...)
}

type request struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.requests++
	n := s.requests
	s.bodies = append(s.bodies, body)
	var rep Reply
	ok := len(s.script) > 0
	if ok {
		rep, s.script = s.script[0], s.script[1:]
	}
	s.mu.Unlock()

	if ok && rep.Gate != nil && rep.GateAfter <= 0 && !wait(r, rep.Gate) {
		return
	}
	var req request
	_ = json.Unmarshal(body, &req)
	path := strings.TrimSuffix(r.URL.Path, "/")
	var f format
	switch {
	case strings.HasSuffix(path, "/chat/completions"):
		f = chatFormat{}
	case strings.HasSuffix(path, "/responses"):
		f = responsesFormat{}
	case strings.HasSuffix(path, "/messages"):
		f = messagesFormat{}
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set(f.requestIDHeader(), fmt.Sprintf("req_%d", n))
	if !ok {
		rep = Reply{Status: http.StatusInternalServerError, Text: "llmhttptest: no reply left in the script"}
	}
	if rep.Model == "" {
		rep.Model = req.Model
	}
	switch {
	case rep.Raw != "":
		ct := rep.ContentType
		if ct == "" {
			ct = "application/json"
		}
		w.Header().Set("Content-Type", ct)
		if rep.Status != 0 {
			w.WriteHeader(rep.Status)
		}
		io.WriteString(w, rep.Raw)
	case rep.Status != 0 && rep.Status != http.StatusOK && rep.Events == nil:
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rep.Status)
		io.WriteString(w, f.errorBody(rep.Status, rep.Text))
	case rep.Events != nil:
		s.stream(w, r, rep, rep.Events)
	case req.Stream:
		includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
		s.stream(w, r, rep, f.events(n, rep, includeUsage))
	default:
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, f.whole(n, rep))
	}
}

func (s *Server) stream(w http.ResponseWriter, r *http.Request, rep Reply, events []string) {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	status := rep.Status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	fl, _ := w.(http.Flusher)
	if rep.CutAfter > 0 && rep.CutAfter < len(events) {
		events = events[:rep.CutAfter]
	} else {
		rep.Drop = false
	}
	if rep.Burst {
		events = []string{strings.Join(events, "")}
	}
	for i, e := range events {
		if i > 0 && i == rep.GateAfter && rep.Gate != nil && !wait(r, rep.Gate) {
			return
		}
		if i > 0 && rep.Delay > 0 {
			select {
			case <-time.After(rep.Delay):
			case <-r.Context().Done():
				return
			}
		}
		io.WriteString(w, e)
		if fl != nil {
			fl.Flush()
		}
	}
	if rep.Drop {
		panic(http.ErrAbortHandler) // drops the connection
	}
}

// wait waits for gate to close; false if the request was cancelled first.
func wait(r *http.Request, gate <-chan struct{}) bool {
	select {
	case <-gate:
		return true
	case <-r.Context().Done():
		return false
	}
}

// format renders replies in one API's wire format.
type format interface {
	requestIDHeader() string
	errorBody(status int, msg string) string
	whole(n int, rep Reply) string
	events(n int, rep Reply, includeUsage bool) []string
}

func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// sse renders one server-sent event; name may be empty.
func sse(name string, data any) string {
	d, ok := data.(string)
	if !ok {
		d = js(data)
	}
	if name == "" {
		return "data: " + d + "\n\n"
	}
	return "event: " + name + "\ndata: " + d + "\n\n"
}

// chunks is how a reply's text is streamed.
func chunks(rep Reply) []string {
	if rep.Chunks != nil {
		return rep.Chunks
	}
	if rep.Text == "" {
		return nil
	}
	return strings.SplitAfter(rep.Text, " ")
}

// argChunks splits a tool call's arguments in (up to) three pieces.
func argChunks(args string) []string {
	if len(args) < 3 {
		return []string{args}
	}
	a, b := len(args)/3, 2*len(args)/3
	return []string{args[:a], args[a:b], args[b:]}
}

func callID(tc ToolCall, i int) string {
	if tc.ID != "" {
		return tc.ID
	}
	return fmt.Sprintf("call_%d", i+1)
}

type obj = map[string]any

// API names one of the wire formats a Server speaks.
type API string

// The wire formats.
const (
	ChatCompletions API = "chat_completions" // OpenAI POST /v1/chat/completions
	Responses       API = "responses"        // OpenAI POST /v1/responses
	Messages        API = "messages"         // Anthropic POST /v1/messages
)

func formatOf(api API) format {
	switch api {
	case ChatCompletions:
		return chatFormat{}
	case Responses:
		return responsesFormat{}
	case Messages:
		return messagesFormat{}
	}
	panic("llmhttptest: unknown API " + string(api))
}

// Whole is the body a Server answers a request of api with, for rep as
// the first reply of its script (rep.Model is the model it names).
func Whole(api API, rep Reply) string { return formatOf(api).whole(1, rep) }

// Events are the events a Server streams for rep as the first reply of
// its script, a chat completion's with its usage.
func Events(api API, rep Reply) []string { return formatOf(api).events(1, rep, true) }
