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
// Kinds.Compile turns a snapshot.PolicySnapshot into an Engine: each
// policy becomes a hook of its kind, with its regular expressions (and a
// plug-in kind's expressions or queries) compiled once, and any NamedHook
// runs after the policies.
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
//	    the pattern, never the text it matched. The checks of a stream
//	    (EvaluateStream) match only what each adds: see Streams.
//	tool_allowlist  {"allow": [TOOL, ...]}
//	    Blocks (policy_block) a tool_call step whose tool is not listed.
//	tool_denylist   {"deny": [TOOL, ...]}
//	    Blocks (policy_block) a tool_call step whose tool is listed.
//	requires_approval {"tools": [TOOL, ...], "arguments": [REGEXP, ...], "threshold": NAME,
//	                   "step_types": [TYPE, ...], "hold_seconds": N}
//	    Holds (HoldForApproval) a step of one of the step types (default
//	    ["tool_call"]) that matches every condition given — at least one:
//	    its tool is listed (compared as a tool_denylist compares), a
//	    pattern matches its input (the call's arguments), its cost_cents
//	    is strictly above the threshold. The step waits for a person's
//	    approval for hold_seconds (0 < N <= MaxHoldSeconds; absent: the
//	    runner's default), bounded by the runner (governance.WithHolds).
//	    The message names the tool, the pattern's index or the threshold,
//	    never the text.
//
// A hold decides a step only when no enforced Block does: evaluation
// goes on after it, and a later Block wins. A Go hook holds a step by
// returning a Decision with Action HoldForApproval (and HoldSeconds).
//
// So with max_steps 3, a steps budget allows steps 0, 1 and 2 and blocks
// step 3; a cost budget of 150 allows a run that has spent exactly 150.
//
// # Streams
//
// A step that grows while it happens — a streamed model response — is
// checked again each time text arrives. EvaluateStream evaluates such a
// check with the stream's Stream (Engine.NewStream): hooks that implement
// StreamHook keep a state from one check to the next and evaluate only
// what a check adds to the text of the previous one, with the decision
// Evaluate would make. The content kind does: each pattern runs as a
// Pike VM over its program, compiled as package regexp compiles it,
// whose waiting threads, last rune and unfinished rune are kept between
// checks and whose end-of-text assertions ($, \z, \b at the end) are
// evaluated on a copy, so that its answer after each check is exactly
// regexp's MatchString on the whole text so far, and a stream of n bytes
// checked after each of its events costs O(n) in all, not O(n²). A
// check whose text extends neither the previous check's nor the one
// before it (which the recheck of a blocked batch, event by event, goes
// back to) is evaluated in full, and so is every check of a policy with
// a pattern of more than 32,768 instructions; other kinds are evaluated
// as by Evaluate.
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
// # Plug-in kinds
//
// A Kind compiles a policy's parameters into a Hook. Kinds is the set a
// program runs: Builtin holds the kinds above; NewKinds adds others, such
// as CEL expressions (github.com/stopline/stopline/kinds/cel, kind
// "expression"), Rego (kinds/rego) and Cedar (kinds/cedar), each in a
// package only the programs that use it import. A policy whose kind is not
// in the set is refused — when its file is loaded (snapshot.Parse with
// the set as its Checker) and when a run starts — with an error that says
// which import enables it. To write a kind, implement Kind (or use
// KindFunc): decode the parameters with Policy.DecodeParams, report a bad
// one as a *snapshot.FieldError naming it, compile what can be compiled
// once, and return a Hook that is safe for concurrent use and honours its
// context. The kind's hooks then run like any policy: in file order, with
// the policy's enforcement mode, their decisions recorded under the
// policy's id.
//
// # Names
//
// Tool and model names are compared as written, except by deny lists:
// CheckName refuses names with invisible or control characters (the
// runner refuses such a step), and a tool_denylist compares
// NormalizeName forms (NFKC, case folded, trimmed), so that a look-alike
// of a denied name is denied. A tool_allowlist admits exactly the names it
// lists.
//
// # Use
//
//	kinds, err := prevention.NewKinds(cel.Kind()) // or prevention.Builtin()
//	engine, err := kinds.Compile(snap)
//	if err != nil {
//		return err // names the policy and the field
//	}
//	ev, err := engine.Evaluate(ctx, step)
//	if err != nil || ev.Decision.Action == prevention.Block {
//		// stop the run at this step
//	}
package prevention
