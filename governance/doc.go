// Package governance runs agent loops under policy: a Runner starts each
// run bound to an immutable policy snapshot, evaluates every step the
// agent reports before it takes effect, records each step and its decision
// durably in a hash chain, and stops the run at the exact step a policy
// blocks, creating the incident in the same store transaction.
//
// The smallest use:
//
//	store, _ := sqlite.Open(ctx, "stopline.db")
//	runner, _ := governance.NewRunner(store)
//	snap, _ := snapshot.Load("policies.json", time.Now(), runner.Kinds())
//	rec, err := runner.Run(ctx, governance.StartOptions{Snapshot: snap},
//		func(ctx context.Context, run *governance.Run) error {
//			// after each LLM response, before each tool call, after each tool result:
//			_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 812, CostCents: 1.2})
//			return err // a *Violation when a policy stopped the run
//		})
//
// Store is the seam to storage (store/sqlite, store/postgres, or your own,
// checked with store/storetest). Explain answers, for any instant of a
// run, which policy set and threshold applied, how close each limit was,
// why the run continued or stopped, and which chain record holds that
// decision; VerifyRun and VerifyStore recompute the chains;
// Runner.Replay evaluates a recorded run again and compares every
// decision with the one stored; Runner.WhatIf tries a candidate policy
// set on recorded runs.
//
// A policy set can also be tried on live runs: StartOptions.Shadow binds
// a run to a second snapshot, evaluated beside the enforcing one at every
// step, whose decisions are recorded in the chain and never stop the run
// (Run.Shadow, ShadowOf: where it would have stopped the run). How a
// run keeps its steps' content — in full, redacted (the content policies'
// matches masked) or as hashes only — is chosen per tenant
// (WithRetention) or per run (StartOptions.Retention, which can keep
// less, never more) and recorded in the chain; the chain binds the
// content's hash whatever is kept, and Replay and WhatIf report the steps
// whose content was not kept as not re-evaluable for the policies that
// read text (ReplayContentNotKept, WhatIfContentNotKept).
// # People in the loop
//
// A step a requires_approval policy holds (or a Go hook that returns
// prevention.HoldForApproval) waits in Run.Step for a person's answer,
// given through the store by any process: PendingHolds lists the holds,
// Approve lets the step pass, Deny blocks it (policy_block); a deadline
// (the policy's hold_seconds, bounded by WithHolds) blocks it with
// timeout, a cancelled ctx with user_abort. The hold and the answer (who,
// when, why) are recorded in the step's record (trace.Approval). Holds
// are durable (the store's HoldStore): after a restart Runner.Resume
// waits on the open hold again, and RecoverRun cancels it; a held step
// is never let pass without an approval.
//
// Kill stops one run, every run of an agent (the AgentLabel run label) or
// a whole tenant: with WithKillSwitch, a runner keeps the active switches
// in memory, refreshed by a watcher (the store's Changes — PostgreSQL
// LISTEN/NOTIFY — and a poll), and blocks the next step of each run in
// their scope with user_abort, recorded with who pulled the switch; Start
// refuses new runs there (ErrKilled) until Release. A step checks the
// switches with one atomic load; it never queries the store for them.
//
// Runner and Run are safe for concurrent use.
package governance
