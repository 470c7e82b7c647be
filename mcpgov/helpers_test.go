package mcpgov_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

var ctx = context.Background()

// policies deny delete_repo, block an SSN in any output, and block an
// input that names a secret.
const policies = `{"tenant_id":"acme","thresholds":{},"policies":[
	{"id":"no-delete","kind":"tool_denylist","params":{"deny":["delete_repo"]}},
	{"id":"no-ssn","kind":"content","params":{"fields":["output"],"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}},
	{"id":"no-secret","kind":"content","params":{"fields":["input"],"patterns":["secret"]}}]}`

// env is a runner over an in-memory store.
type env struct {
	t      testing.TB
	store  *memstore.Store
	runner *governance.Runner
}

func newEnv(t testing.TB) *env {
	t.Helper()
	st := memstore.New()
	r, err := governance.NewRunner(st)
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, store: st, runner: r}
}

// start starts a run under policies.
func (e *env) start() *governance.Run {
	e.t.Helper()
	snap, err := snapshot.Parse("policies.json", []byte(policies), time.Now(), e.runner.Kinds())
	if err != nil {
		e.t.Fatal(err)
	}
	run, err := e.runner.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		e.t.Fatal(err)
	}
	return run
}

// step is a recorded step and what it said.
type step struct {
	trace.Record
	trace.Content
}

// steps returns the run's step records, in order, with their contents.
func (e *env) steps(run *governance.Run) []step {
	e.t.Helper()
	recs, err := e.store.Records(ctx, run.TenantID(), run.ID())
	if err != nil {
		e.t.Fatal(err)
	}
	cs, err := e.store.Contents(ctx, run.TenantID(), run.ID())
	if err != nil {
		e.t.Fatal(err)
	}
	var out []step
	for _, r := range recs {
		if r.Kind == trace.KindStep {
			out = append(out, step{r, cs[r.StepIndex]})
		}
	}
	return out
}

// server is an MCP server with tools, a resource and a prompt, counting
// the calls that reach each handler.
type server struct {
	*mcp.Server
	mu    sync.Mutex
	calls map[string]int
	args  []string // the raw arguments of every tools/call received, in order
	runs  []*governance.Run
}

type cityArgs struct {
	City string `json:"city"`
}

// newServer makes the server, speaking only versions of the protocol if
// any are given.
func newServer(t *testing.T, versions ...string) *server {
	t.Helper()
	opts := &mcp.ServerOptions{SupportedProtocolVersions: versions}
	s := &server{Server: mcp.NewServer(&mcp.Implementation{Name: "test-server", Version: "1"}, opts), calls: map[string]int{}}
	count := func(ctx context.Context, name string) {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.calls[name]++
		if run, ok := governance.RunFromContext(ctx); ok {
			s.runs = append(s.runs, run)
		}
	}
	mcp.AddTool(s.Server, &mcp.Tool{Name: "weather"}, func(ctx context.Context, _ *mcp.CallToolRequest, in cityArgs) (*mcp.CallToolResult, any, error) {
		count(ctx, "weather")
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "sunny in " + in.City}}}, nil, nil
	})
	mcp.AddTool(s.Server, &mcp.Tool{Name: "double"}, func(ctx context.Context, _ *mcp.CallToolRequest, in struct {
		N int `json:"n"`
	}) (*mcp.CallToolResult, any, error) {
		count(ctx, "double")
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprint(2 * in.N)}}}, nil, nil
	})
	mcp.AddTool(s.Server, &mcp.Tool{Name: "delete_repo"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
		count(ctx, "delete_repo")
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted"}}}, nil, nil
	})
	mcp.AddTool(s.Server, &mcp.Tool{Name: "lookup"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
		count(ctx, "lookup")
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "SSN 123-45-6789"}}}, nil, nil
	})
	mcp.AddTool(s.Server, &mcp.Tool{Name: "fail"}, func(ctx context.Context, _ *mcp.CallToolRequest, _ map[string]any) (*mcp.CallToolResult, any, error) {
		count(ctx, "fail")
		return nil, nil, errors.New("index offline")
	})
	// A raw handler whose error is a protocol error, not a tool result.
	s.AddTool(&mcp.Tool{Name: "broken", InputSchema: map[string]any{"type": "object"}}, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		count(ctx, "broken")
		return nil, &jsonrpc.Error{Code: jsonrpc.CodeInternalError, Message: "backend down"}
	})
	// Structured output: its JSON is the text content the SDK writes.
	mcp.AddTool(s.Server, &mcp.Tool{Name: "forecast"}, func(ctx context.Context, _ *mcp.CallToolRequest, in cityArgs) (*mcp.CallToolResult, forecast, error) {
		count(ctx, "forecast")
		return nil, forecast{City: in.City, High: 21}, nil
	})
	s.AddTool(&mcp.Tool{Name: "media", InputSchema: map[string]any{"type": "object"}}, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		count(ctx, "media")
		size := int64(7)
		return &mcp.CallToolResult{
			Content: []mcp.Content{
				&mcp.TextContent{Text: "here"},
				&mcp.ImageContent{MIMEType: "image/png", Data: []byte("\x89PNG\r\n")},
				&mcp.AudioContent{MIMEType: "audio/wav", Data: []byte("RIFF")},
				&mcp.ResourceLink{URI: "file:///r.txt", Name: "r", Title: "R", Description: "a file", MIMEType: "text/plain", Size: &size},
				&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: "file:///e.txt", MIMEType: "text/plain", Text: "embedded text"}},
				&mcp.EmbeddedResource{Resource: &mcp.ResourceContents{URI: "file:///e.bin", Blob: []byte{1, 2, 3, 4}}},
			},
			StructuredContent: map[string]any{"note": "structured"},
		}, nil
	})
	// A tool_use block belongs in sampling messages, not in a tool result.
	s.AddTool(&mcp.Tool{Name: "odd", InputSchema: map[string]any{"type": "object"}}, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		count(ctx, "odd")
		//lint:ignore SA1019 a block a server may still send
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.ToolUseContent{ID: "t1", Name: "shell", Input: map[string]any{"cmd": "rm -rf /"}}}}, nil
	})
	// A tool that waits for its caller to give up.
	s.AddTool(&mcp.Tool{Name: "slow", InputSchema: map[string]any{"type": "object"}}, func(ctx context.Context, _ *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		count(ctx, "slow")
		<-ctx.Done()
		return nil, ctx.Err()
	})
	for _, r := range []struct{ uri, text string }{{"file:///notes.txt", "remember the milk"}, {"file:///ssn.txt", "123-45-6789"}, {"file:///secret.txt", "hidden"}} {
		s.AddResource(&mcp.Resource{URI: r.uri, Name: r.uri, MIMEType: "text/plain"}, func(ctx context.Context, req *mcp.ReadResourceRequest) (*mcp.ReadResourceResult, error) {
			count(ctx, r.uri)
			return &mcp.ReadResourceResult{Contents: []*mcp.ResourceContents{{URI: r.uri, MIMEType: "text/plain", Text: r.text}}}, nil
		})
	}
	s.AddPrompt(&mcp.Prompt{Name: "greet", Arguments: []*mcp.PromptArgument{{Name: "who"}}}, func(ctx context.Context, req *mcp.GetPromptRequest) (*mcp.GetPromptResult, error) {
		count(ctx, "greet")
		return &mcp.GetPromptResult{Description: "a greeting", Messages: []*mcp.PromptMessage{
			{Role: "user", Content: &mcp.TextContent{Text: "Say hello to " + req.Params.Arguments["who"]}},
		}}, nil
	})
	// Record what arrives, before any other middleware.
	s.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if r, ok := req.(*mcp.CallToolRequest); ok {
				s.mu.Lock()
				s.args = append(s.args, string(r.Params.Arguments))
				s.mu.Unlock()
			}
			return next(ctx, method, req)
		}
	})
	return s
}

type forecast struct {
	City string `json:"city"`
	High int    `json:"high"`
}

// count is the number of calls that reached name's handler.
func (s *server) count(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[name]
}

// received is the number of tools/call requests the server received.
func (s *server) received() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.args)
}

// connect connects a client named name to s over an in-memory
// transport, the client's sending middleware given.
func connect(t *testing.T, s *mcp.Server, name string, mw ...mcp.Middleware) *mcp.ClientSession {
	t.Helper()
	ct, st := mcp.NewInMemoryTransports()
	ss, err := s.Connect(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := mcp.NewClient(&mcp.Implementation{Name: name, Version: "1"}, nil)
	c.AddSendingMiddleware(mw...)
	cs, err := c.Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.Close()
		ss.Wait()
	})
	return cs
}

// text is the text of a result's first content block.
func text(t *testing.T, r *mcp.CallToolResult) string {
	t.Helper()
	if r == nil || len(r.Content) == 0 {
		t.Fatalf("result %+v has no content", r)
	}
	tc, ok := r.Content[0].(*mcp.TextContent)
	if !ok {
		t.Fatalf("content %T", r.Content[0])
	}
	return tc.Text
}
