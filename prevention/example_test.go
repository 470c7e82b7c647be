package prevention_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// Compile a snapshot with a cost budget once, then evaluate each step: the
// budget allows a run that has spent exactly its limit and blocks the step
// that takes it over.
func Example() {
	snap, err := snapshot.New("acme",
		[]snapshot.Policy{{
			ID:     "cost-budget",
			Kind:   "budget",
			Params: json.RawMessage(`{"metric": "cost_cents", "threshold": "max_cost_cents"}`),
		}},
		snapshot.Thresholds{"max_cost_cents": 150},
		time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		fmt.Println(err)
		return
	}
	engine, err := kinds.Compile(snap)
	if err != nil {
		fmt.Println(err)
		return
	}
	for i, total := range []float64{100, 150, 151} {
		step := &prevention.Step{Index: i, Type: prevention.StepLLMResponse, TotalCostCents: total}
		ev, err := engine.Evaluate(context.Background(), step)
		if err != nil {
			fmt.Println(err) // fail closed: the step must not pass
			return
		}
		fmt.Printf("step %d: %v\n", i, ev.Decision)
	}
	// Output:
	// step 0: allow
	// step 1: allow
	// step 2: block by cost-budget (budget_exceeded): max_cost_cents observed 151, limit 150: cumulative cost_cents 151 exceeds max_cost_cents 150
}
