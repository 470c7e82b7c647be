// Command quickstart governs three runs of a small agent against a
// deterministic fake LLM (no network, no API key) and prints what
// happened: one run completes, one is stopped by the cost budget, one is
// stopped before it can run a forbidden tool. It leaves stopline.db
// behind, for `stopline show` and `stopline explain`.
package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/kinds/cel"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/sqlite"
)

//go:embed policies.json
var policyFile []byte

// fakeLLM answers from a script, like a model would, with token counts
// and a cost (here 2 cents per 100 tokens, to make the budget bite fast).
type fakeLLM struct{ script []reply }

type reply struct {
	text   string
	tool   string // a tool the model asks to call, if any
	tokens int64
}

func (m *fakeLLM) next(i int) reply { return m.script[i%len(m.script)] }

func cost(tokens int64) float64 { return float64(tokens) / 100 * 2 }

// agent is the loop a team already has; governing it takes one call per
// step: run.Step.
func agent(ctx context.Context, run *governance.Run, llm *fakeLLM, turns int) error {
	for i := 0; i < turns; i++ {
		r := llm.next(i)
		if _, err := run.Step(ctx, governance.StepInput{
			Type: prevention.StepLLMResponse, Model: "fake-1", Output: r.text, Tokens: r.tokens, CostCents: cost(r.tokens),
		}); err != nil {
			return err
		}
		if r.tool == "" {
			continue
		}
		// The tool call is checked BEFORE the tool runs.
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: r.tool, Input: `{"q":"..."}`}); err != nil {
			return err
		}
		result := "42" // the tool runs only if it was allowed
		if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolResult, Tool: r.tool, Output: result}); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	log.SetFlags(0)
	ctx := context.Background()
	dbPath := "stopline.db"
	if len(os.Args) > 1 {
		dbPath = os.Args[1]
	}
	store, err := sqlite.Open(ctx, dbPath)
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	// The built-in policy kinds and CEL expressions (policies.json has one).
	kinds, err := prevention.NewKinds(cel.Kind())
	if err != nil {
		log.Fatal(err)
	}
	runner, err := governance.NewRunner(store, governance.WithKinds(kinds))
	if err != nil {
		log.Fatal(err)
	}

	// Publish the policy file as the tenant's active version: runs started
	// from now on are bound to this snapshot.
	snap, err := snapshot.Parse("policies.json", policyFile, time.Now(), runner.Kinds())
	if err != nil {
		log.Fatal(err)
	}
	version, err := runner.Publish(ctx, snap, "quickstart", "policies for the demo agent")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Published policy version %d for tenant %s: snapshot %s (%d policies)\n\n",
		version.Version, snap.TenantID(), snap.ID(), snap.PolicyCount())

	scenarios := []struct {
		title string
		llm   *fakeLLM
		turns int
	}{
		{"a research task that finishes", &fakeLLM{script: []reply{
			{text: "I will look that up.", tool: "search", tokens: 800},
			{text: "The answer is 42.", tokens: 600},
		}}, 2},
		{"a chatty agent that overspends", &fakeLLM{script: []reply{
			{text: "Let me think about this at length...", tokens: 2000},
		}}, 10},
		{"an agent that tries to run a shell command", &fakeLLM{script: []reply{
			{text: "I will search first.", tool: "search", tokens: 500},
			{text: "Now I will delete the temp files.", tool: "shell", tokens: 400},
		}}, 2},
	}
	for i, sc := range scenarios {
		fmt.Printf("Run %d: %s\n", i+1, sc.title)
		rec, err := runner.Run(ctx, governance.StartOptions{TenantID: "acme", Labels: map[string]string{"scenario": sc.title}},
			func(ctx context.Context, run *governance.Run) error { return agent(ctx, run, sc.llm, sc.turns) })
		report(ctx, store, rec, err)
	}
}

func report(ctx context.Context, store governance.Store, rec governance.RunRecord, err error) {
	fmt.Printf("  run %s: %s (%s) after %d steps, %d tokens, %.2f cents\n",
		rec.RunID, rec.Status, rec.TerminationReason, rec.StepCount, rec.TotalTokens, rec.TotalCostCents)
	var v *governance.Violation
	if errors.As(err, &v) {
		fmt.Printf("  stopped at step %d by policy %q: %s\n", v.StepIndex, v.PolicyID(), v.Decision.Message)
		fmt.Printf("  incident %s created with the stop\n", v.IncidentID)
		// Explain the instant of the blocked step: which policy, which
		// threshold, why, and which record holds it.
		recs, _ := store.Records(ctx, rec.TenantID, rec.RunID)
		at := recs[v.StepIndex+1].At
		ex, err := governance.Explain(ctx, store, rec.TenantID, rec.RunID, at)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("  explain @ %s: %s\n", at.Format(time.RFC3339Nano), ex.Why)
		fmt.Printf("    snapshot %s, recorded in chain record #%d, hash %s…\n", ex.SnapshotID, ex.Record.Seq, ex.Record.Hash[:16])
	} else if err != nil {
		log.Fatal(err)
	}
	n, err := governance.VerifyRun(ctx, store, rec.TenantID, rec.RunID)
	if err != nil {
		log.Fatalf("  verification failed: %v", err)
	}
	fmt.Printf("  hash chain of %d records verified\n\n", n)
}
