// Package rego enables the "rego" policy kind: a policy that is a Rego
// module (https://www.openpolicyagent.org/docs/policy-language, evaluated
// with github.com/open-policy-agent/opa/v1/rego) whose deny rule holds a
// message for each violation. It is a module of its own
// (github.com/stopline/stopline/kinds/rego), so that programs that do not
// use Rego do not depend on OPA.
//
//	kinds, err := prevention.NewKinds(rego.Kind())
//	runner, err := governance.NewRunner(store, governance.WithKinds(kinds))
//	snap, err := snapshot.Load("policies.json", time.Now(), runner.Kinds())
//
// A policy of this kind:
//
//	{"id": "no-shell", "kind": "rego",
//	 "params": {"module": "package stopline\n\ndeny contains msg if {\n  input.step.type == \"tool_call\"\n  input.step.tool == \"shell\"\n  msg := \"no shell\"\n}",
//	            "query": "data.stopline.deny", "reason": "policy_block"}}
//
// # Parameters
//
//	module  required: the Rego module, in Rego v1 syntax (if, contains).
//	query   the rule whose value decides, as a reference
//	        data.<package>.<rule>; default data.<package>.deny, the
//	        module's own package.
//	reason  the termination reason of a Block (any reason but completed;
//	        default policy_block).
//
// The module is parsed, type-checked against the input document (below)
// and prepared once, when the policy is compiled (when the policy file is
// loaded with the runner's kinds, and when a run starts); every step then
// evaluates the prepared query. A module that does not parse or compile —
// including one that refers to a key the input never has, such as
// input.step.tokenz or a threshold the snapshot does not define, or to a
// document under data that no rule of the module defines (the data
// document holds only the module's rules, so such a reference would be
// undefined on every step) — is a *snapshot.FieldError naming
// params.module, with the line and column; a
// query that names no rule of the module is one naming params.query (or
// params.module, when the default query finds no deny rule).
//
// # Decisions
//
// The query's value is a set (or array) of strings, each a violation:
//
//   - a non-empty set Blocks the step; the decision's message is the
//     messages, sorted and joined with "; ";
//   - an empty set, or an undefined value, Allows it;
//   - anything else fails the check, and the runner fails the step closed
//     (the run stops with system_failure): an evaluation error (a
//     built-in function's error, such as to_number("x") — built-in errors
//     are strict — or two values for a complete rule), a value that is not
//     a set or array of strings, or the step's context ending. The
//     evaluation honours the context's deadline and cancellation.
//
// Rules are Rego rules in full: a rule whose body's conditions do not all
// hold adds nothing, so
//
//	deny contains msg if {
//	    input.step.type == "tool_call"
//	    input.step.tool in {"shell", "exec"}
//	    msg := sprintf("tool %s is not allowed", [input.step.tool])
//	}
//
// blocks a call of shell or exec and allows every other step. A reference
// to a metadata key the step lacks is undefined, as in any Rego rule: it
// makes the condition false, not an error.
//
// # The input document
//
//	input.step        index (integer), type, tool, model, input, output
//	                  (strings), tokens (integer), cost_cents (number),
//	                  metadata (object of strings)
//	input.run         run_id, tenant_id, snapshot_id (strings),
//	                  total_tokens (integer), total_cost_cents (number),
//	                  steps (integer: this step included),
//	                  elapsed_seconds (number)
//	input.thresholds  the snapshot's thresholds (object of numbers)
//
// These are the values the "expression" kind (kinds/cel) sees as step,
// run and thresholds. The run's totals include this step. The data
// document holds the module's own rules and nothing else.
//
// # Built-in functions
//
// Every built-in function of OPA's Rego is available except http.send,
// net.lookup_ip_addr and opa.runtime: a policy evaluated on every step of
// every run must not reach the network or read the process's environment.
// print statements are removed.
package rego
