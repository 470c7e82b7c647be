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
// "stopline.withheld": "true").
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
// text delivered so far plus the next events is checked (Run.Check)
// before those events are delivered: events the provider has already sent
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
// order they take the run's lock. Steps are recorded even when the
// caller's context is cancelled after the response arrived: the spend
// happened.
package llmhttp
