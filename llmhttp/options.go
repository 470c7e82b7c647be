package llmhttp

import (
	"fmt"
	"math"
)

// DefaultMaxBodyBytes is the default cap on a response body buffered for
// inspection, and on one streamed event.
const DefaultMaxBodyBytes = 8 << 20

// DefaultMaxOutputTokens is the output cap a call's worst case assumes
// when its request sets none (see WithDefaultMaxOutputTokens).
const DefaultMaxOutputTokens = 4096

// Option configures a Governor.
type Option func(*config) error

type config struct {
	prices       Prices
	maxBody      int64
	passOversize bool
	checkBytes   int
	maxOutput    int64 // output cap of a request that sets none
	// passWithoutRun: a context Governor passes a model call whose
	// context carries no run through, ungoverned.
	passWithoutRun bool
}

// WithPrices sets the price table that turns token usage into cost. See
// Prices for how model names are matched. Without it every call is
// unpriced: cost 0, metadata "stopline.unpriced": "true".
func WithPrices(p Prices) Option {
	return func(c *config) error {
		for model, price := range p {
			if model == "" || model == "*" {
				return fmt.Errorf("WithPrices: %q is not a model name or prefix", model)
			}
			for name, v := range map[string]float64{"Input": price.Input, "CachedInput": price.CachedInput, "CacheWrite": price.CacheWrite, "Output": price.Output} {
				if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
					return fmt.Errorf("WithPrices: %s: %s is %v, want a finite, non-negative number", model, name, v)
				}
			}
		}
		c.prices = p.clone()
		return nil
	}
}

// WithMaxBodyBytes caps how much of a non-streamed response body is
// buffered for inspection, and how large one streamed event may be
// (default DefaultMaxBodyBytes, 8 MiB). A bigger body is refused (see
// WithOversizedPassThrough); a bigger event ends its stream as malformed.
func WithMaxBodyBytes(n int64) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("WithMaxBodyBytes: %d is not positive", n)
		}
		c.maxBody = n
		return nil
	}
}

// WithOversizedPassThrough lets a response body bigger than the cap reach
// the agent uninspected. By default such a response fails closed: the call
// returns an error matching ErrTooLarge, because a response nobody
// inspected may hold a tool call no policy has seen and a spend no budget
// has counted. Either way the response is recorded as an llm_response
// step with no usage and metadata "stopline.body": "oversized".
func WithOversizedPassThrough() Option {
	return func(c *config) error { c.passOversize = true; return nil }
}

// WithPassThroughWithoutRun lets a Governor made with NewContext send a
// model call whose context carries no run as it is: ungoverned, and
// recorded nowhere. By default such a call is refused (ErrNotSent,
// governance.ErrNoRun), so that no model call of a governed program
// escapes governance because its context lost the run. For a client
// shared with code that is not governed on purpose.
func WithPassThroughWithoutRun() Option {
	return func(c *config) error { c.passWithoutRun = true; return nil }
}

// WithStreamCheckBytes sets the least new text, in bytes, a streamed
// response's check covers (default 0: every event that adds text is
// checked before it is delivered). A check costs the text it adds plus a
// fixed part (evaluating every policy; a few microseconds) — except for a
// chat completion with several choices, whose content policies scan the
// whole text at each check; with n > 0, events are held back until they
// add at least n bytes of text (or the stream ends or completes a tool
// call) and checked together, which bounds the checks of an answer to
// about its length divided by n, at the price of delivering its text in
// pieces of about n bytes.
func WithStreamCheckBytes(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("WithStreamCheckBytes: %d is negative", n)
		}
		c.checkBytes = n
		return nil
	}
}

// WithDefaultMaxOutputTokens sets the output cap a call's worst case
// assumes when its request sets none (no max_tokens,
// max_completion_tokens or max_output_tokens): default
// DefaultMaxOutputTokens, 4096. The worst case is reserved on the
// tenant's budgets before the request is sent (see the package
// documentation); it only matters when the run's policies budget the
// tenant's tokens or cost across runs. Set it to the largest answer the
// models you call give when not capped, or cap the requests: an answer
// longer than the cap is still recorded as it was, but it was not held
// against the other runs of the tenant while it streamed.
func WithDefaultMaxOutputTokens(n int64) Option {
	return func(c *config) error {
		if n <= 0 {
			return fmt.Errorf("WithDefaultMaxOutputTokens: %d is not positive", n)
		}
		c.maxOutput = n
		return nil
	}
}
