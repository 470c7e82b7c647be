package mcpgov_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/mcpgov"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// TestClientDeniedToolNeverReachesServer: a tool a deny list names, or a
// look-alike of it, is refused before the request is sent.
func TestClientDeniedToolNeverReachesServer(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	for _, name := range []string{"delete_repo", "Delete_Repo", " delete_repo", "ｄｅｌｅｔｅ_ｒｅｐｏ"} {
		run := e.start()
		res, err := cs.CallTool(governance.ContextWithRun(ctx, run), &mcp.CallToolParams{Name: name, Arguments: map[string]any{"repo": "acme/prod"}})
		var v *governance.Violation
		if !errors.As(err, &v) || v.PolicyID() != "no-delete" || !errors.Is(err, mcpgov.ErrNotSent) || res != nil {
			t.Fatalf("%q: %v %v", name, res, err)
		}
		steps := e.steps(run)
		if len(steps) != 1 || steps[0].StepType != prevention.StepToolCall || steps[0].Tool != name || !steps[0].Inflection ||
			steps[0].Input != `{"repo":"acme/prod"}` {
			t.Fatalf("%q: steps %+v", name, steps)
		}
		if rec := run.Record(); rec.Status != governance.StatusFailedPolicy {
			t.Errorf("%q: run %s", name, rec.Status)
		}
	}
	if s.received() != 0 || s.count("delete_repo") != 0 {
		t.Fatalf("the server received %d calls", s.received())
	}
}

// TestClientCallRecorded: an allowed call is a tool_call step with the
// arguments exactly as the server received them, then a tool_result
// step with its content.
func TestClientCallRecorded(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	run := e.start()
	rctx := governance.ContextWithRun(ctx, run)

	// HTML characters and non-ASCII text are sent as they are.
	res, err := cs.CallTool(rctx, &mcp.CallToolParams{Name: "weather", Arguments: map[string]any{"city": "Lyon <&> Größe"}})
	if err != nil || res.IsError || text(t, res) != "sunny in Lyon <&> Größe" {
		t.Fatalf("weather: %+v %v", res, err)
	}
	// Arguments given as JSON text are compacted, and sent as recorded.
	res, err = cs.CallTool(rctx, &mcp.CallToolParams{Name: "weather", Arguments: json.RawMessage(`{ "city" : "Paris" }`)})
	if err != nil || text(t, res) != "sunny in Paris" {
		t.Fatalf("weather: %+v %v", res, err)
	}
	steps := e.steps(run)
	if len(steps) != 4 {
		t.Fatalf("%d steps", len(steps))
	}
	wantIn := []string{`{"city":"Lyon <&> Größe"}`, `{"city":"Paris"}`}
	wantOut := []string{"sunny in Lyon <&> Größe", "sunny in Paris"}
	for i := range 2 {
		call, result := steps[2*i], steps[2*i+1]
		if call.StepType != prevention.StepToolCall || call.Tool != "weather" || call.Input != wantIn[i] || call.Input != s.args[i] {
			t.Errorf("call %d: %+v, the server received %s", i, call, s.args[i])
		}
		if result.StepType != prevention.StepToolResult || result.Tool != "weather" || result.Output != wantOut[i] || result.Input != "" {
			t.Errorf("result %d: %+v", i, result)
		}
		for _, st := range []step{call, result} {
			md := st.Metadata
			if md[mcpgov.MetaSide] != "client" || md[mcpgov.MetaMethod] != "tools/call" || md[mcpgov.MetaToolServer] != "test-server" || len(md) != 3 {
				t.Errorf("step %d metadata %v", st.StepIndex, md)
			}
		}
	}
	if _, err := governance.VerifyRun(ctx, e.store, run.TenantID(), run.ID()); err != nil {
		t.Fatal(err)
	}
}

// TestClientBlockedResultNotReturned: a result a content policy blocks
// is recorded as the inflection point and not returned.
func TestClientBlockedResultNotReturned(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	run := e.start()
	res, err := cs.CallTool(governance.ContextWithRun(ctx, run), &mcp.CallToolParams{Name: "lookup"})
	var v *governance.Violation
	if !errors.As(err, &v) || v.PolicyID() != "no-ssn" || res != nil || errors.Is(err, mcpgov.ErrNotSent) {
		t.Fatalf("%+v %v", res, err)
	}
	if s.count("lookup") != 1 {
		t.Fatalf("lookup ran %d times", s.count("lookup"))
	}
	steps := e.steps(run)
	if len(steps) != 2 || steps[0].Input != "{}" || !steps[1].Inflection || steps[1].Output != "SSN 123-45-6789" {
		t.Fatalf("steps %+v", steps)
	}
	// Every later call is refused unsent.
	if _, err := cs.CallTool(governance.ContextWithRun(ctx, run), &mcp.CallToolParams{Name: "weather"}); !errors.Is(err, governance.ErrRunStopped) || !errors.Is(err, mcpgov.ErrNotSent) {
		t.Fatalf("after the stop: %v", err)
	}
	if s.received() != 1 {
		t.Fatalf("the server received %d calls", s.received())
	}
}

// TestClientNoRun: a governed request with no run is refused unless the
// client opted into passing it ungoverned; WithRun binds a run.
func TestClientNoRun(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "weather"}); !errors.Is(err, governance.ErrNoRun) || !errors.Is(err, mcpgov.ErrNotSent) {
		t.Fatalf("tools/call: %v", err)
	}
	if _, err := cs.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///notes.txt"}); !errors.Is(err, governance.ErrNoRun) {
		t.Fatalf("resources/read: %v", err)
	}
	if _, err := cs.GetPrompt(ctx, &mcp.GetPromptParams{Name: "greet"}); !errors.Is(err, governance.ErrNoRun) {
		t.Fatalf("prompts/get: %v", err)
	}
	if s.received() != 0 || s.count("file:///notes.txt") != 0 || s.count("greet") != 0 {
		t.Fatal("a request without a run reached the server")
	}
	// Methods that return nothing an agent acts on pass through.
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatal(err)
	}

	// Opted in: ungoverned, nothing recorded.
	open := connect(t, s.Server, "agent", mcpgov.ClientMiddleware(mcpgov.WithUngovernedPassThrough()))
	if res, err := open.CallTool(ctx, &mcp.CallToolParams{Name: "weather", Arguments: cityArgs{"Oslo"}}); err != nil || text(t, res) != "sunny in Oslo" {
		t.Fatalf("pass-through: %v", err)
	}
	// A run in the context is still governed.
	run := e.start()
	if _, err := open.CallTool(governance.ContextWithRun(ctx, run), &mcp.CallToolParams{Name: "weather"}); err != nil || len(e.steps(run)) != 2 {
		t.Fatalf("governed despite pass-through: %v", err)
	}

	// Bound: every call is a step of the run, with or without a context.
	bound := e.start()
	bc := connect(t, s.Server, "agent", mcpgov.ClientMiddleware(mcpgov.WithRun(bound)))
	if _, err := bc.CallTool(ctx, &mcp.CallToolParams{Name: "weather"}); err != nil {
		t.Fatal(err)
	}
	if _, err := bc.CallTool(governance.ContextWithRun(ctx, bound), &mcp.CallToolParams{Name: "weather"}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.steps(bound)); n != 4 {
		t.Fatalf("bound run has %d steps", n)
	}
	// A context carrying another run is ambiguous: refused.
	other := e.start()
	before := s.received()
	if _, err := bc.CallTool(governance.ContextWithRun(ctx, other), &mcp.CallToolParams{Name: "weather"}); !errors.Is(err, mcpgov.ErrNotSent) || !strings.Contains(err.Error(), other.ID()) {
		t.Fatalf("two runs: %v", err)
	}
	if s.received() != before || len(e.steps(other)) != 0 || len(e.steps(bound)) != 4 {
		t.Fatal("a call naming two runs was sent or recorded")
	}
}

// TestClientConcurrentCalls: calls in parallel on one run are each
// recorded as a call, then its result. The server governs them too, on a
// run of its own.
func TestClientConcurrentCalls(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	serverRun := e.start()
	mw, err := mcpgov.ServerMiddleware(func(context.Context, *mcp.ServerSession, *mcp.RequestExtra) (*governance.Run, error) {
		return serverRun, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.AddReceivingMiddleware(mw)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	run := e.start()
	rctx := governance.ContextWithRun(ctx, run)
	const n = 24
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			res, err := cs.CallTool(rctx, &mcp.CallToolParams{Name: "double", Arguments: map[string]int{"n": i}})
			if err != nil || text(t, res) != fmt.Sprint(2*i) {
				t.Errorf("double(%d): %+v %v", i, res, err)
			}
		})
	}
	wg.Wait()
	for _, r := range []*governance.Run{run, serverRun} {
		steps := e.steps(r)
		if len(steps) != 2*n {
			t.Fatalf("%d steps, want %d", len(steps), 2*n)
		}
		called := map[string]int{} // input → index of its call
		results := 0
		for i, st := range steps {
			switch st.StepType {
			case prevention.StepToolCall:
				called[st.Input] = i
			case prevention.StepToolResult:
				results++
				if results > len(called) {
					t.Fatal("a result recorded before its call")
				}
			}
		}
		for i := range n {
			if _, ok := called[fmt.Sprintf(`{"n":%d}`, i)]; !ok {
				t.Errorf("no call with n=%d", i)
			}
		}
		if _, err := governance.VerifyRun(ctx, e.store, r.TenantID(), r.ID()); err != nil {
			t.Fatal(err)
		}
	}
}

// TestClientToolErrors: a tool's own error (isError) and a protocol error
// are recorded in the call's tool_result step and returned as they are.
func TestClientToolErrors(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	run := e.start()
	rctx := governance.ContextWithRun(ctx, run)
	res, err := cs.CallTool(rctx, &mcp.CallToolParams{Name: "fail"})
	if err != nil || !res.IsError || text(t, res) != "index offline" {
		t.Fatalf("fail: %+v %v", res, err)
	}
	if _, err := cs.CallTool(rctx, &mcp.CallToolParams{Name: "broken"}); err == nil || !strings.Contains(err.Error(), "backend down") {
		t.Fatalf("broken: %v", err)
	}
	if _, err := cs.CallTool(rctx, &mcp.CallToolParams{Name: "no_such_tool"}); err == nil {
		t.Fatal("unknown tool: no error")
	}
	steps := e.steps(run)
	if len(steps) != 6 {
		t.Fatalf("%d steps", len(steps))
	}
	if r := steps[1]; r.Output != "index offline" || r.Metadata[mcpgov.MetaIsError] != "true" || r.Metadata[governance.MetadataToolError] != "" {
		t.Errorf("isError result: %+v", r)
	}
	if r := steps[3]; r.Output != "" || !strings.Contains(r.Metadata[governance.MetadataToolError], "backend down") {
		t.Errorf("protocol error: %+v", r)
	}
	if r := steps[5]; !strings.Contains(r.Metadata[governance.MetadataToolError], "no_such_tool") {
		t.Errorf("unknown tool: %+v", r)
	}
	if run.Ended() {
		t.Error("an error stopped the run")
	}
}

// TestClientCancelledCall: a call the caller gives up on after it was
// sent has its tool_result recorded with the error.
func TestClientCancelledCall(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	run := e.start()
	cctx, cancel := context.WithCancel(governance.ContextWithRun(ctx, run))
	go func() {
		for s.count("slow") == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	if _, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "slow"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("slow: %v", err)
	}
	steps := e.steps(run)
	if len(steps) != 2 || steps[1].StepType != prevention.StepToolResult || !strings.Contains(steps[1].Metadata[governance.MetadataToolError], "context canceled") {
		t.Fatalf("steps %+v", steps)
	}
}

// TestClientRefusesInvalidNames: a name with a character no one sees, or
// none, is refused unsent, and nothing is recorded.
func TestClientRefusesInvalidNames(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	run := e.start()
	for _, name := range []string{"", "delete\u200b_repo", "weather\x00", "\u202eweather", "weather\ufe0f", strings.Repeat("w", governance.MaxNameBytes+1)} {
		_, err := cs.CallTool(governance.ContextWithRun(ctx, run), &mcp.CallToolParams{Name: name})
		if !errors.Is(err, mcpgov.ErrNotSent) || !errors.Is(err, governance.ErrInvalidStep) {
			t.Errorf("%q: %v", name, err)
		}
		if name != "" && len(name) <= governance.MaxNameBytes && !errors.Is(err, prevention.ErrInvalidName) {
			t.Errorf("%q: %v, want prevention.ErrInvalidName", name, err)
		}
	}
	if s.received() != 0 || len(e.steps(run)) != 0 || run.Ended() {
		t.Fatalf("received %d, recorded %d", s.received(), len(e.steps(run)))
	}
}

// TestClientRefusesAmbiguousArguments: arguments two JSON readers could
// read differently are refused unsent.
func TestClientRefusesAmbiguousArguments(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	run := e.start()
	for _, args := range []any{
		json.RawMessage(`{"city":"Lyon","city":"secret"}`),
		json.RawMessage("{\"city\":\"\xff\"}"),
		json.RawMessage(`{"city":"\ud800"}`),
		func() {}, // not encodable
	} {
		_, err := cs.CallTool(governance.ContextWithRun(ctx, run), &mcp.CallToolParams{Name: "weather", Arguments: args})
		if !errors.Is(err, mcpgov.ErrNotSent) || !errors.Is(err, mcpgov.ErrMalformed) {
			t.Errorf("%v: %v", args, err)
		}
	}
	if s.received() != 0 || len(e.steps(run)) != 0 {
		t.Fatalf("received %d, recorded %d", s.received(), len(e.steps(run)))
	}
}

// TestClientDescribesContent: every kind of content block, and
// structured content, is in the recorded output.
func TestClientDescribesContent(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	run := e.start()
	rctx := governance.ContextWithRun(ctx, run)
	if _, err := cs.CallTool(rctx, &mcp.CallToolParams{Name: "media"}); err != nil {
		t.Fatal(err)
	}
	// Structured output whose JSON is already the text is recorded once.
	if _, err := cs.CallTool(rctx, &mcp.CallToolParams{Name: "forecast", Arguments: cityArgs{"Nice"}}); err != nil {
		t.Fatal(err)
	}
	steps := e.steps(run)
	want := strings.Join([]string{
		"here",
		"[image image/png, 6 bytes]",
		"[audio audio/wav, 4 bytes]",
		"[resource_link file:///r.txt text/plain] name: r; title: R; description: a file",
		"[resource file:///e.txt text/plain]",
		"embedded text",
		"[resource file:///e.bin, 4 bytes]",
		`{"note":"structured"}`,
	}, "\n")
	if got := steps[1].Output; got != want {
		t.Errorf("media output:\n%s\nwant:\n%s", got, want)
	}
	if got := steps[3].Output; got != `{"city":"Nice","high":21}` {
		t.Errorf("forecast output: %s", got)
	}
}

// TestClientReads: resources/read and prompts/get are message steps,
// checked before they are sent and recorded with what they returned
// before the caller gets it.
func TestClientReads(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	run := e.start()
	rctx := governance.ContextWithRun(ctx, run)
	rr, err := cs.ReadResource(rctx, &mcp.ReadResourceParams{URI: "file:///notes.txt"})
	if err != nil || rr.Contents[0].Text != "remember the milk" {
		t.Fatalf("read: %+v %v", rr, err)
	}
	pr, err := cs.GetPrompt(rctx, &mcp.GetPromptParams{Name: "greet", Arguments: map[string]string{"who": "Ada"}})
	if err != nil || len(pr.Messages) != 1 {
		t.Fatalf("prompt: %+v %v", pr, err)
	}
	steps := e.steps(run)
	if len(steps) != 2 {
		t.Fatalf("%d steps", len(steps))
	}
	if st := steps[0]; st.StepType != prevention.StepMessage || st.Input != "file:///notes.txt" ||
		st.Output != "[resource file:///notes.txt text/plain]\nremember the milk" || st.Metadata[mcpgov.MetaMethod] != "resources/read" {
		t.Errorf("read step %+v", st)
	}
	if st := steps[1]; st.StepType != prevention.StepMessage || st.Input != `{"name":"greet","arguments":{"who":"Ada"}}` ||
		st.Output != "a greeting\nuser: Say hello to Ada" || st.Metadata[mcpgov.MetaMethod] != "prompts/get" {
		t.Errorf("prompt step %+v", st)
	}

	// Content a policy blocks is not returned.
	rr, err = cs.ReadResource(rctx, &mcp.ReadResourceParams{URI: "file:///ssn.txt"})
	var v *governance.Violation
	if !errors.As(err, &v) || v.PolicyID() != "no-ssn" || rr != nil || s.count("file:///ssn.txt") != 1 {
		t.Fatalf("blocked content: %+v %v", rr, err)
	}

	// A request a policy blocks is not sent: the run stops there, with a
	// withheld step.
	run = e.start()
	_, err = cs.ReadResource(governance.ContextWithRun(ctx, run), &mcp.ReadResourceParams{URI: "file:///secret.txt"})
	if !errors.As(err, &v) || v.PolicyID() != "no-secret" || !errors.Is(err, mcpgov.ErrNotSent) || s.count("file:///secret.txt") != 0 {
		t.Fatalf("blocked request: %v", err)
	}
	steps = e.steps(run)
	if len(steps) != 1 || !steps[0].Inflection || steps[0].Metadata[governance.MetadataWithheld] != "true" || steps[0].Status != trace.StatusViolation {
		t.Fatalf("steps %+v", steps)
	}
}

// flaky marshals to a different value each time: the arguments are
// encoded once, and the server receives what was recorded.
type flaky struct{ n *int }

func (f flaky) MarshalJSON() ([]byte, error) {
	*f.n++
	return fmt.Appendf(nil, `{"city":"city-%d"}`, *f.n), nil
}

func TestClientSendsWhatItRecorded(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	run := e.start()
	res, err := cs.CallTool(governance.ContextWithRun(ctx, run), &mcp.CallToolParams{Name: "weather", Arguments: flaky{new(int)}})
	if err != nil {
		t.Fatal(err)
	}
	steps := e.steps(run)
	if steps[0].Input != `{"city":"city-1"}` || s.args[0] != steps[0].Input || text(t, res) != "sunny in city-1" {
		t.Fatalf("recorded %s, the server received %s and answered %q", steps[0].Input, s.args[0], text(t, res))
	}
}

// TestClientRefusesUndescribedContent: a result holding a block this
// package does not describe is recorded and not returned; the run goes on.
func TestClientRefusesUndescribedContent(t *testing.T) {
	e := newEnv(t)
	s := newServer(t)
	cs := connect(t, s.Server, "agent", mcpgov.ClientMiddleware())
	run := e.start()
	res, err := cs.CallTool(governance.ContextWithRun(ctx, run), &mcp.CallToolParams{Name: "odd"})
	if !errors.Is(err, mcpgov.ErrMalformed) || errors.Is(err, mcpgov.ErrNotSent) || res != nil {
		t.Fatalf("%+v %v", res, err)
	}
	steps := e.steps(run)
	if len(steps) != 2 || steps[1].Output != "" || !strings.Contains(steps[1].Metadata[mcpgov.MetaError], "ToolUseContent") || run.Ended() {
		t.Fatalf("steps %+v", steps)
	}
}
