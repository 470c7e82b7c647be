package llmhttp_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/llmhttp/llmhttptest"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// startRun starts a governed run under a cost budget of 1 cent.
func startRun(ctx context.Context) *governance.Run {
	snap, err := snapshot.Parse("policy.json", []byte(`{"tenant_id": "acme",
		"thresholds": {"max_cost_cents": 1},
		"policies": [{"id": "cost", "kind": "budget", "params": {"metric": "cost_cents", "threshold": "max_cost_cents"}}]}`), time.Now(), prevention.Builtin())
	if err != nil {
		log.Fatal(err)
	}
	runner, err := governance.NewRunner(memstore.New())
	if err != nil {
		log.Fatal(err)
	}
	run, err := runner.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		log.Fatal(err)
	}
	return run
}

// The one-line integration with the OpenAI SDK. A fake server stands in
// for the API.
func Example() {
	ctx := context.Background()
	srv := llmhttptest.NewServer(llmhttptest.Reply{Text: "Hello!", Usage: llmhttptest.Usage{Input: 12, Output: 3}})
	defer srv.Close()
	run := startRun(ctx)

	prices := llmhttp.Prices{"gpt-4o": {Input: 2.5, Output: 10}} // dollars per million tokens
	client := openai.NewClient(
		option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey("test"),
		option.WithMiddleware(llmhttp.Middleware(run, llmhttp.WithPrices(prices))),
	)
	completion, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "gpt-4o",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(completion.Choices[0].Message.Content)
	rec := run.Record()
	fmt.Printf("%d step, %d tokens, %.4f cents\n", rec.StepCount, rec.TotalTokens, rec.TotalCostCents)
	// Output:
	// Hello!
	// 1 step, 15 tokens, 0.0060 cents
}

// The same line with the Anthropic SDK. The second answer takes the run
// over its budget: the run stops there and the agent gets the violation
// instead of the answer. The third call is refused before it is sent.
func Example_anthropic() {
	ctx := context.Background()
	answer := llmhttptest.Reply{Text: "Hello!", Usage: llmhttptest.Usage{Input: 100, Output: 600}}
	srv := llmhttptest.NewServer(answer, answer, answer)
	defer srv.Close()
	run := startRun(ctx)

	prices := llmhttp.Prices{"claude-sonnet-4-5": {Input: 3, Output: 15}}
	client := anthropic.NewClient(
		aoption.WithBaseURL(srv.URL), aoption.WithAPIKey("test"),
		aoption.WithMiddleware(llmhttp.Middleware(run, llmhttp.WithPrices(prices))),
	)
	for i := 1; i <= 3; i++ {
		_, err := client.Messages.New(ctx, anthropic.MessageNewParams{
			Model: "claude-sonnet-4-5", MaxTokens: 1024,
			Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Say hello"))},
		})
		var v *governance.Violation
		switch {
		case err == nil:
			fmt.Printf("call %d answered, %.2f cents spent\n", i, run.Record().TotalCostCents)
		case errors.Is(err, llmhttp.ErrNotSent):
			fmt.Printf("call %d not sent: the run has ended\n", i)
		case errors.As(err, &v):
			fmt.Printf("call %d: %s stopped the run at step %d (%s)\n", i, v.PolicyID(), v.StepIndex, v.Reason())
		}
	}
	fmt.Println("requests sent:", srv.Requests())
	// Output:
	// call 1 answered, 0.93 cents spent
	// call 2: cost stopped the run at step 1 (budget_exceeded)
	// call 3 not sent: the run has ended
	// requests sent: 2
}
