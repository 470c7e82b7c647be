package llmhttp

import (
	"context"
	"net/http"
	"strconv"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

// Metadata keys of the steps a Governor records. Policies see them as
// step.metadata (test for a key with 'KEY' in step.metadata first).
const (
	MetaProvider         = "stopline.provider"           // "openai" or "anthropic"
	MetaAPI              = "stopline.api"                // "chat_completions", "responses" or "messages"
	MetaRequestID        = "stopline.request_id"         // the provider's x-request-id or request-id header
	MetaResponseID       = "stopline.response_id"        // the id in the response body
	MetaHTTPStatus       = "stopline.http_status"        // status of an error response (4xx, 5xx), or of one refused (below 200)
	MetaInputTokens      = "stopline.input_tokens"       // every input token, cached ones included
	MetaCachedTokens     = "stopline.cached_tokens"      // input tokens read from the prompt cache
	MetaCacheWriteTokens = "stopline.cache_write_tokens" // input tokens written to the prompt cache
	MetaOutputTokens     = "stopline.output_tokens"
	MetaUnpriced         = "stopline.unpriced"     // "true": the model has no price, cost recorded as 0
	MetaUsage            = "stopline.usage"        // "missing" or "partial": usage not (fully) reported
	MetaStream           = "stopline.stream"       // streamed: complete, blocked, truncated, malformed, read_error, closed, provider_error
	MetaBody             = "stopline.body"         // oversized, malformed or read_error (not streamed)
	MetaPhase            = "stopline.phase"        // "before_request": the check before the request is sent
	MetaStop             = "stopline.stop_reason"  // finish_reason, stop_reason or response status
	MetaToolCallID       = "stopline.tool_call_id" // on tool_call steps
	MetaError            = "stopline.error"        // what went wrong, for truncated, malformed and failed streams
	MetaWithheld         = governance.MetadataWithheld
)

// recorder turns what a call said into steps of the run.
type recorder struct {
	g *Governor
	c *call
	// base is the metadata every step of the call carries.
	base map[string]string
	// hold is the call's reservation, settled by its llm_response step.
	hold *hold
}

func newRecorder(g *Governor, c *call, res *http.Response) *recorder {
	base := map[string]string{MetaProvider: c.api.provider(), MetaAPI: c.api.String()}
	if res != nil {
		id := res.Header.Get("X-Request-Id")
		if id == "" {
			id = res.Header.Get("Request-Id")
		}
		if id != "" {
			base[MetaRequestID] = id
		}
	}
	return &recorder{g: g, c: c, base: base}
}

func (r *recorder) meta(kv ...string) map[string]string {
	md := make(map[string]string, len(r.base)+len(kv)/2+6)
	for k, v := range r.base {
		md[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			md[kv[i]] = kv[i+1]
		}
	}
	return md
}

// response is the llm_response step of a result. extra is metadata.
func (r *recorder) response(res *result, extra ...string) governance.StepInput {
	model := res.model
	if model == "" {
		model = r.c.model
	}
	md := r.meta(append([]string{MetaResponseID, res.id, MetaStop, res.stop}, extra...)...)
	in := governance.StepInput{Type: prevention.StepLLMResponse, Model: model, Input: r.c.input, Output: res.text, Metadata: md}
	if !res.hasUsage {
		if _, ok := md[MetaUsage]; !ok {
			md[MetaUsage] = "missing"
		}
	}
	u := res.usage
	in.Tokens = u.tokens()
	md[MetaInputTokens] = strconv.FormatInt(u.input, 10)
	md[MetaOutputTokens] = strconv.FormatInt(u.output, 10)
	if u.cached > 0 {
		md[MetaCachedTokens] = strconv.FormatInt(u.cached, 10)
	}
	if u.cacheWrite > 0 {
		md[MetaCacheWriteTokens] = strconv.FormatInt(u.cacheWrite, 10)
	}
	if price, ok := r.g.cfg.prices.price(res.model, r.c.model); ok {
		in.CostCents = price.costCents(u)
	} else {
		md[MetaUnpriced] = "true"
	}
	return in
}

func (r *recorder) tool(model string, tc toolCall) governance.StepInput {
	if model == "" {
		model = r.c.model
	}
	return governance.StepInput{
		Type: prevention.StepToolCall, Model: model, Tool: tc.name, Input: tc.args,
		Metadata: r.meta(append([]string{MetaToolCallID, tc.id}, tc.meta...)...),
	}
}

// record reports the response and then each tool call it requests, in
// order, stopping at the first error (a *governance.Violation when a
// policy blocked).
func (r *recorder) record(ctx context.Context, res *result, extra ...string) error {
	if _, err := r.settle(ctx, r.response(res, extra...)); err != nil {
		return err
	}
	for _, tc := range res.tools {
		if _, err := r.g.run.Step(ctx, r.tool(res.model, tc)); err != nil {
			return err
		}
	}
	return nil
}

// failure records a response the agent will not get in full (an error
// status, a body that could not be read or understood): a message step
// for an error status, an llm_response step otherwise.
func (r *recorder) failure(ctx context.Context, typ prevention.StepType, output string, extra ...string) error {
	in := governance.StepInput{Type: typ, Model: r.c.model, Input: r.c.input, Output: output, Metadata: r.meta(extra...)}
	if typ != prevention.StepLLMResponse {
		_, err := r.g.run.Step(ctx, in)
		return err
	}
	in.Metadata[MetaUsage] = "missing"
	if _, ok := r.g.cfg.prices.price(r.c.model); !ok {
		in.Metadata[MetaUnpriced] = "true"
	}
	_, err := r.settle(ctx, in)
	return err
}

// settle records the call's llm_response step, which settles its
// reservation (a plain Step if it has none left).
func (r *recorder) settle(ctx context.Context, in governance.StepInput) (governance.StepResult, error) {
	return r.hold.step(ctx, r.g.run, in)
}
