package rego_test

import (
	"context"
	"testing"
	"time"

	"github.com/stopline/stopline/prevention"
)

// benchModule is one policy of a few rules, of the kinds teams write: a
// tool deny list, a token budget, a cost budget and a metadata check.
const benchModule = `package stopline

deny contains msg if {
	input.step.type == "tool_call"
	input.step.tool in {"shell", "exec", "eval"}
	msg := sprintf("tool %s is not allowed", [input.step.tool])
}

deny contains "over the token budget" if input.run.total_tokens > input.thresholds.max_tokens

deny contains "over the cost budget" if input.run.total_cost_cents > input.thresholds.max_cost_cents

deny contains "production steps need a ticket" if {
	input.step.metadata.env == "prod"
	not input.step.metadata.ticket
}
`

// BenchmarkEvaluate measures one step through a compiled rego policy that
// allows it (every rule evaluated, none holds), the common case.
func BenchmarkEvaluate(b *testing.B) {
	e := compile(b, "bench", params(b, benchModule, nil))
	start := time.Unix(1_700_000_000, 0)
	s := &prevention.Step{
		RunID: "r1", TenantID: "acme", SnapshotID: "s1", Index: 3, Type: prevention.StepToolCall,
		At: start.Add(2 * time.Second), RunStartedAt: start, Tool: "search", Input: `{"q":"stopline"}`,
		Tokens: 120, CostCents: 0.5, TotalTokens: 480, TotalCostCents: 1.5,
		Metadata: map[string]string{"env": "prod", "ticket": "OPS-1"},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ev, err := e.Evaluate(ctx, s)
		if err != nil || ev.Decision.Action != prevention.Allow {
			b.Fatalf("decision %v, error %v", ev.Decision, err)
		}
	}
}
