package cedar_test

import (
	"context"
	"testing"
	"time"

	"github.com/stopline/stopline/prevention"
)

// benchPolicies is one policy of a few rules, of the kinds teams write: a
// tool deny list, a token budget, a cost budget and a metadata check.
const benchPolicies = `
@id("no-shell")
forbid(principal, action == Action::"tool_call", resource)
when { resource in [Tool::"shell", Tool::"exec", Tool::"eval"] };

@id("token-budget")
forbid(principal, action, resource)
when { principal.total_tokens > context.thresholds.max_tokens };

@id("cost-budget")
forbid(principal, action, resource)
when { principal.total_cost_micro_cents > context.thresholds.max_cost_cents * 1000000 };

@id("prod-needs-ticket")
forbid(principal, action, resource)
when { context.metadata has env && context.metadata.env == "prod" }
unless { context.metadata has ticket };
`

// BenchmarkEvaluate measures one step through a compiled cedar policy
// that allows it (every forbid evaluated, none holds), the common case.
func BenchmarkEvaluate(b *testing.B) {
	e := compile(b, "bench", params(b, benchPolicies, nil))
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
