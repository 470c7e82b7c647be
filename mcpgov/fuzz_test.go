package mcpgov_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/mcpgov"
	"github.com/stopline/stopline/prevention"
)

// FuzzArguments: whatever arguments an agent passes, either the client
// refuses them unsent (ErrMalformed), or the client's tool_call step, the
// bytes the server received and the server's tool_call step are the same.
func FuzzArguments(f *testing.F) {
	for _, seed := range []string{
		`{}`, `{"city":"Lyon"}`, `{"a":[1,2.50,-0e3,{"b":null}],"c":"<&>\u2028"}`, ` { "x" : "y" } `,
		`{"a":1,"a":2}`, `{"a":1,"A":2}`, "{\"a\":\"\xff\"}", `{"a":"\ud800"}`, `{"a":"\ud83d\ude00"}`, `[1]`, `"s"`, `null`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	e := newEnv(f)
	srv := mcp.NewServer(&mcp.Implementation{Name: "echo", Version: "1"}, nil)
	srv.AddTool(&mcp.Tool{Name: "echo", InputSchema: map[string]any{"type": "object"}}, func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: string(req.Params.Arguments)}}}, nil
	})
	var (
		mu        sync.Mutex
		received  []string
		serverRun *governance.Run
	)
	mw, _ := mcpgov.ServerMiddleware(func(context.Context, *mcp.ServerSession, *mcp.RequestExtra) (*governance.Run, error) {
		mu.Lock()
		defer mu.Unlock()
		return serverRun, nil
	})
	srv.AddReceivingMiddleware(func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if r, ok := req.(*mcp.CallToolRequest); ok {
				mu.Lock()
				received = append(received, string(r.Params.Arguments))
				mu.Unlock()
			}
			return next(ctx, method, req)
		}
	}, mw)
	ct, st := mcp.NewInMemoryTransports()
	ss, err := srv.Connect(ctx, st, nil)
	if err != nil {
		f.Fatal(err)
	}
	c := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
	c.AddSendingMiddleware(mcpgov.ClientMiddleware())
	cs, err := c.Connect(ctx, ct, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { cs.Close(); ss.Wait() })

	f.Fuzz(func(t *testing.T, raw []byte) {
		e.t = t
		clientRun := e.start()
		mu.Lock()
		serverRun = e.start()
		received = received[:0]
		mu.Unlock()
		_, err := cs.CallTool(governance.ContextWithRun(ctx, clientRun), &mcp.CallToolParams{Name: "echo", Arguments: json.RawMessage(raw)})
		mu.Lock()
		defer mu.Unlock()
		if errors.Is(err, mcpgov.ErrMalformed) {
			if !errors.Is(err, mcpgov.ErrNotSent) || len(received) != 0 || len(e.steps(clientRun)) != 0 {
				t.Fatalf("refused arguments were sent or recorded: %v", err)
			}
			return
		}
		cl, sv := e.steps(clientRun), e.steps(serverRun)
		if len(cl) == 0 || len(received) != 1 || len(sv) == 0 {
			t.Fatalf("err %v: client steps %d, received %d, server steps %d", err, len(cl), len(received), len(sv))
		}
		if cl[0].StepType != prevention.StepToolCall || cl[0].Input != received[0] || sv[0].Input != received[0] {
			t.Fatalf("client recorded %q, server received %q and recorded %q", cl[0].Input, received[0], sv[0].Input)
		}
	})
}
