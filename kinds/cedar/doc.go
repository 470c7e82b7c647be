// Package cedar enables the "cedar" policy kind: a policy that is a set
// of Cedar policies (https://docs.cedarpolicy.com, evaluated with
// github.com/cedar-policy/cedar-go) whose forbid policies say which steps
// a run may not take. It is a module of its own
// (github.com/stopline/stopline/kinds/cedar), so that programs that do
// not use Cedar do not depend on cedar-go.
//
//	kinds, err := prevention.NewKinds(cedar.Kind())
//	runner, err := governance.NewRunner(store, governance.WithKinds(kinds))
//	snap, err := snapshot.Load("policies.json", time.Now(), runner.Kinds())
//
// A policy of this kind:
//
//	{"id": "guardrails", "kind": "cedar",
//	 "params": {"policies": "@id(\"no-shell\")\n@message(\"shell is not allowed\")\nforbid(principal, action == Action::\"tool_call\", resource == Tool::\"shell\");",
//	            "reason": "policy_block"}}
//
// # Parameters
//
//	policies  required: Cedar policy text, one or more policies.
//	reason    the termination reason of a Block (any reason but
//	          completed; default policy_block).
//
// The text is parsed and checked once, when the policy is compiled (when
// the policy file is loaded with the runner's kinds, and when a run
// starts); every step then evaluates the parsed policies. Text that does
// not parse is a *snapshot.FieldError naming params.policies, with the
// line and column. So is a policy that could never apply or would fail
// on every step: a scope or entity of a type no request has
// (User::"alice"), an action that is not a step type (Action::"tool_cal"),
// an attribute the principal or the context does not have
// (context.tokenz, or context has tokenz, which is always false), an
// attribute of the action or the resource (they have none), a threshold the snapshot lacks or that is not a whole number, an
// extension literal that does not parse (decimal("1.23456")), two
// policies with the same @id, and a set with no forbid policy.
//
// # Only forbid decides
//
// A policy of this kind is a guardrail: it says what a run may not do,
// and everything else is allowed. It behaves as if the set held
//
//	permit(principal, action, resource);
//
// so a step is blocked exactly when a forbid policy's scope matches and
// its when conditions hold and unless conditions do not. A permit policy
// in the text is parsed and checked but never evaluated: it has no
// effect, and cannot override a forbid (no Cedar permit can).
//
// A Block's message is "forbidden by " and the forbidding policies, in
// the order of the text, each as its @id annotation (or "policy<N>", N
// its position in the text from 0) followed by ": " and its @message
// annotation, if it has one, joined with "; ".
//
// # Errors fail closed
//
// cedar-go skips a policy whose condition raises an error (a missing
// attribute, a type error, an overflow) and reports it only in its
// diagnostics; a Cedar authorizer would then decide as if that forbid did
// not exist. This kind does not: any error of any forbid policy on a step
// fails the check, and the runner fails the step closed (the run stops
// with system_failure), even if another forbid held. So guard a metadata
// key with has:
//
//	forbid(principal, action, resource)
//	when { context.metadata has env && context.metadata.env == "prod" };
//
// The step's context is checked before the evaluation, which takes
// microseconds and is not interrupted.
//
// # The request
//
//	principal  Run::"<run id>", the only entity with attributes:
//	             tenant_id, snapshot_id        String
//	             total_tokens                  Long
//	             total_cost_micro_cents        Long
//	             steps                         Long (this step included)
//	             elapsed_seconds               Long (whole seconds, rounded down)
//	action     Action::"<step type>": Action::"llm_response",
//	           Action::"tool_call", Action::"tool_result",
//	           Action::"message"
//	resource   what the step names: Tool::"<tool>" for tool_call and
//	           tool_result steps, Model::"<model>" for llm_response
//	           steps, and Step::"<index>" (the step itself, index in
//	           decimal) for any other step
//	context    index                          Long
//	           type, tool, model, input,      String
//	           output
//	           tokens                         Long
//	           cost_micro_cents               Long
//	           metadata                       Record of String
//	           thresholds                     Record of Long: the
//	                                          snapshot's whole-number
//	                                          thresholds
//
// The run's totals include this step. No entity has a parent, so
// principal in Run::"r1" is principal == Run::"r1", and resource and
// action have no attributes.
//
// Numbers are Cedar Longs, so that <, <=, > and >= compare them (Cedar's
// decimal has only methods for that) and arithmetic is exact. Costs are
// Longs of millionths of a cent (MicroCentsPerCent, the unit of tenant
// budgets), rounded to the nearest: a step that cost 2.5 cents has
// cost_micro_cents 2500000. A threshold in cents is compared as
//
//	principal.total_cost_micro_cents > context.thresholds.max_cost_cents * 1000000
//
// and a whole number of tokens directly:
//
//	principal.total_tokens > context.thresholds.max_tokens
package cedar
