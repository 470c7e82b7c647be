package mcpgov

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stopline/stopline/governance"
)

// ClientMiddleware returns sending middleware for an MCP client that
// governs the requests it sends as steps of a run (see the package
// documentation): install it with mcp.Client.AddSendingMiddleware, after
// any other sending middleware, so that it sees each request as the
// caller made it and the result as the caller gets it.
//
// The run of a request is the one WithRun binds, else the one its
// context carries (governance.ContextWithRun). A governed request with
// neither is refused (governance.ErrNoRun) unless
// WithUngovernedPassThrough.
//
// The middleware is safe for concurrent use; concurrent calls on one run
// are recorded one step at a time.
func ClientMiddleware(opts ...Option) mcp.Middleware {
	cfg := newConfig(opts)
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if !governedMethod(method) {
				return next(ctx, method, req)
			}
			run, err := cfg.clientRun(ctx)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %w", ErrNotSent, method, err)
			}
			if run == nil {
				return next(ctx, method, req)
			}
			cs, _ := req.GetSession().(*mcp.ClientSession)
			s := clientSteps(cs, method)
			if method == methodCallTool {
				return clientCallTool(ctx, run, s, next, req)
			}
			return clientRead(ctx, run, s, next, method, req)
		}
	}
}

// clientSteps are the steps of a request sent on cs.
func clientSteps(cs *mcp.ClientSession, method string) steps {
	md := map[string]string{MetaSide: "client", MetaMethod: method}
	if cs != nil {
		if id := cs.ID(); id != "" {
			md[MetaSession] = id
		}
		if ir := cs.InitializeResult(); ir != nil && ir.ServerInfo != nil && ir.ServerInfo.Name != "" {
			md[MetaToolServer] = ir.ServerInfo.Name
		}
	}
	return steps{md: md}
}

// clientCallTool governs a tools/call: its tool_call step before it is
// sent, with the arguments exactly as they will be sent; its tool_result
// step before the caller gets the result.
func clientCallTool(ctx context.Context, run *governance.Run, s steps, next mcp.MethodHandler, req mcp.Request) (mcp.Result, error) {
	p, ok := req.GetParams().(*mcp.CallToolParams)
	if !ok || p == nil {
		return nil, fmt.Errorf("%w: tools/call: %w: params of type %T", ErrNotSent, ErrMalformed, req.GetParams())
	}
	name := p.Name
	if err := checkName(name); err != nil {
		return nil, fmt.Errorf("%w: tools/call: %w", ErrNotSent, err)
	}
	// The arguments are encoded here, once, and sent as those bytes: what
	// the step records is what the server receives.
	args, err := encodeJSON(p.Arguments)
	if err == nil {
		err = checkJSON(args)
	} else {
		err = fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: tools/call %s: arguments: %w", ErrNotSent, name, err)
	}
	sent, err := withArguments(req, p, args)
	if err != nil {
		return nil, fmt.Errorf("%w: tools/call %s: %w", ErrNotSent, name, err)
	}
	call, err := s.toolCall(name, args, p.InputResponses)
	if err == nil {
		_, err = run.Step(ctx, call)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: tools/call %s: %w", ErrNotSent, name, err)
	}
	res, callErr := next(ctx, methodCallTool, sent)
	step, derr := s.toolResult(name, res, callErr)
	// The call was made: its result is recorded even if the caller gave up.
	if _, err := run.Step(context.WithoutCancel(ctx), step); err != nil {
		return nil, fmt.Errorf("mcpgov: tools/call %s: result not returned: %w", name, err)
	}
	if derr != nil {
		return nil, fmt.Errorf("mcpgov: tools/call %s: result not returned: %w", name, derr)
	}
	return res, callErr
}

// withArguments is req with a copy of p whose arguments are args, the
// request type unchanged (the SDK's own middleware asserts it).
func withArguments(req mcp.Request, p *mcp.CallToolParams, args []byte) (mcp.Request, error) {
	cp := *p
	cp.Arguments = json.RawMessage(args)
	switch r := req.(type) {
	case *mcp.ClientRequest[mcp.Params]:
		return &mcp.ClientRequest[mcp.Params]{Session: r.Session, Params: &cp}, nil
	case *mcp.ClientRequest[*mcp.CallToolParams]:
		return &mcp.ClientRequest[*mcp.CallToolParams]{Session: r.Session, Params: &cp}, nil
	}
	return nil, fmt.Errorf("%w: a tools/call request of type %T", ErrMalformed, req)
}

// clientRead governs a resources/read or prompts/get: checked as the
// run's next step before it is sent (a Block stops the run there, with
// nothing read), recorded with what it returned before the caller gets it.
func clientRead(ctx context.Context, run *governance.Run, s steps, next mcp.MethodHandler, method string, req mcp.Request) (mcp.Result, error) {
	before, err := s.read(method, req.GetParams())
	if err == nil {
		_, err = run.Withhold(ctx, before, before)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrNotSent, method, err)
	}
	res, callErr := next(ctx, method, req)
	step, derr := s.readResult(before, res, callErr)
	if _, err := run.Step(context.WithoutCancel(ctx), step); err != nil {
		return nil, fmt.Errorf("mcpgov: %s: result not returned: %w", method, err)
	}
	if derr != nil {
		return nil, fmt.Errorf("mcpgov: %s: result not returned: %w", method, derr)
	}
	return res, callErr
}
