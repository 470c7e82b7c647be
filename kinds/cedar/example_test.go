package cedar_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/kinds/cedar"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// A runner with Cedar enabled; the policy file is loaded with the
// runner's kinds, so policy text that does not parse, or that names an
// attribute no request has, is refused as the file is read.
func Example() {
	ctx := context.Background()
	kinds, _ := prevention.NewKinds(cedar.Kind())
	runner, _ := governance.NewRunner(memstore.New(), governance.WithKinds(kinds))
	snap, err := snapshot.Parse("policies.json", []byte(`{
	  "tenant_id": "acme", "thresholds": {"max_tokens": 5000},
	  "policies": [{"id": "guardrails", "kind": "cedar", "params": {"policies":
	    "@id(\"no-shell\")\n@message(\"shell is not allowed\")\nforbid(principal, action == Action::\"tool_call\", resource)\nwhen { resource in [Tool::\"shell\", Tool::\"exec\"] };\n\n@id(\"token-budget\")\nforbid(principal, action, resource)\nwhen { principal.total_tokens > context.thresholds.max_tokens };\n"}}]}`),
		time.Now(), runner.Kinds())
	if err != nil {
		fmt.Println(err)
		return
	}
	_, err = runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "search"}); err != nil {
			return err
		}
		fmt.Println("search ran")
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"})
		return err
	})
	var v *governance.Violation
	if errors.As(err, &v) {
		fmt.Println(v.StepIndex, v.PolicyID(), v.Reason(), v.Decision.Message)
	}

	// A policy that names an attribute the context does not have is
	// refused when the file is read, naming the policy and the param.
	_, err = snapshot.Parse("policies.json", []byte(`{"tenant_id": "acme", "thresholds": {},
	  "policies": [{"id": "typo", "kind": "cedar", "params": {"policies": "forbid(principal, action, resource) when { context.tokenz > 10 };"}}]}`),
		time.Now(), runner.Kinds())
	var ve *snapshot.ValidationError
	if errors.As(err, &ve) {
		fmt.Println(ve.PolicyID, ve.Field)
	}
	// Output:
	// search ran
	// 1 guardrails policy_block forbidden by no-shell: shell is not allowed
	// typo params.policies
}
