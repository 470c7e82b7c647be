// Package prevention decides, step by step, whether a governed agent run
// may go on.
//
// A Hook takes a Step (the step the agent reports and the run's cumulative
// state, this step included) and returns a Decision: Allow, Warn or Block.
// A Block is an outcome, not an error; a Hook's error or panic means the
// check itself failed, and Evaluate returns a *HookError (matching
// ErrHookFailed) so that the caller fails closed. The zero Decision, and any
// unknown action, is a Block.
//
// Compile turns a snapshot.PolicySnapshot into an Engine: each policy
// becomes a hook of its kind, with its regular expressions and CEL
// expressions compiled once, and any NamedHook runs after the policies.
// A policy of unknown kind or with bad parameters is a
// *snapshot.ValidationError naming the policy and the field ("kind",
// "params.metric", "params.patterns[1]", ...), before any run starts.
// Engine.Evaluate runs the policies in order: the first Block of a policy
// in block mode decides and ends evaluation; Blocks of warn-mode policies
// and Warns are recorded and turn the decision into Warn; Blocks of
// monitor-mode policies are recorded as would-blocks and change nothing.
// An Engine is safe for concurrent use, and Evaluate does not allocate
// when every policy allows.
//
// # Policy kinds
//
// Parameters are decoded strictly: an unknown or misspelt parameter is an
// error. Thresholds are named in params.threshold and must exist in the
// snapshot; a Block of a kind with a threshold cites its name, its limit
// and the observed value.
//
//	budget          {"metric": "tokens" | "cost_cents" | "steps", "threshold": NAME}
//	    Blocks (budget_exceeded) the first step whose cumulative metric,
//	    this step included, is strictly greater than the limit.
//	rate_limit      {"threshold": NAME, "window_seconds": N (> 0, default 60)}
//	    Blocks (rate_limited) a step when more than limit steps, this one
//	    included, lie in the trailing window (At-window, At].
//	timeout         {"threshold": NAME (seconds)}
//	    Blocks (timeout) a step taken more than limit seconds after the
//	    run's start.
//	content         {"patterns": [REGEXP, ...], "fields": [FIELD, ...], "reason": R}
//	    Blocks (R, default policy_block) a step when a pattern (Go regexp
//	    syntax) matches one of the fields: output, input, tool, model
//	    (default ["output"]). The message names the field and the index of
//	    the pattern, never the text it matched.
//	tool_allowlist  {"allow": [TOOL, ...]}
//	    Blocks (policy_block) a tool_call step whose tool is not listed.
//	tool_denylist   {"deny": [TOOL, ...]}
//	    Blocks (policy_block) a tool_call step whose tool is listed.
//	expression      {"expr": CEL, "message": TEXT, "reason": R}
//	    Blocks (R, default policy_block) a step for which expr is true;
//	    message, if given, is the decision's message.
//
// So with max_steps 3, a steps budget allows steps 0, 1 and 2 and blocks
// step 3; a cost budget of 150 allows a run that has spent exactly 150.
//
// # Limits across runs
//
// Two kinds limit a tenant across all its runs, on every replica that
// shares the store, rather than one run:
//
//	tenant_budget      {"metric": "cost_cents" | "tokens" | "runs", "threshold": NAME,
//	                    "period": "day" | "month"  or  "window_seconds": N (> 0)}
//	    Blocks (budget_exceeded) a step that would take the tenant's total
//	    of the metric over the window, this step included, strictly past
//	    the limit. "period" is a calendar window in UTC (the day or month
//	    that contains the step's time); "window_seconds" a rolling window
//	    ending at the step. A run counts once, at its first step (index 0).
//	tenant_rate_limit  {"threshold": NAME, "window_seconds": N (> 0, default 60)}
//	    Blocks (rate_limited) a step when more than limit steps of all the
//	    tenant's runs, this one included, lie in the rolling window.
//
// The totals live in a Ledger that the store keeps (governance.LedgerStore:
// store/postgres, store/sqlite and store/memstore have one); a run whose
// snapshot uses these kinds cannot start on a store without one
// (governance.ErrLedgerUnsupported). Every counter is the tenant's, not the
// policy's: all policies on the same metric and window, in any snapshot
// version, read the same total, each against its own limit. Amounts are
// integers — tokens, runs and steps one each, cost in millionths of a cent
// (CostUnitsPerCent) — so that every store adds up the same numbers.
//
// The check is reserve-then-settle, and atomic in the store: while a step
// is evaluated, its amount is reserved on each counter only if the total,
// the amount included, stays within the limit (one conditional write, so
// concurrent runs on any number of replicas can never together go past
// it); if the step is then blocked by any policy, or cannot be recorded,
// the reservation is released, so a blocked step counts nothing. A step
// reported after it happened (governance.Run.Step) and blocked has still
// happened: its cost is in its record, not in the budget. To keep the
// spend itself within a budget, reserve before spending: Run.Reserve
// holds a step's worst case (an LLM call's prompt and max_tokens, priced)
// against every other run, and Reservation.Step settles it to the actual
// amount. Check and Withhold only read the totals; a Reservation's
// Check and Withhold read them with its own holds left out
// (PeekChargesExcept), so that a step happening under its reservation is
// not counted twice. A warn- or
// monitor-mode limit that fires still lets the step count, since the step
// happens. A reservation whose process dies before settling stays
// counted until its window has passed, which can refuse later steps,
// never let one through.
//
// A rolling window of length d checks a step at t against every amount
// within d of t, before or after it: with steps in time order that is
// exactly the trailing window, and with clocks of different replicas a
// little apart no trailing window ever holds more than the limit. Its
// cost per check grows with the number of amounts in the window: use
// calendar periods for long budgets and rolling windows for rates.
//
// # Expressions
//
// An expression policy is a CEL expression (https://cel.dev) of type bool
// that is true on a violation, such as
//
//	step.type == 'tool_call' && step.tool == 'shell'
//
// It sees three variables:
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
// is a *HookError: the step fails closed.
//
// # Use
//
//	engine, err := prevention.Compile(snap)
//	if err != nil {
//		return err // names the policy and the field
//	}
//	ev, err := engine.Evaluate(ctx, step)
//	if err != nil || ev.Decision.Action == prevention.Block {
//		// stop the run at this step
//	}
package prevention
