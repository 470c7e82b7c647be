package llmhttp

import (
	"math"
	"sort"
	"strings"
)

// Price is what a model costs, in dollars per million tokens, as providers
// publish it. Costs are recorded in cents (the unit of the cost_cents
// budget): a call's cost is the sum of its token counts times these
// prices, divided by a million, times 100.
type Price struct {
	// Input is the price of input tokens not read from or written to the
	// prompt cache.
	Input float64
	// CachedInput is the price of input tokens read from the prompt cache.
	// Zero means Input: a missing price is never counted as free.
	CachedInput float64
	// CacheWrite is the price of input tokens written to the prompt cache
	// (Anthropic's cache_creation_input_tokens, OpenAI's
	// cache_write_tokens). Zero means Input.
	CacheWrite float64
	// Output is the price of output tokens, reasoning tokens included.
	Output float64
}

// Prices maps model names to prices. A model is looked up by the name the
// provider's response gives (which may be a dated snapshot), then by the
// name the request asked for; for each name, in this order:
//
//  1. the key equal to the name: "gpt-4o";
//  2. the key the name extends with a snapshot suffix: "-YYYY-MM-DD",
//     "-YYYYMMDD", "-MMDD" or "-latest". "gpt-4o" prices
//     "gpt-4o-2024-08-06" and "claude-sonnet-4-5" prices
//     "claude-sonnet-4-5-20250929", but "gpt-4o" does not price
//     "gpt-4o-mini", nor "claude-sonnet-4" "claude-sonnet-4-5";
//  3. the longest key ending in "*" that the name begins with, as an
//     explicit prefix: "gpt-4o*" prices "gpt-4o-mini" too.
//
// A model that matches no key is unpriced: its calls are recorded with
// cost 0 and metadata "stopline.unpriced": "true". The metadata is also on
// the check made before the request is sent, so a policy can refuse
// unpriced models before any spend:
//
//	{"id": "priced-only", "kind": "expression",
//	 "params": {"expr": "'stopline.unpriced' in step.metadata"}}
//
// That default is deliberate: llmhttp reports what it sees and policies
// decide, so the choice to fail closed on unpriced models lives in the
// snapshot, versioned and hashed with the other policies, and token
// budgets apply to unpriced models all the same.
type Prices map[string]Price

func (p Prices) clone() Prices {
	if p == nil {
		return nil
	}
	c := make(Prices, len(p))
	for k, v := range p {
		c[k] = v
	}
	return c
}

// Lookup returns the price of model by the rules above, and whether there
// is one.
func (p Prices) Lookup(model string) (Price, bool) {
	if model == "" || len(p) == 0 {
		return Price{}, false
	}
	if pr, ok := p[model]; ok {
		return pr, true
	}
	if base, ok := stripSnapshot(model); ok {
		if pr, ok := p[base]; ok {
			return pr, true
		}
	}
	var prefixes []string
	for k := range p {
		if strings.HasSuffix(k, "*") && strings.HasPrefix(model, k[:len(k)-1]) {
			prefixes = append(prefixes, k)
		}
	}
	if len(prefixes) == 0 {
		return Price{}, false
	}
	sort.Slice(prefixes, func(i, j int) bool {
		if len(prefixes[i]) != len(prefixes[j]) {
			return len(prefixes[i]) > len(prefixes[j])
		}
		return prefixes[i] < prefixes[j]
	})
	return p[prefixes[0]], true
}

// stripSnapshot returns model without its snapshot suffix, if it has one.
func stripSnapshot(model string) (string, bool) {
	if base, ok := strings.CutSuffix(model, "-latest"); ok && base != "" {
		return base, true
	}
	i := strings.LastIndexByte(model, '-')
	if i <= 0 {
		return "", false
	}
	last := model[i+1:]
	switch {
	case len(last) == 8 && allDigits(last), len(last) == 4 && allDigits(last):
		// -YYYYMMDD, -MMDD
		return model[:i], true
	case len(last) == 2 && allDigits(last):
		// -YYYY-MM-DD
		rest := model[:i]
		j := strings.LastIndexByte(rest, '-')
		if j <= 0 || len(rest[j+1:]) != 2 || !allDigits(rest[j+1:]) {
			return "", false
		}
		rest = rest[:j]
		k := strings.LastIndexByte(rest, '-')
		if k <= 0 || len(rest[k+1:]) != 4 || !allDigits(rest[k+1:]) {
			return "", false
		}
		return rest[:k], true
	}
	return "", false
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// usage is a call's token usage, the same for every API: input counts
// every input token, cached and cache-written ones included.
type usage struct {
	input, cached, cacheWrite, output int64
}

func (u usage) tokens() int64 { return u.input + u.output }

// costCents is the cost of u at p, in cents.
func (p Price) costCents(u usage) float64 {
	cachedPrice, writePrice := p.CachedInput, p.CacheWrite
	if cachedPrice == 0 {
		cachedPrice = p.Input
	}
	if writePrice == 0 {
		writePrice = p.Input
	}
	plain := u.input - u.cached - u.cacheWrite
	if plain < 0 {
		plain = 0
	}
	// A price per million tokens is a price in micro-dollars per token.
	micro := float64(plain)*p.Input + float64(u.cached)*cachedPrice +
		float64(u.cacheWrite)*writePrice + float64(u.output)*p.Output
	// Cents, rounded to a billionth of a cent to drop binary noise.
	return math.Round(micro/1e4*1e9) / 1e9
}

// price looks up the response's model, then the request's.
func (p Prices) price(models ...string) (Price, bool) {
	for _, m := range models {
		if pr, ok := p.Lookup(m); ok {
			return pr, true
		}
	}
	return Price{}, false
}
