package llmhttp_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/llmhttp/llmhttptest"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

// TestOneClientManyRuns: one SDK client, created once with the context
// middleware, governs two runs in parallel, each call under the run its
// context carries; a call without a run is refused unsent.
func TestOneClientManyRuns(t *testing.T) {
	st := memstore.New()
	r, _ := governance.NewRunner(st, governance.WithKinds(testKinds))
	snap := mustParse(t, policy(1000))
	runs := make([]*governance.Run, 2)
	for i := range runs {
		runs[i], _ = r.Start(ctx, governance.StartOptions{Snapshot: snap})
	}
	const calls = 6
	var replies []llmhttptest.Reply
	for range 2 * calls {
		replies = append(replies, llmhttptest.Reply{Text: "fine", Usage: llmhttptest.Usage{Input: 10, Output: 5}})
	}
	srv := llmhttptest.NewServer(replies...)
	defer srv.Close()

	oc := openai.NewClient(option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey("test"), option.WithMaxRetries(0),
		option.WithMiddleware(llmhttp.ContextMiddleware(llmhttp.WithPrices(prices))))
	ac := anthropic.NewClient(aoption.WithBaseURL(srv.URL), aoption.WithAPIKey("test"), aoption.WithMaxRetries(0),
		aoption.WithMiddleware(llmhttp.ContextMiddleware(llmhttp.WithPrices(prices))))

	var wg sync.WaitGroup
	for i, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rctx := governance.ContextWithRun(ctx, run)
			for range calls / 2 {
				if _, err := oc.Chat.Completions.New(rctx, chatParams("hello")); err != nil {
					t.Errorf("run %d, openai: %v", i, err)
				}
				if _, err := ac.Messages.New(rctx, anthropic.MessageNewParams{Model: "claude-sonnet-4-5", MaxTokens: 100,
					Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hello"))}}); err != nil {
					t.Errorf("run %d, anthropic: %v", i, err)
				}
			}
		}()
	}
	wg.Wait()
	for i, run := range runs {
		recs, _ := st.Records(ctx, "acme", run.ID())
		n := 0
		for _, rec := range recs {
			if rec.Kind == trace.KindStep {
				n++
			}
		}
		if n != calls {
			t.Errorf("run %d recorded %d steps, want %d", i, n, calls)
		}
		if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
			t.Error(err)
		}
	}

	// No run in the context: refused before it is sent.
	before := srv.Requests()
	_, err := oc.Chat.Completions.New(ctx, chatParams("hello"))
	if !errors.Is(err, llmhttp.ErrNotSent) || !errors.Is(err, governance.ErrNoRun) {
		t.Errorf("a call without a run: %v", err)
	}
	if srv.Requests() != before {
		t.Error("a call without a run reached the provider")
	}
	// Unless told to pass such calls through.
	pass := openai.NewClient(option.WithBaseURL(srv.URL+"/v1"), option.WithAPIKey("test"), option.WithMaxRetries(0),
		option.WithMiddleware(llmhttp.ContextMiddleware(llmhttp.WithPassThroughWithoutRun())))
	srv.Push(llmhttptest.Reply{Text: "ungoverned"})
	if _, err := pass.Chat.Completions.New(ctx, chatParams("hello")); err != nil {
		t.Errorf("pass-through: %v", err)
	}
}

// TestBoundClientRefusesAnotherRun: a client made for one run refuses a
// call whose context carries another.
func TestBoundClientRefusesAnotherRun(t *testing.T) {
	e := newEnv(t, policy(1000), llmhttptest.Reply{Text: "x"})
	other, _ := governance.NewRunner(memstore.New(), governance.WithKinds(testKinds))
	run2, _ := other.Start(ctx, governance.StartOptions{Snapshot: mustParse(t, policy(1000))})
	_, err := e.openai().Chat.Completions.New(governance.ContextWithRun(ctx, run2), chatParams("hello"))
	if !errors.Is(err, llmhttp.ErrNotSent) {
		t.Errorf("another run's context: %v", err)
	}
	if e.srv.Requests() != 0 {
		t.Error("the call reached the provider")
	}
}

func mustParse(t *testing.T, doc string) *snapshot.PolicySnapshot {
	t.Helper()
	snap, err := snapshot.Parse("policy.json", []byte(doc), time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC), testKinds)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}
