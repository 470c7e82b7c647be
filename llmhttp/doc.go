// Package llmhttp governs the model calls an agent makes over HTTP: bound
// to a governance.Run, it makes every call to a model a governed step of
// that run, without touching the agent's code.
//
// With the official SDKs it takes one line, the same for both:
//
//	// github.com/openai/openai-go/v3
//	client := openai.NewClient(option.WithMiddleware(llmhttp.Middleware(run)))
//
//	// github.com/anthropics/anthropic-sdk-go/v2
//	client := anthropic.NewClient(option.WithMiddleware(llmhttp.Middleware(run)))
//
// One client, created once, can govern every run instead: each call is a
// step of the run its context carries (governance.ContextWithRun), and a
// model call whose context carries none is refused unsent (ErrNotSent,
// governance.ErrNoRun) unless WithPassThroughWithoutRun:
//
//	client := openai.NewClient(option.WithMiddleware(llmhttp.ContextMiddleware()))
//	resp, err := client.Chat.Completions.New(governance.ContextWithRun(ctx, run), params)
//
// Any other client takes an *http.Client (Client) or wraps its transport
// (Transport). With an SDK prefer Middleware: the SDKs retry errors of an
// *http.Client as dropped connections, but not the Middleware's refusals.
//
// It understands OpenAI Chat Completions (POST …/chat/completions), OpenAI
// Responses (POST …/responses) and Anthropic Messages (POST …/messages,
// with a "model" in the body), whole (JSON) or streamed (server-sent
// events). Other requests go through untouched, unless the run has ended.
//
// # What happens to a call
//
// Before the request is sent: if the run has ended, or if its policies
// block the least the call can add to it — one input token of the
// requested model, and the newest message as the step's input — the call
// returns an error matching ErrNotSent and wrapping the run's
// *governance.StoppedError or the *governance.Violation, and nothing is
// sent. A budget already spent, a step limit reached, a prompt a content
// policy forbids: all are refused without spend. A refusal by a policy
// stops the run there, recorded as a withheld llm_response step with no
// tokens (metadata "stopline.phase": "before_request",
// "stopline.withheld": "true"). When the run's policies budget the
// tenant's tokens or cost across runs, the step checked is the call's
// worst case instead, and it is reserved: see Limits across runs.
//
// After a whole response: one llm_response step (model, tokens, cost,
// output text, the newest message as input, provider, API and request id
// as metadata), then one tool_call step per tool call the response holds
// (tool name, arguments as input; see What is governed), before the
// response reaches the agent. If any is blocked, the agent does not get
// the response: the SDK call returns an error that errors.As turns into
// the *governance.Violation, so a blocked tool never executes. An error
// status (400 and above) is recorded as a message step with
// "stopline.http_status" and passed on; it stops the run only if a
// policy blocks that step.
//
// A streamed response passes its text through event by event as it
// arrives. The text delivered so far plus the next events is checked
// (Run.Check, or while the call holds a reservation its
// Reservation.Check: see Limits across runs) before those events are
// delivered: events the provider has already sent are checked together,
// up to 64 KiB, and one by one when that batch is blocked, so a check
// runs at most once per event and the stream always ends just before the
// event that broke the policy. The checks of one stream go through a
// governance.Stream (the reservation's, see Limits across runs): content
// policies and the check of the text's UTF-8 go on from where the
// previous check left off, so a check costs time proportional to the
// text it adds, not to the text so far, and checking every event of a
// long answer costs time linear in its length. The text of a chat
// completion with several choices (n > 1) is their texts joined, which
// does not grow by appends: its content policies scan all of it at each
// check. WithStreamCheckBytes bounds the number of checks, at the price
// of delivering text in pieces. On a Block the run
// stops with a withheld llm_response step holding exactly the text
// delivered ("stopline.stream": "blocked"), and the body's next Read
// returns the *governance.Violation, which the SDK reports as the
// stream's error.
//
// From the first event that is part of a tool call (its first fragment,
// not its completion) or of any other item that is not plain text, every
// event is held back: text that follows too. At the response's final
// event the stream is read to its end, the response (with the usage of
// its final event) and its tool calls are recorded, and only then, if
// they pass, is what was held delivered: an agent never sees any part of
// a tool call no policy has checked, whatever it reads (raw events, the
// SDK's accumulator, the final response).
//
// A stream that ends before its final event, fails, carries an event that
// cannot be read as the SDK reads it (see What is refused) or is closed
// early by the agent is recorded with the text delivered and the usage
// known ("stopline.stream": "truncated", "read_error", "malformed" or
// "closed"), and the read returns an error matching ErrTruncated or
// ErrMalformed; what was held back is never delivered. A provider's error
// event is recorded ("provider_error") and passed on, once the stream
// has ended; what was held back is dropped. OpenAI sends usage in a chat
// completion stream only if the request asks for it
// (stream_options.include_usage, which this package does not add);
// without it the step records no tokens and "stopline.usage": "missing",
// which a policy can refuse.
//
// # What is governed
//
// Whatever the official SDK would hand the agent has been evaluated
// first, read exactly as that SDK reads it. Every shape in which a
// provider asks for a tool, or reports one it ran, is a tool_call step,
// whose metadata "stopline.tool_type" is the shape's type (and
// "stopline.tool_namespace", "stopline.tool_server" the namespace or
// toolset and the MCP server, when the call names them):
//
//   - Chat Completions: every entry of tool_calls, of type "function"
//     (its function's name and arguments) or "custom" (its name and
//     input); the legacy function_call (type "function_call"), whole and
//     streamed ("delta.function_call", whose name and arguments are
//     concatenated across chunks like a tool call's);
//   - Responses: the output items function_call and custom_tool_call (by
//     their name), mcp_call and mcp_approval_request (by the MCP tool's
//     name), and the built-in tools by a name of their own: computer_call
//     "computer", local_shell_call "local_shell", shell_call "shell",
//     apply_patch_call "apply_patch", mcp_list_tools "mcp_list_tools",
//     web_search_call "web_search", file_search_call "file_search",
//     code_interpreter_call "code_interpreter", image_generation_call
//     "image_generation", tool_search_call "tool_search", program
//     "program"; their arguments are the call's arguments, input, code,
//     action, operation or queries;
//   - Messages: the content blocks tool_use, server_tool_use and
//     mcp_tool_use, by name, with their input.
//
// Besides tool calls a response may hold only what is known to be
// harmless: text (Chat Completions' content and refusal; a Responses
// message's output_text and refusal parts; an Anthropic text block),
// reasoning (Responses reasoning and compaction items; Anthropic
// thinking, redacted_thinking and compaction blocks), and what the tools
// the provider runs return (Responses tool_search_output, program_output
// and shell_call_output items; Anthropic web_search_tool_result,
// web_fetch_tool_result, code_execution_tool_result,
// bash_code_execution_tool_result,
// text_editor_code_execution_tool_result, tool_search_tool_result,
// advisor_tool_result, mcp_tool_result and container_upload blocks).
//
// Statuses: both SDKs take every status below 400 as a result (a 3xx
// the HTTP client did not follow, a 2xx other than 200, even a 204 with
// a body): all are governed as results. Statuses of 400 and above are
// errors, recorded and passed on as above.
//
// # What is refused
//
// A response, or a streamed event, that cannot be read the way the SDK
// reads it is refused: the call returns an error matching ErrMalformed,
// the response is recorded as an llm_response step ("stopline.body" or
// "stopline.stream": "malformed", the reason in "stopline.error") and its
// tool calls are not. The run goes on. Refused are:
//
//   - JSON that two parsers can read differently: the SDKs decode with
//     gjson, which takes the first of a duplicated key and matches keys in
//     their exact case, where encoding/json takes the last and ignores
//     case. Every JSON document a provider sends (the whole body, each
//     event's data, a tool call's arguments when they are JSON) is read
//     with internal/strictjson: invalid UTF-8, an object with two keys
//     equal ignoring case, a key that differs from a field this package
//     reads only in case, anything but one JSON value, and an unpaired
//     surrogate escape (which gjson decodes together with the escape
//     after it) are refused;
//   - an output item, content block, content part, delta or event type not
//     listed above (it may be a new way of asking for a tool), and an
//     item that is not a model's answer (an agent's own
//     function_call_output and other tool outputs, mcp_approval_response,
//     additional_tools);
//   - a chat completion tool call with both a function and a custom tool,
//     or with neither; a streamed custom tool call (the SDK's chunk type
//     cannot carry it: its accumulator would hand the agent a nameless
//     tool call);
//   - a tool or model name that prevention.CheckName refuses (a control,
//     format or invisible character, U+FFFD), one longer than
//     governance.MaxNameBytes, or a tool call without a name: the runner
//     refuses such a step, and an agent could be shown one tool while
//     running another. A request for such a model is refused unsent
//     (ErrNotSent and ErrMalformed);
//   - a status below 200 (informational, or none), which the SDKs would
//     take as a result;
//   - in a stream, anything the SDK's accumulator would apply otherwise
//     than the governed view, which follows it event for event: a chunk
//     of another id than the stream's (the SDK's accumulator drops it, an
//     agent reading chunks does not); a choice index over 127; a tool
//     call index that is neither one already started nor the next; an
//     Anthropic event whose name and data type differ, or with data and
//     no name; a message_start that is not first, comes twice or has
//     content; a content block started at an index other than the next;
//     a delta or stop for a block not started or already stopped; a delta
//     of a type the block does not take; text for a text block other
//     than the last one started; tool input that is not JSON at the end;
//     a Responses item added at an output index other than the next, or
//     named by an id other than its own; an item's name, arguments or
//     text that differ between its deltas, its done events, the item done
//     and the final response (or a final response whose output is not the
//     items streamed); text for a message part other than the last; an
//     event name that starts with "thread." (the OpenAI SDK rewrites it);
//   - any event after the final one ("[DONE]" or an error for Chat
//     Completions, response.completed, response.incomplete,
//     response.failed or error for Responses, message_stop or error for
//     Messages): the SDKs read a body to its end and apply what follows;
//   - an SSE field other than event, data, id and retry (the SDKs ignore
//     it, other readers may not: a leading byte-order mark, for one).
//     Events are framed exactly as the SDKs frame them: lines end at "\n",
//     less one "\r"; an event still open at the end of the body is not
//     one.
//
// # Limits across runs
//
// Limits that span a tenant's runs (the tenant_budget and
// tenant_rate_limit policy kinds) are shared by every run of the tenant,
// on any number of replicas. Checking them before a call and counting the
// call after its response would let concurrent calls each pass the check
// and together overshoot. So a call is governed by reserve-then-settle
// (governance.Run.Reserve): the check made before the request is sent
// also holds the call's amounts on the tenant's counters, atomically in
// the store, so that no other run can spend them until the call settles.
//
// What is reserved. When the run's snapshot has a tenant_budget over
// cost_cents or tokens, the call's worst case:
//
//   - input tokens estimated from the request: its body's size in bytes,
//     divided by 2 and rounded up. Tokenizers take about 4 bytes of
//     English or code per token and 2 to 3 of CJK text, and the JSON
//     around the text (keys, quotes, roles, escapes) adds bytes but few
//     tokens, so for ordinary prompts the estimate exceeds the real count,
//     often twice over. It is an estimate, not a bound: text that
//     tokenizes byte by byte (emoji, rare scripts, random strings) can
//     exceed it, and so can content the provider prices by something
//     other than its bytes — an image or file given by URL or id (base64
//     data, on the contrary, is overestimated). A call that spends more
//     than its worst case is settled to what it spent, if the limits
//     still allow it. A body over WithMaxBodyBytes counts by its
//     Content-Length, or the cap if it states none;
//   - plus the request's output cap — max_completion_tokens or
//     max_tokens, the larger if both, times n (Chat Completions);
//     max_output_tokens (Responses); max_tokens (Messages) — or, if it
//     sets none, WithDefaultMaxOutputTokens (DefaultMaxOutputTokens, 4096);
//   - priced with the requested model's Price: input tokens at the
//     highest of its input prices (Input, CachedInput, CacheWrite),
//     output tokens at Output. An unpriced model reserves tokens only, at
//     cost 0.
//
// Its tokens and cost are the step's tokens and cost in that check, which
// every policy evaluates (a run budget too); a call refused there is
// recorded as above, with metadata "stopline.estimated_input_tokens" and
// "stopline.max_output_tokens". Without such a budget (a
// tenant_rate_limit, or a tenant_budget over runs, only) the step
// checked and reserved is the least the call can add, as described above:
// its step, and its run if it is the run's first, are what those limits
// count. Without any limit across runs nothing is held, and the check is
// exactly Run.Check followed, on a Block, by that stop. The choice is made
// from the snapshot's policies: a Go hook given to the runner that limits
// the tenant (a prevention.ChargedHook) is not seen there, and is
// reserved the least step.
//
// How it is settled. The call's llm_response step, recorded as described
// above (whole or streamed, complete or not), settles the reservation
// (governance.Reservation.Step): its actual amounts replace the reserved
// ones, lower or, if the limits still allow it, higher; a step that went
// over its worst case and over a limit is blocked. A call that records
// no llm_response step gives the reservation back
// (governance.Reservation.Release): a transport error, a status other
// than 2xx (before an error status is recorded as a message step), a
// stream stopped by a policy. Each call settles or releases once. A
// reservation that cannot be given back stays counted until its window
// has passed: it can refuse later calls, never let one overshoot.
//
// Streams. A streamed call holds its reservation until its step is
// recorded: at its final event, when it fails or is dropped, or when the
// agent closes it. The tenant's counters already count the reservation,
// so the checks made as it streams go through it
// (governance.Reservation.Check and Reservation.Withhold): they read the
// counters with the reservation left out and the stream's step, as it
// stands, in its place — its tokens and cost so far, and its step and
// run — so that the stream is counted once, whatever the limit (cost,
// tokens, runs, step rate), and a stream whose worst case took a limit
// exactly to its edge streams to the end, still reserved. Every policy,
// the run's own budgets included, sees the stream's actual tokens and
// cost so far. A check that blocks stops the run and the stream as
// described above, and gives the reservation back, once. A streamed body
// must be closed, as net/http requires: until then its reservation is
// held. A stream blocked mid-way records what it delivered, tokens and
// cost included, in its step; as with every blocked step, that cost is in
// the record, not in the tenant's budget.
//
// # Bodies
//
// Requests and responses reach their destination unchanged; a body read
// for inspection is restored. A whole response is buffered, up to
// WithMaxBodyBytes (8 MiB by default), before the agent gets it: a bigger
// one fails closed with ErrTooLarge unless WithOversizedPassThrough lets it
// through uninspected; either way it is recorded ("stopline.body":
// "oversized"). A response that cannot be parsed, or is refused (see
// What is refused), is recorded ("stopline.body": "malformed") and
// returned as an error matching ErrMalformed. Streamed bodies are never
// buffered whole: one event at a time, capped the same way, and what is
// held back (see above).
//
// # Cost
//
// Cost in cents comes from the price table given WithPrices; see Prices for
// how model names match and why an unpriced model is recorded with cost 0
// and "stopline.unpriced": "true" rather than refused.
//
// # Testing
//
// Package llmhttptest is a fake provider speaking these wire formats, for
// testing agents without network or API key.
//
// # Concurrency
//
// A Governor, its Middleware and its Transport are safe for concurrent
// use; concurrent calls on one run are recorded one step at a time, in the
// order they take the run's lock, each with its own reservation. Steps are recorded even when the
// caller's context is cancelled after the response arrived: the spend
// happened.
package llmhttp
