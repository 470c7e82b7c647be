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
// as metadata), then one tool_call step per tool call the model requests
// (tool name, arguments as input), before the response reaches the agent.
// If any is blocked, the agent does not get the response: the SDK call
// returns an error that errors.As turns into the *governance.Violation,
// so a blocked tool never executes. An error status (4xx, 5xx) is recorded
// as a message step with "stopline.http_status" and passed on; it stops
// the run only if a policy blocks that step.
//
// A streamed response passes through event by event as it arrives. The
// text delivered so far plus the next events is checked (Run.Check, or
// while the call holds a reservation its Reservation.Check: see Limits
// across runs) before those events are delivered: events the provider has already sent
// are checked together, up to 64 KiB, and one by one when that batch is
// blocked, so a check runs at most once per event and the stream always
// ends just before the event that broke the policy. A check costs time
// proportional to the text so far (content policies scan it all), so a
// long answer streamed token by token costs checks quadratic in its
// length; WithStreamCheckBytes trades latency for that cost. On a Block the run
// stops with a withheld llm_response step holding exactly the text
// delivered ("stopline.stream": "blocked"), and the body's next Read
// returns the *governance.Violation, which the SDK reports as the stream's
// error. Once a tool call in the stream is complete, the events that
// follow are held back until the response (with the usage of its final
// event) and its tool calls are recorded, and released only if they pass:
// an agent never sees a complete tool call no policy has checked. Text a
// model streams after a tool call is held with it.
//
// A stream that ends before its final event, fails, carries an event that
// cannot be parsed or is closed early by the agent is recorded with the
// text delivered and the usage known ("stopline.stream": "truncated",
// "read_error", "malformed" or "closed"), and the read returns an error
// matching ErrTruncated or ErrMalformed. A provider's error event is
// recorded ("provider_error") and passed on. OpenAI sends usage in a chat
// completion stream only if the request asks for it
// (stream_options.include_usage, which this package does not add);
// without it the step records no tokens and "stopline.usage": "missing",
// which a policy can refuse.
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
// "oversized"). A response that cannot be parsed is recorded
// ("stopline.body": "malformed") and returned as an error matching
// ErrMalformed. Streamed bodies are never buffered whole: one event at a
// time, capped the same way.
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
