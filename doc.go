// Package stopline governs AI-agent runs: like the andon cord on a factory
// line, any policy can stop a run at the exact step where it goes wrong,
// and afterwards anyone can prove which policy was active, which threshold
// applied, why the run continued or stopped, and where that decision is
// recorded immutably.
//
// The module is organised by concept:
//
//	snapshot    immutable, content-hashed policy sets (SNAP-<12 hex>) and policy files
//	prevention  the Hook interface, Decision, termination reasons, policy kinds (Kind, Kinds) and the built-in ones
//	kinds/...   policy kinds outside the core: cel (expressions), rego and cedar (nested modules)
//	trace       the hash-chained record of every step, the inflection point, chain verification
//	incident    the incident a Block creates, its severity and lifecycle
//	governance  Runner and Run (the governed agent loop), the Store interface, Explain, VerifyRun
//	export      evidence, SOC2 and executive-debrief bundles built from a store; export/bundle (the format,
//	            DSSE signing, offline verification), export/pdf (rendering), export/httpapi (the handler)
//	llmhttp     middleware that governs OpenAI and Anthropic SDK calls, streaming included
//	mcpgov      middleware that governs MCP tool calls, client and server (a module of its own)
//	otelgov     runs and steps as OpenTelemetry spans and metrics
//	store/...   sqlite (default, one file), postgres (shared by replicas), memstore (tests), storetest (conformance)
//	cmd/stopline  the command-line tool
//
// A governed run, end to end:
//
//	store, _ := sqlite.Open(ctx, "stopline.db")
//	runner, _ := governance.NewRunner(store)
//	snap, _ := snapshot.Load("policies.json", time.Now(), runner.Kinds())
//	_, err := runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
//		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"})
//		return err
//	})
//	var v *governance.Violation
//	if errors.As(err, &v) { /* stopped at v.StepIndex by v.PolicyID(); incident v.IncidentID */ }
//
// See examples/quickstart for a complete program.
package stopline
