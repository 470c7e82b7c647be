// Command openai governs an agent built on the official OpenAI Go SDK
// (github.com/openai/openai-go/v3) with one line: the SDK's middleware. One
// client, created once, governs every run: each call is a step of the run
// its context carries (governance.ContextWithRun).
//
// It needs no network and no API key: a local fake server speaks the
// OpenAI wire format (JSON and server-sent events). Two runs:
//
//  1. a conversation under a cost budget, stopped mid-conversation by the
//     answer that spends past the budget; the next call is refused
//     before it is sent;
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

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

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
var prices = llmhttp.Prices{"gpt-4o": {Input: 2.5, CachedInput: 1.25, Output: 10}}

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
	api := llmhttptest.NewServer() // stands in for api.openai.com
	defer api.Close()
	client := openai.NewClient(
		option.WithBaseURL(api.URL+"/v1"), option.WithAPIKey("no key needed"),
		option.WithMiddleware(llmhttp.ContextMiddleware(llmhttp.WithPrices(prices))), // the one line
	)

	fmt.Println("Run 1: a conversation under a budget of 5 cents")
	for i := 0; i < 4; i++ { // each answer: 2000 tokens in, 1000 out = 1.5 cents
		api.Push(llmhttptest.Reply{Text: fmt.Sprintf("Answer %d, streamed word by word.", i+1), Usage: llmhttptest.Usage{Input: 2000, Output: 1000}})
	}
	var first *governance.Run
	rec, err := runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		first, ctx = run, governance.ContextWithRun(ctx, run)
		for turn := 1; ; turn++ {
			if err := chat(ctx, client, run, turn); err != nil {
				return err
			}
		}
	})
	report(rec, err, api)
	if _, err := client.Chat.Completions.New(governance.ContextWithRun(ctx, first), question(5)); errors.Is(err, llmhttp.ErrNotSent) {
		fmt.Printf("  asking once more: refused before sending; the provider still got %d requests\n", api.Requests())
	}

	fmt.Println("\nRun 2: an agent with tools; only \"search\" is allowed")
	api.Push(
		llmhttptest.Reply{ToolCalls: []llmhttptest.ToolCall{{Name: "search", Arguments: `{"query":"largest files in /var"}`}}, Usage: llmhttptest.Usage{Input: 300, Output: 20}},
		llmhttptest.Reply{ToolCalls: []llmhttptest.ToolCall{{Name: "shell", Arguments: `{"command":"rm -rf /var/log"}`}}, Usage: llmhttptest.Usage{Input: 400, Output: 20}},
	)
	rec, err = runner.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		return toolAgent(governance.ContextWithRun(ctx, run), client)
	})
	report(rec, err, api)
}

func question(turn int) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{
		Model:         "gpt-4o",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage(fmt.Sprintf("Question %d?", turn))},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}, // usage, for the budget
	}
}

// chat asks one question and prints the answer as it streams.
func chat(ctx context.Context, client openai.Client, run *governance.Run, turn int) error {
	stream := client.Chat.Completions.NewStreaming(ctx, question(turn))
	defer stream.Close()
	fmt.Printf("  turn %d: ", turn)
	for stream.Next() {
		if c := stream.Current(); len(c.Choices) > 0 {
			fmt.Print(c.Choices[0].Delta.Content)
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
func toolAgent(ctx context.Context, client openai.Client) error {
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Free some disk space.")},
		Tools: []openai.ChatCompletionToolUnionParam{
			openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "search"}),
			openai.ChatCompletionFunctionTool(openai.FunctionDefinitionParam{Name: "shell"}),
		},
	}
	for {
		completion, err := client.Chat.Completions.New(ctx, params)
		if err != nil {
			return err // a blocked tool call arrives here, before the tool runs
		}
		msg := completion.Choices[0].Message
		if len(msg.ToolCalls) == 0 {
			fmt.Println("  model:", msg.Content)
			return nil
		}
		params.Messages = append(params.Messages, msg.ToParam())
		// The middleware governed each tool call as the response arrived:
		// the agent runs it and reports its result.
		run, _ := governance.RunFromContext(ctx)
		for _, call := range msg.ToolCalls {
			fmt.Printf("  model asks for %s %s: allowed, running it\n", call.Function.Name, call.Function.Arguments)
			result := "/var/log/app.log 3.2G" // the tool's work
			if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolResult, Tool: call.Function.Name, Output: result}); err != nil {
				return err
			}
			params.Messages = append(params.Messages, openai.ToolMessage(result, call.ID))
		}
	}
}

func report(rec governance.RunRecord, err error, api *llmhttptest.Server) {
	var v *governance.Violation
	switch {
	case errors.Is(err, llmhttp.ErrNotSent):
		fmt.Println("  a call was refused before it was sent:", err)
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
