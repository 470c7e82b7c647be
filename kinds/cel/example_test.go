package cel_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/kinds/cel"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// A runner with CEL expressions enabled; the policy file is loaded with
// the runner's kinds, so an expression that does not compile is refused
// as the file is read.
func Example() {
	ctx := context.Background()
	kinds, _ := prevention.NewKinds(cel.Kind())
	runner, _ := governance.NewRunner(memstore.New(), governance.WithKinds(kinds))
	snap, err := snapshot.Parse("policies.json", []byte(`{
	  "tenant_id": "acme", "thresholds": {},
	  "policies": [{"id": "no-shell", "kind": "expression",
	    "params": {"expr": "step.type == 'tool_call' && step.tool == 'shell'"}}]}`), time.Now(), runner.Kinds())
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"})
		return err
	})
	var v *governance.Violation
	if errors.As(err, &v) {
		fmt.Println(v.PolicyID(), v.Reason(), v.Decision.Message)
	}

	// Without cel.Kind(), the same file is refused when it is read.
	_, err = snapshot.Parse("policies.json", []byte(`{"tenant_id": "acme", "thresholds": {},
	  "policies": [{"id": "no-shell", "kind": "expression", "params": {"expr": "true"}}]}`), time.Now(), prevention.Builtin())
	fmt.Println(errors.Is(err, prevention.ErrUnknownKind))
	// Output:
	// no-shell policy_block expression is true: step.type == 'tool_call' && step.tool == 'shell'
	// true
}
