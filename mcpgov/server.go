package mcpgov

import (
	"context"
	"errors"
	"fmt"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/stopline/stopline/governance"
)

// A RunResolver returns the run that governs a request a server received
// on session: from what the client said when the session began
// (session.InitializeParams()), from the HTTP request that carried it
// (extra.Header and extra.TokenInfo, with the streamable HTTP transport;
// extra is nil with the others), or from a table the server keeps by
// session.
//
// It is called for each governed request, and may be called concurrently.
// A nil run and a nil error mean the session has no run: the request is
// refused, unless the middleware was made WithUngovernedPassThrough. An
// error refuses the request; its text is not sent to the client (it may
// say more than a client should know), so log it in the resolver if it
// matters.
//
// Key a table by the *mcp.ServerSession, not by its ID: the ID is empty
// on the stdio and in-memory transports.
type RunResolver func(ctx context.Context, session *mcp.ServerSession, extra *mcp.RequestExtra) (*governance.Run, error)

// ServerMiddleware returns receiving middleware for an MCP server that
// governs the requests it receives as steps of the run resolve returns
// for the request's session (see the package documentation): install it
// with mcp.Server.AddReceivingMiddleware, after any other receiving
// middleware, so that it sees each request as it arrived and the result
// as it is sent. The context the tool, resource or prompt handler gets
// carries the run (governance.RunFromContext), so that what the handler
// does — a tool wrapped with governance.WrapTool, a model call through
// llmhttp — is governed as part of it.
//
// A refused request is answered with a JSON-RPC error, CodeRefused (or
// jsonrpc.CodeInvalidParams for an invalid tool name or ambiguous
// arguments), and the handler does not run. Its message names the
// blocking policy, the termination reason and the incident, never the
// policy's own message (which may quote what it matched).
//
// A nil resolve, or WithRun, is refused here. The middleware is safe for
// concurrent use; concurrent requests on one run are recorded one step at
// a time.
func ServerMiddleware(resolve RunResolver, opts ...Option) (mcp.Middleware, error) {
	if resolve == nil {
		return nil, errors.New("mcpgov: ServerMiddleware: nil RunResolver")
	}
	cfg := newConfig(opts)
	if cfg.run != nil {
		return nil, errors.New("mcpgov: ServerMiddleware: WithRun binds a client; a server resolves the run of each session with its RunResolver")
	}
	return func(next mcp.MethodHandler) mcp.MethodHandler {
		return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
			if !governedMethod(method) {
				return next(ctx, method, req)
			}
			ss, _ := req.GetSession().(*mcp.ServerSession)
			run, err := resolve(ctx, ss, req.GetExtra())
			switch {
			case err != nil:
				return nil, refusal(CodeRefused, "no governed run for this session")
			case run == nil && cfg.passThrough:
				return next(ctx, method, req)
			case run == nil:
				return nil, refusal(CodeRefused, "no governed run for this session")
			}
			s := serverSteps(ss, method)
			if method == methodCallTool {
				return serverCallTool(ctx, run, s, next, req)
			}
			return serverRead(ctx, run, s, next, method, req)
		}
	}, nil
}

// serverSteps are the steps of a request received on ss.
func serverSteps(ss *mcp.ServerSession, method string) steps {
	md := map[string]string{MetaSide: "server", MetaMethod: method}
	if ss != nil {
		if id := ss.ID(); id != "" {
			md[MetaSession] = id
		}
		if ip := ss.InitializeParams(); ip != nil && ip.ClientInfo != nil && ip.ClientInfo.Name != "" {
			md[MetaClient] = ip.ClientInfo.Name
		}
	}
	return steps{md: md}
}

// serverCallTool governs a tools/call: its tool_call step, with the
// arguments as received, before the handler runs; its tool_result step
// before the result is sent.
func serverCallTool(ctx context.Context, run *governance.Run, s steps, next mcp.MethodHandler, req mcp.Request) (mcp.Result, error) {
	r, ok := req.(*mcp.CallToolRequest)
	if !ok || r.Params == nil {
		return nil, refusal(jsonrpc.CodeInvalidParams, fmt.Sprintf("a tools/call request of type %T", req))
	}
	name := r.Params.Name
	if err := checkName(name); err != nil {
		return nil, refusal(jsonrpc.CodeInvalidParams, err.Error())
	}
	args := r.Params.Arguments
	if len(args) > 0 {
		if err := checkJSON(args); err != nil {
			return nil, refusal(jsonrpc.CodeInvalidParams, "arguments: "+err.Error())
		}
	}
	call, err := s.toolCall(name, args, r.Params.InputResponses)
	if err != nil {
		return nil, refusal(jsonrpc.CodeInvalidParams, err.Error())
	}
	if _, err := run.Step(ctx, call); err != nil {
		return nil, refused("call", err)
	}
	res, callErr := next(governance.ContextWithRun(ctx, run), methodCallTool, req)
	step, derr := s.toolResult(name, res, callErr)
	// The handler ran: its result is recorded even if the client gave up.
	if _, err := run.Step(context.WithoutCancel(ctx), step); err != nil {
		return nil, refused("result", err)
	}
	if derr != nil {
		return nil, refusal(jsonrpc.CodeInternalError, "the tool's result cannot be described: not sent")
	}
	return res, callErr
}

// serverRead governs a resources/read or prompts/get: checked as the
// run's next step before the handler runs, recorded with what it
// returned before it is sent.
func serverRead(ctx context.Context, run *governance.Run, s steps, next mcp.MethodHandler, method string, req mcp.Request) (mcp.Result, error) {
	before, err := s.read(method, req.GetParams())
	if err != nil {
		return nil, refusal(jsonrpc.CodeInvalidParams, err.Error())
	}
	if _, err := run.Withhold(ctx, before, before); err != nil {
		return nil, refused("request", err)
	}
	res, callErr := next(governance.ContextWithRun(ctx, run), method, req)
	step, derr := s.readResult(before, res, callErr)
	if _, err := run.Step(context.WithoutCancel(ctx), step); err != nil {
		return nil, refused("result", err)
	}
	if derr != nil {
		return nil, refusal(jsonrpc.CodeInternalError, "the result cannot be described: not sent")
	}
	return res, callErr
}

func refusal(code int64, msg string) *jsonrpc.Error {
	return &jsonrpc.Error{Code: code, Message: "mcpgov: refused: " + msg}
}

// refused is the JSON-RPC error for a step of what ("call", "result",
// "request") that the run did not allow.
func refused(what string, err error) *jsonrpc.Error {
	var (
		stopped *governance.StoppedError
		v       *governance.Violation
	)
	switch {
	case errors.As(err, &stopped):
		return refusal(CodeRefused, fmt.Sprintf("the session's run has ended (%s, %s)", stopped.Status, stopped.Reason))
	case errors.As(err, &v):
		return refusal(CodeRefused, fmt.Sprintf("policy %s blocked the %s (%s); incident %s", v.PolicyID(), what, v.Reason(), v.IncidentID))
	case errors.Is(err, governance.ErrRecordFailed):
		return refusal(CodeRefused, "the "+what+" could not be recorded")
	case errors.Is(err, governance.ErrInvalidStep):
		return refusal(jsonrpc.CodeInvalidParams, err.Error())
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return refusal(CodeRefused, "the "+what+" was not governed: "+err.Error())
	}
	return refusal(CodeRefused, "the "+what+" was not governed")
}
