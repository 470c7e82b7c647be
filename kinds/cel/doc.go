// Package cel enables the "expression" policy kind: a policy that is a
// CEL expression (https://cel.dev, cel.dev/cel-go) of type bool, true on
// a violation. It lives outside the core so that programs that do not use
// expressions do not link cel-go.
//
//	kinds, err := prevention.NewKinds(cel.Kind())
//	runner, err := governance.NewRunner(store, governance.WithKinds(kinds))
//	snap, err := snapshot.Load("policies.json", time.Now(), runner.Kinds())
//
// A policy of this kind:
//
//	{"id": "no-shell", "kind": "expression",
//	 "params": {"expr": "step.type == 'tool_call' && step.tool == 'shell'",
//	            "message": "no shell", "reason": "policy_block"}}
//
// expr is required; message (default "expression is true: EXPR") is the
// decision's message; reason (default policy_block) is the termination
// reason of a Block. The expression sees three variables:
//
//	step        index (int), type, tool, model, input, output (string),
//	            tokens (int), cost_cents (double), metadata (map of string)
//	run         run_id, tenant_id, snapshot_id (string), total_tokens (int),
//	            total_cost_cents (double), steps (int), elapsed_seconds (double)
//	thresholds  the snapshot's thresholds (map of double)
//
// Numbers of different types compare as numbers (run.total_tokens >
// thresholds.max_tokens). A key that step or run do not have is a compile
// error; a metadata key is not known in advance, so test for it first:
// 'env' in step.metadata && step.metadata.env == 'prod'. An evaluation
// error (a missing key, a cost above the limit, the step's context ending)
// is a failed check: the step fails closed.
package cel
