package rego_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/kinds/rego"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// A runner with Rego enabled; the policy file is loaded with the runner's
// kinds, so a module that does not compile is refused as the file is read.
func Example() {
	ctx := context.Background()
	kinds, _ := prevention.NewKinds(rego.Kind())
	runner, _ := governance.NewRunner(memstore.New(), governance.WithKinds(kinds))
	snap, err := snapshot.Parse("policies.json", []byte(`{
	  "tenant_id": "acme", "thresholds": {"max_tokens": 5000},
	  "policies": [{"id": "tools", "kind": "rego", "params": {"module":
	    "package stopline\n\ndeny contains msg if {\n  input.step.type == \"tool_call\"\n  input.step.tool in {\"shell\", \"exec\"}\n  msg := sprintf(\"tool %s is not allowed\", [input.step.tool])\n}\n\ndeny contains \"over the token budget\" if input.run.total_tokens > input.thresholds.max_tokens\n"}}]}`),
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

	// A module that refers to an input key that does not exist is refused
	// when the file is read, naming the policy and the param.
	_, err = snapshot.Parse("policies.json", []byte(`{"tenant_id": "acme", "thresholds": {},
	  "policies": [{"id": "typo", "kind": "rego", "params": {"module": "package stopline\n\ndeny contains \"x\" if input.step.tokenz > 10\n"}}]}`),
		time.Now(), runner.Kinds())
	var ve *snapshot.ValidationError
	if errors.As(err, &ve) {
		fmt.Println(ve.PolicyID, ve.Field)
	}
	// Output:
	// search ran
	// 1 tools policy_block tool shell is not allowed
	// typo params.module
}
