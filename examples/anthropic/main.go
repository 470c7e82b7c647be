// Command anthropic governs an agent built on the official Anthropic Go
// SDK (github.com/anthropics/anthropic-sdk-go/v2) with one line: the
// SDK's middleware.
//
// It needs no network and no API key: a local fake server speaks the
// Anthropic Messages wire format (JSON and server-sent events). Two runs:
//
//  1. a conversation under a cost budget, stopped mid-conversation by the
//     answer that spends past the budget: Anthropic reports the input
//     tokens in a stream's first event, so that answer is cut there,
//     before any text (and output spend), as its input alone takes the
//     run past the budget; the next call is refused before it is sent;
//  2. an agent with tools, stopped when the model asks for a forbidden
//     tool: the tool never runs.
//
// Runs are recorded in stopline.db; see them with `stopline show RUN_ID
// --db stopline.db`.
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/llmhttp/llmhttptest"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/sqlite"
)

const policy = `{
  "tenant_id": "acme",
  "thresholds": {"max_cost_cents": 5},
  "policies": [
    {"id": "cost-budget", "kind": "budget", "params": {"metric": "cost_cents", "threshold": "max_cost_cents"}},
    {"id": "tools", "kind": "tool_allowlist", "params": {"allow": ["search"]}}
  ]
}`

// Dollars per million tokens.
var prices = llmhttp.Prices{"claude-sonnet-4-5": {Input: 3, CachedInput: 0.3, CacheWrite: 3.75, Output: 15}}

const model = "claude-sonnet-4-5"

func main() {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, "stopline.db")
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	runner, err := governance.NewRunner(store)
	if err != nil {
		log.Fatal(err)
	}
	snap, err := snapshot.Parse("policy.json", []byte(policy), time.Now(), runner.Kinds())
	if err != nil {
		log.Fatal(err)
	}
	api := llmhttptest.NewServer() // stands in for api.anthropic.com
	defer api.Close()

	fmt.Println("Run 1: a conversation under a budget of 5 cents")
	for i := 0; i < 4; i++ { // each answer: 2500 tokens in, 500 out = 1.5 cents
		api.Push(llmhttptest.Reply{Text: fmt.Sprintf("Answer %d, streamed word by word.", i+1), Usage: llmhttptest.Usage{Input: 2500, Output: 500}})
	}
	var client anthropic.Client
	rec, err := runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		client = newClient(api.URL, run)
		for turn := 1; ; turn++ {
			if err := chat(ctx, client, run, turn); err != nil {
				return err
			}
		}
	})
	report(rec, err, api)
	if _, err := client.Messages.New(ctx, question(5)); errors.Is(err, llmhttp.ErrNotSent) {
		fmt.Printf("  asking once more: refused before sending; the provider still got %d requests\n", api.Requests())
	}

	fmt.Println("\nRun 2: an agent with tools; only \"search\" is allowed")
	api.Push(
		llmhttptest.Reply{ToolCalls: []llmhttptest.ToolCall{{Name: "search", Arguments: `{"query":"largest files in /var"}`}}, Usage: llmhttptest.Usage{Input: 300, Output: 20}},
		llmhttptest.Reply{ToolCalls: []llmhttptest.ToolCall{{Name: "shell", Arguments: `{"command":"rm -rf /var/log"}`}}, Usage: llmhttptest.Usage{Input: 400, Output: 20}},
	)
	rec, err = runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		return toolAgent(ctx, newClient(api.URL, run), run)
	})
	report(rec, err, api)
}

// newClient is an Anthropic client whose every call is a governed step of run.
func newClient(baseURL string, run *governance.Run) anthropic.Client {
	return anthropic.NewClient(
		option.WithBaseURL(baseURL), option.WithAPIKey("no key needed"),
		option.WithMiddleware(llmhttp.Middleware(run, llmhttp.WithPrices(prices))), // the one line
	)
}

func question(turn int) anthropic.MessageNewParams {
	return anthropic.MessageNewParams{
		Model: model, MaxTokens: 1024,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(fmt.Sprintf("Question %d?", turn)))},
	}
}

// chat asks one question and prints the answer as it streams.
func chat(ctx context.Context, client anthropic.Client, run *governance.Run, turn int) error {
	stream := client.Messages.NewStreaming(ctx, question(turn))
	defer stream.Close()
	fmt.Printf("  turn %d: ", turn)
	for stream.Next() {
		if ev := stream.Current(); ev.Type == "content_block_delta" {
			fmt.Print(ev.Delta.Text)
		}
	}
	fmt.Println()
	if err := stream.Err(); err != nil {
		return err
	}
	fmt.Printf("          spent so far: %.1f cents\n", run.Record().TotalCostCents)
	return nil
}

// toolAgent lets the model call tools until it answers.
func toolAgent(ctx context.Context, client anthropic.Client, run *governance.Run) error {
	params := anthropic.MessageNewParams{
		Model: model, MaxTokens: 1024,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Free some disk space."))},
		Tools: []anthropic.ToolUnionParam{
			{OfTool: &anthropic.ToolParam{Name: "search", InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"query": map[string]string{"type": "string"}}}}},
			{OfTool: &anthropic.ToolParam{Name: "shell", InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"command": map[string]string{"type": "string"}}}}},
		},
	}
	for {
		msg, err := client.Messages.New(ctx, params)
		if err != nil {
			return err // a blocked tool call arrives here, before the tool runs
		}
		params.Messages = append(params.Messages, msg.ToParam())
		var results []anthropic.ContentBlockParamUnion
		for _, block := range msg.Content {
			if block.Type != "tool_use" {
				continue
			}
			fmt.Printf("  model asks for %s %s: allowed, running it\n", block.Name, block.Input)
			result := "/var/log/app.log 3.2G" // the tool's work
			if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolResult, Tool: block.Name, Output: result}); err != nil {
				return err
			}
			results = append(results, anthropic.NewToolResultBlock(block.ID, result, false))
		}
		if len(results) == 0 {
			return nil
		}
		params.Messages = append(params.Messages, anthropic.NewUserMessage(results...))
	}
}

func report(rec governance.RunRecord, err error, api *llmhttptest.Server) {
	var v *governance.Violation
	switch {
	case errors.As(err, &v):
		fmt.Printf("  stopped at step %d by policy %q (%s): %s\n", v.StepIndex, v.PolicyID(), v.Reason(), v.Decision.Message)
	case errors.Is(err, llmhttp.ErrMalformed):
		// A response the SDK would read otherwise than stopline did (an
		// unknown kind of tool call, JSON two parsers read differently):
		// refused, never handed to the agent.
		fmt.Println("  a response was refused unread:", err)
	case err != nil:
		fmt.Println("  error:", err)
	}
	fmt.Printf("  run %s ended %s / %s after %d steps, %.1f cents; the provider got %d requests so far\n",
		rec.RunID, rec.Status, rec.TerminationReason, rec.StepCount, rec.TotalCostCents, api.Requests())
	fmt.Printf("  see: stopline show %s --db stopline.db\n", rec.RunID)
}
