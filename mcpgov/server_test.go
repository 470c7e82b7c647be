package mcpgov_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/mcpgov"
	"github.com/stopline/stopline/prevention"
)

// wireCode is the JSON-RPC error code err carries, or 0.
func wireCode(err error) int64 {
	var we *jsonrpc.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return 0
}

// byClient governs s with a run per client name, looked up in runs.
func byClient(t *testing.T, s *server, runs map[string]*governance.Run, opts ...mcpgov.Option) {
	t.Helper()
	var mu sync.Mutex
	mw, err := mcpgov.ServerMiddleware(func(_ context.Context, ss *mcp.ServerSession, _ *mcp.RequestExtra) (*governance.Run, error) {
		ip := ss.InitializeParams()
		if ip == nil || ip.ClientInfo == nil {
			return nil, nil
		}
		mu.Lock()
		defer mu.Unlock()
		if ip.ClientInfo.Name == "error" {
			return nil, errors.New("directory at db.internal:5432 unreachable")
		}
		return runs[ip.ClientInfo.Name], nil
	}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	s.AddReceivingMiddleware(mw)
}

// TestServerRunPerSession: each session's calls are steps of the run
// its resolver returns, and the handler's context carries that run; a
// session without a run is refused with an MCP error and nothing runs.
func TestServerRunPerSession(t *testing.T) {
	for _, version := range []string{"", "2025-11-25"} {
		t.Run("version="+version, func(t *testing.T) { testServerRunPerSession(t, version) })
	}
}

func testServerRunPerSession(t *testing.T, version string) {
	e := newEnv(t)
	var s *server
	if version == "" {
		s = newServer(t)
	} else {
		s = newServer(t, version)
	}
	alice, bob := e.start(), e.start()
	byClient(t, s, map[string]*governance.Run{"alice": alice, "bob": bob})
	ac, bc := connect(t, s.Server, "alice"), connect(t, s.Server, "bob")

	if res, err := ac.CallTool(ctx, &mcp.CallToolParams{Name: "weather", Arguments: cityArgs{"Lyon"}}); err != nil || text(t, res) != "sunny in Lyon" {
		t.Fatalf("alice: %+v %v", res, err)
	}
	if res, err := bc.CallTool(ctx, &mcp.CallToolParams{Name: "weather", Arguments: json.RawMessage(`{"city":"Oslo"}`)}); err != nil || text(t, res) != "sunny in Oslo" {
		t.Fatalf("bob: %+v %v", res, err)
	}
	if len(s.runs) != 2 || s.runs[0] != alice || s.runs[1] != bob {
		t.Fatalf("the handlers' contexts carried %v", s.runs)
	}
	for name, run := range map[string]*governance.Run{"alice": alice, "bob": bob} {
		steps := e.steps(run)
		if len(steps) != 2 || steps[0].StepType != prevention.StepToolCall || steps[1].StepType != prevention.StepToolResult {
			t.Fatalf("%s: steps %+v", name, steps)
		}
		for _, st := range steps {
			if md := st.Metadata; md[mcpgov.MetaSide] != "server" || md[mcpgov.MetaClient] != name || md[mcpgov.MetaMethod] != "tools/call" {
				t.Errorf("%s: metadata %v", name, md)
			}
		}
	}
	if got := e.steps(bob)[0].Input; got != `{"city":"Oslo"}` {
		t.Errorf("bob's arguments recorded as %s", got)
	}

	// No run for the session, or a resolver that fails: refused, nothing
	// runs, and the resolver's error stays on the server.
	before := s.count("weather")
	for _, name := range []string{"mallory", "error"} {
		mc := connect(t, s.Server, name)
		_, err := mc.CallTool(ctx, &mcp.CallToolParams{Name: "weather", Arguments: cityArgs{"Rome"}})
		if wireCode(err) != mcpgov.CodeRefused || strings.Contains(err.Error(), "db.internal") {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := mc.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///notes.txt"}); wireCode(err) != mcpgov.CodeRefused {
			t.Fatalf("%s: read: %v", name, err)
		}
		if _, err := mc.ListTools(ctx, nil); err != nil {
			t.Fatalf("%s: tools/list is not governed: %v", name, err)
		}
	}
	if s.count("weather") != before || s.count("file:///notes.txt") != 0 {
		t.Fatal("a request without a run was served")
	}

	// A denied tool: refused, not run; the session's run has stopped, the
	// other session's goes on.
	_, err := ac.CallTool(ctx, &mcp.CallToolParams{Name: "delete_repo", Arguments: map[string]any{}})
	if wireCode(err) != mcpgov.CodeRefused || !strings.Contains(err.Error(), "no-delete") || s.count("delete_repo") != 0 {
		t.Fatalf("denied: %v", err)
	}
	if _, err := ac.CallTool(ctx, &mcp.CallToolParams{Name: "weather", Arguments: cityArgs{"Lyon"}}); wireCode(err) != mcpgov.CodeRefused || !strings.Contains(err.Error(), "ended") {
		t.Fatalf("after the stop: %v", err)
	}
	if _, err := bc.CallTool(ctx, &mcp.CallToolParams{Name: "weather", Arguments: cityArgs{"Oslo"}}); err != nil {
		t.Fatalf("bob after alice's stop: %v", err)
	}
	if rec := alice.Record(); rec.Status != governance.StatusFailedPolicy || rec.StoppedAtStep == nil || *rec.StoppedAtStep != 2 {
		t.Fatalf("alice's run: %+v", rec)
	}
}

// TestServerPassThrough: opted in, a session without a run is served
// ungoverned.
func TestServerPassThrough(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	run := e.start()
	byClient(t, s, map[string]*governance.Run{"alice": run}, mcpgov.WithUngovernedPassThrough())
	if _, err := connect(t, s.Server, "mallory").CallTool(ctx, &mcp.CallToolParams{Name: "delete_repo", Arguments: map[string]any{}}); err != nil || s.count("delete_repo") != 1 {
		t.Fatalf("ungoverned: %v", err)
	}
	// A resolver's error is still a refusal.
	if _, err := connect(t, s.Server, "error").CallTool(ctx, &mcp.CallToolParams{Name: "weather", Arguments: cityArgs{"Rome"}}); wireCode(err) != mcpgov.CodeRefused {
		t.Fatalf("resolver error: %v", err)
	}
	if _, err := connect(t, s.Server, "alice").CallTool(ctx, &mcp.CallToolParams{Name: "delete_repo", Arguments: map[string]any{}}); wireCode(err) != mcpgov.CodeRefused || s.count("delete_repo") != 1 {
		t.Fatalf("governed: %v", err)
	}
}

// TestServerHandlerErrors: a handler's error, returned as an isError
// result or as a protocol error, is recorded in the tool_result step.
func TestServerHandlerErrors(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	run := e.start()
	byClient(t, s, map[string]*governance.Run{"alice": run})
	cs := connect(t, s.Server, "alice")
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "fail", Arguments: map[string]any{}})
	if err != nil || !res.IsError || text(t, res) != "index offline" {
		t.Fatalf("fail: %+v %v", res, err)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "broken", Arguments: map[string]any{}}); wireCode(err) != jsonrpc.CodeInternalError {
		t.Fatalf("broken: %v", err)
	}
	steps := e.steps(run)
	if len(steps) != 4 {
		t.Fatalf("%d steps", len(steps))
	}
	if r := steps[1]; r.Output != "index offline" || r.Metadata[mcpgov.MetaIsError] != "true" || r.Metadata[governance.MetadataToolError] != "index offline" {
		t.Errorf("isError result: %+v", r)
	}
	if r := steps[3]; r.Output != "" || !strings.Contains(r.Metadata[governance.MetadataToolError], "backend down") {
		t.Errorf("protocol error: %+v", r)
	}
	if run.Ended() {
		t.Error("a handler's error stopped the run")
	}
}

// TestServerBlockedResultNotSent: a result a policy blocks is refused,
// not sent.
func TestServerBlockedResultNotSent(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	run := e.start()
	byClient(t, s, map[string]*governance.Run{"alice": run})
	res, err := connect(t, s.Server, "alice").CallTool(ctx, &mcp.CallToolParams{Name: "lookup", Arguments: map[string]any{}})
	if wireCode(err) != mcpgov.CodeRefused || res != nil || strings.Contains(err.Error(), "123-45-6789") || s.count("lookup") != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	// The message names the policy, the reason and the incident, not the
	// policy's own message.
	if !strings.Contains(err.Error(), "no-ssn") || strings.Contains(err.Error(), `\d`) {
		t.Errorf("refusal: %v", err)
	}
	if steps := e.steps(run); len(steps) != 2 || !steps[1].Inflection || steps[1].Output != "SSN 123-45-6789" {
		t.Fatalf("steps %+v", steps)
	}
}

// TestServerRefusesUndescribedContent: a handler's result this package
// cannot describe is recorded, and not sent.
func TestServerRefusesUndescribedContent(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	run := e.start()
	byClient(t, s, map[string]*governance.Run{"alice": run})
	if _, err := connect(t, s.Server, "alice").CallTool(ctx, &mcp.CallToolParams{Name: "odd", Arguments: map[string]any{}}); wireCode(err) != jsonrpc.CodeInternalError || strings.Contains(err.Error(), "rm -rf") {
		t.Fatalf("%v", err)
	}
	if steps := e.steps(run); len(steps) != 2 || steps[1].Metadata[mcpgov.MetaError] == "" || run.Ended() {
		t.Fatalf("steps %+v", steps)
	}
}

// TestServerRefusesInvalidNamesAndArguments: a name with a character no
// one sees, or arguments two readers read differently, are refused as
// invalid params; nothing runs or is recorded.
func TestServerRefusesInvalidNamesAndArguments(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	run := e.start()
	byClient(t, s, map[string]*governance.Run{"alice": run})
	cs := connect(t, s.Server, "alice")
	for _, p := range []*mcp.CallToolParams{
		{Name: "weather\u200b", Arguments: cityArgs{"Lyon"}},
		{Name: "\u202eweather", Arguments: cityArgs{"Lyon"}},
		{Name: "weather", Arguments: json.RawMessage(`{"city":"Lyon","city":"secret"}`)},
		{Name: "weather", Arguments: json.RawMessage(`{"city":"\udc00"}`)},
	} {
		if _, err := cs.CallTool(ctx, p); wireCode(err) != jsonrpc.CodeInvalidParams {
			t.Errorf("%q %s: %v", p.Name, p.Arguments, err)
		}
	}
	if s.count("weather") != 0 || len(e.steps(run)) != 0 || run.Ended() {
		t.Fatalf("weather ran %d times; %d steps", s.count("weather"), len(e.steps(run)))
	}
}

// TestServerReads: resources/read and prompts/get on a governed server.
func TestServerReads(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	run := e.start()
	byClient(t, s, map[string]*governance.Run{"alice": run})
	cs := connect(t, s.Server, "alice")
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///notes.txt"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "greet", Arguments: map[string]string{"who": "Ada"}}); err != nil {
		t.Fatal(err)
	}
	// A request a policy blocks: the handler does not run.
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///secret.txt"}); wireCode(err) != mcpgov.CodeRefused || s.count("file:///secret.txt") != 0 {
		t.Fatalf("blocked request: %v", err)
	}
	steps := e.steps(run)
	if len(steps) != 3 || steps[0].Output != "[resource file:///notes.txt text/plain]\nremember the milk" || steps[1].Output != "a greeting\nuser: Say hello to Ada" ||
		steps[2].Metadata[governance.MetadataWithheld] != "true" || steps[2].Input != "file:///secret.txt" {
		t.Fatalf("steps %+v", steps)
	}
	if len(s.runs) != 2 || s.runs[0] != run || s.runs[1] != run {
		t.Errorf("the handlers' contexts carried %v", s.runs)
	}
}

// TestServerMultiRoundTrip: a tool that asks the user for input. On the
// current protocol the client's SDK retries the call beneath the client
// middleware (one call, one result) and the server governs each round,
// the retry recording the user's answer. On a legacy protocol the
// server's SDK asks the client and runs the handler again beneath the
// server middleware: one governed call on each side.
func TestServerMultiRoundTrip(t *testing.T) {
	for _, version := range []string{"", "2025-11-25"} {
		t.Run("version="+version, func(t *testing.T) {
			e := newEnv(t)
			var versions []string
			if version != "" {
				versions = []string{version}
			}
			srv := mcp.NewServer(&mcp.Implementation{Name: "test-server", Version: "1"}, &mcp.ServerOptions{SupportedProtocolVersions: versions})
			mcp.AddTool(srv, &mcp.Tool{Name: "greet"}, func(_ context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
				if len(req.Params.InputResponses) == 0 {
					return &mcp.CallToolResult{InputRequests: mcp.InputRequestMap{"user_name": &mcp.ElicitParams{
						Message:         "What's your name?",
						RequestedSchema: map[string]any{"type": "object", "properties": map[string]any{"name": map[string]any{"type": "string"}}},
					}}}, nil, nil
				}
				name, _ := req.Params.InputResponses["user_name"].(*mcp.ElicitResult).Content["name"].(string)
				return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "Hello " + name}}}, nil, nil
			})
			serverRun, clientRun := e.start(), e.start()
			mw, _ := mcpgov.ServerMiddleware(func(context.Context, *mcp.ServerSession, *mcp.RequestExtra) (*governance.Run, error) {
				return serverRun, nil
			})
			srv.AddReceivingMiddleware(mw)

			ct, st := mcp.NewInMemoryTransports()
			ss, err := srv.Connect(ctx, st, nil)
			if err != nil {
				t.Fatal(err)
			}
			c := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, &mcp.ClientOptions{
				ElicitationHandler: func(context.Context, *mcp.ElicitRequest) (*mcp.ElicitResult, error) {
					return &mcp.ElicitResult{Action: "accept", Content: map[string]any{"name": "Ada"}}, nil
				},
			})
			c.AddSendingMiddleware(mcpgov.ClientMiddleware(mcpgov.WithRun(clientRun)))
			cs, err := c.Connect(ctx, ct, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { cs.Close(); ss.Wait() }()
			res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "greet"})
			if err != nil || text(t, res) != "Hello Ada" {
				t.Fatalf("%+v %v", res, err)
			}
			if steps := e.steps(clientRun); len(steps) != 2 || steps[1].Output != "Hello Ada" || steps[1].Metadata[mcpgov.MetaInputRequired] != "" {
				t.Fatalf("client steps %+v", steps)
			}
			steps := e.steps(serverRun)
			if version != "" {
				if len(steps) != 2 || steps[1].Output != "Hello Ada" || steps[1].Metadata[mcpgov.MetaInputRequired] != "" {
					t.Fatalf("server steps %+v", steps)
				}
				return
			}
			if len(steps) != 4 {
				t.Fatalf("server steps %+v", steps)
			}
			if r := steps[1]; r.Metadata[mcpgov.MetaInputRequired] != "true" || !strings.Contains(r.Output, "What's your name?") {
				t.Errorf("first round's result: %+v", r)
			}
			if c := steps[2]; !strings.Contains(c.Metadata[mcpgov.MetaInputResponse], `"name":"Ada"`) {
				t.Errorf("retry: %+v", c)
			}
			if r := steps[3]; r.Output != "Hello Ada" || r.Metadata[mcpgov.MetaInputRequired] != "" {
				t.Errorf("final result: %+v", r)
			}
		})
	}
}

// TestServerMiddlewareConfig: configuration errors fail at construction.
func TestServerMiddlewareConfig(t *testing.T) {
	if _, err := mcpgov.ServerMiddleware(nil); err == nil {
		t.Error("nil resolver accepted")
	}
	run := newEnv(t).start()
	resolve := func(context.Context, *mcp.ServerSession, *mcp.RequestExtra) (*governance.Run, error) { return run, nil }
	if _, err := mcpgov.ServerMiddleware(resolve, mcpgov.WithRun(run)); err == nil {
		t.Error("WithRun accepted on a server")
	}
	if _, err := mcpgov.ServerMiddleware(resolve, nil, mcpgov.WithUngovernedPassThrough()); err != nil {
		t.Error(err)
	}
}
