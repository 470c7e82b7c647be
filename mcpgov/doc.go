// Package mcpgov governs the Model Context Protocol requests an agent
// makes or a server serves, with the official Go SDK
// (github.com/modelcontextprotocol/go-sdk/mcp): every tool call is a
// governed tool_call step of a run before it is sent (on a client) or
// before its handler runs (on a server), and its result a tool_result
// step before the caller sees it or the server sends it.
//
// On a client:
//
//	client := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "1"}, nil)
//	client.AddSendingMiddleware(mcpgov.ClientMiddleware())
//	session, err := client.Connect(ctx, transport, nil)
//	...
//	res, err := session.CallTool(governance.ContextWithRun(ctx, run), &mcp.CallToolParams{Name: "search", Arguments: args})
//
// On a server, with a function that says which run governs a session:
//
//	mw, err := mcpgov.ServerMiddleware(func(ctx context.Context, ss *mcp.ServerSession, extra *mcp.RequestExtra) (*governance.Run, error) {
//		return runs.For(ss), nil
//	})
//	server.AddReceivingMiddleware(mw)
//
// Add either after any other middleware of the same direction, so that it
// is the outermost: it then governs a request as the caller made it (or as
// it arrived) and a result as the caller gets it (or as it is sent).
// Middleware added before it runs between it and the wire: it must not
// change a request's tool name or arguments, nor a result. (The SDK's own
// multi round-trip middleware is always beneath it: see Runs.)
//
// # What is governed
//
// tools/call. The tool_call step's tool is the tool's name, its input the
// arguments as JSON. A client encodes the arguments once, as the SDK
// does (encoding/json, no HTML escaping, compact), records those bytes
// and sends exactly them; a server records the arguments exactly as it
// received them. Only when that step is allowed is the request sent (or
// the handler run). The result is then recorded as a tool_result step —
// the same tool, its content as the output (see below), metadata
// MetaIsError "true" for a result with isError, and
// governance.MetadataToolError for a protocol error, a handler's error
// (server side: the error a typed handler returned), or a call the caller
// gave up on — and only if that step is allowed does the caller get the
// result (or is it sent). A result with isError, or a protocol error, does
// not stop the run unless a policy blocks its step; either is returned as
// the SDK returned it.
//
// resources/read and prompts/get return what an agent acts on as much as
// a tool does (a document it reads, the messages it is prompted with):
// each is one message step. Its input is what is asked for — the
// resource's URI, or {"name":…,"arguments":{…}} for a prompt — and it is
// checked as the run's next step before the request is sent (or its
// handler runs), with governance.Run.Withhold: a Block stops the run
// there, recorded as a withheld step, and nothing is read. Once the
// request has returned, the step is recorded with the content as its
// output (or, if it failed, the error in MetaError) before the caller
// gets it (or it is sent).
//
// Every other method — tools/list, resources/list, prompts/list,
// completion/complete, ping, subscriptions, notifications — passes
// through ungoverned, needing no run; note that the tool descriptions
// tools/list returns, which a model reads, are not recorded. So do the
// requests a server sends a client (sampling, elicitation, roots): a
// client's sampling handler calls a model, which llmhttp governs.
//
// Each step carries metadata: MetaSide ("client" or "server"),
// MetaMethod, MetaSession when the transport has a session id, and the
// peer's name as it gave it (MetaToolServer on a client, MetaClient on a
// server).
//
// # Content, as a step records it
//
// The text of each text block as it is; every other block described on a
// line of its own; blocks separated by a newline:
//
//	text                 its text
//	image, audio         [image image/png, 5120 bytes] — the data is not recorded
//	resource_link        [resource_link file:///r.txt text/plain] name: r; title: R; description: …
//	resource (embedded)  [resource file:///r.txt text/plain], then its text on the next line;
//	                     a blob: [resource file:///r.bin application/octet-stream, 4 bytes]
//
// A tool result's structured content follows its content as JSON, unless
// a text block already holds the same JSON value (as the SDK's typed tool
// handlers write it). A read's resources are described as embedded ones;
// a prompt is its description, then each message as "role: content". A
// result that asks for more input (a multi round-trip request) records
// its input requests as JSON, with MetaInputRequired "true". Content
// policies see exactly this text. A client reads the result the SDK has
// already decoded, the value its caller gets.
//
// # Runs
//
// A client request's run is the one WithRun binds, else the one its
// context carries (governance.ContextWithRun); one whose context carries
// a run other than the bound one is refused, as ambiguous. A server
// request's run is the one its RunResolver returns for the session; the
// handler's context carries it (governance.RunFromContext), so that a tool
// wrapped with governance.WrapTool, or a model call through llmhttp, is
// governed as part of the same run. A governed request with no run is
// refused — on a client with an error matching governance.ErrNoRun and
// ErrNotSent, on a server with a JSON-RPC error CodeRefused — unless the
// middleware was made WithUngovernedPassThrough, which lets it through
// ungoverned and records nothing. Ending the run (Finish, Abort) is the
// caller's: the middleware never ends one, except as a Block stops it.
//
// A tool that asks for more input mid-call (the protocol's multi
// round-trip requests) is asked and answered beneath the middleware in
// some cases. On the 2026-07-28 protocol the client's SDK fulfils the
// input requests with the client's own handlers (elicitation, sampling,
// roots) and retries: the caller's call is one tool_call and one
// tool_result step, the final result; the server sees each round as a
// request of its own, each governed: a round's result that asks for input
// is recorded with MetaInputRequired, and the retry's tool_call (or read)
// step carries the input responses it brings — a user's answer, a
// model's sample — as JSON in MetaInputResponse. On earlier protocol
// versions the server's SDK asks the client itself and runs the handler
// again beneath the server middleware: one governed call on each side,
// and the answer the handler acts on is not recorded.
//
// # What is refused
//
// On a client, a refused request is not sent, and its error matches
// ErrNotSent, wrapping why: no run (governance.ErrNoRun); the run has
// ended (*governance.StoppedError, governance.ErrRunStopped); a policy
// blocked the tool_call step or the read's check (the
// *governance.Violation: errors.As); the step could not be recorded
// (governance.ErrRecordFailed); a tool name that is empty, longer than
// governance.MaxNameBytes, or that prevention.CheckName refuses — a
// control, format or invisible character, not UTF-8 — (governance.ErrInvalidStep,
// wrapping prevention.ErrInvalidName); arguments that cannot be encoded,
// or that two JSON readers could read differently — invalid UTF-8, an
// unpaired surrogate escape, a key written twice in one object — (ErrMalformed).
// A result whose step a policy blocks, or that cannot be recorded, is not
// returned: the call returns nil and that error (the
// *governance.Violation; the run has stopped). A result with a content
// block of a type this package does not describe — tool_use and
// tool_result, which belong in sampling messages only, or a type a later
// SDK adds — is recorded (MetaError) and not returned (ErrMalformed); the
// run goes on.
//
// On a server the same refusals are JSON-RPC errors, the handler not run
// or its result not sent: jsonrpc.CodeInvalidParams for an invalid tool
// name or ambiguous arguments, CodeRefused for the rest. The message
// names the blocking policy, the reason and the incident, never the
// policy's own message, which may quote what it matched; a resolver's
// error is not sent either.
//
// Tool names are recorded as sent (or received). A name with a character
// no one sees is refused (above), so that a name shown as one tool cannot
// be another to the server. A tool_denylist compares names after
// prevention.NormalizeName (NFKC, case folding, spaces trimmed): a deny
// of "delete_repo" also blocks "Delete_Repo", " delete_repo" and the
// full-width "ｄｅｌｅｔｅ_ｒｅｐｏ", whatever the server makes of them
// (the Go SDK's server looks a tool up by its exact name; others may
// not). A tool_allowlist compares exact names: a look-alike of an allowed
// tool is refused.
//
// # Module
//
// This package is a module of its own, github.com/stopline/stopline/mcpgov,
// as kinds/rego and kinds/cedar are. In the library's module the MCP SDK
// would add eight requirements to its go.mod (the SDK, jsonschema-go,
// segmentio/encoding and segmentio/asm, uritemplate, x/oauth2, x/time,
// x/sys), which every program that requires the library reads, and by
// minimal version selection they would raise the versions such a program
// builds with — the SDK's own, for a program that uses another version of
// it — whether it uses MCP or not. Here they reach only the programs that
// import this package. Its version moves with the library's: it reads
// JSON with the library's internal/strictjson.
//
// # Concurrency
//
// The middleware is safe for concurrent use. Concurrent requests on one
// run are recorded one step at a time, in the order they take the run's
// lock; each call's tool_result step follows its tool_call step. A result
// is recorded even when the caller's context is cancelled after the
// request was sent: the tool may have run.
package mcpgov
