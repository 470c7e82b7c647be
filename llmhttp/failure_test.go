package llmhttp_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/llmhttp/llmhttptest"
	"github.com/stopline/stopline/prevention"
)

func TestMalformed(t *testing.T) {
	t.Run("json body", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Raw: `{"id":"chatcmpl-1","choices":[{"message":`})
		_, err := chatCall(e, "hi")
		if !errors.Is(err, llmhttp.ErrMalformed) {
			t.Fatalf("error %v, want ErrMalformed", err)
		}
		s := e.steps()
		if len(s) != 1 || s[0].StepType != prevention.StepLLMResponse || s[0].Metadata[llmhttp.MetaBody] != "malformed" || s[0].Metadata[llmhttp.MetaUsage] != "missing" {
			t.Errorf("steps: %v", s)
		}
		if e.run.Ended() {
			t.Error("a malformed response stopped the run")
		}
	})
	t.Run("json of another shape", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Raw: `{"id":"msg_1","content":"not a list"}`})
		if _, err := messagesCall(e, "hi"); !errors.Is(err, llmhttp.ErrMalformed) {
			t.Fatalf("error %v, want ErrMalformed", err)
		}
	})
	t.Run("sse event", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Events: []string{
			"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-sonnet-4-5\",\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n",
			"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n",
			"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\n\n",
			"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
		}})
		got, err := messagesStream(e, "hi")
		if !errors.Is(err, llmhttp.ErrMalformed) {
			t.Fatalf("error %v, want ErrMalformed", err)
		}
		s := e.steps()
		if got.text != "Hello" || len(s) != 1 || s[0].Output != "Hello" || s[0].Metadata[llmhttp.MetaStream] != "malformed" ||
			s[0].Tokens != 8 || s[0].Metadata[llmhttp.MetaUsage] != "partial" {
			t.Errorf("agent got %q; steps: %v", got.text, s)
		}
	})
}

// TestTruncatedStream: a stream that ends or drops before its final event
// is recorded with the text delivered, and the error surfaces.
func TestTruncatedStream(t *testing.T) {
	for _, d := range drivers {
		if !d.stream {
			continue
		}
		for _, drop := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s drop=%v", d.name, drop), func(t *testing.T) {
				// Cut after the first text chunk ("Hello ") is sent.
				cut := map[string]int{"chat_completions": 2, "responses": 5, "messages": 4}[d.api]
				e := newEnv(t, policy(100), llmhttptest.Reply{Text: "Hello there world", CutAfter: cut, Drop: drop, Usage: llmhttptest.Usage{Input: 3, Output: 3}})
				got, err := d.call(e, "hi")
				if !errors.Is(err, llmhttp.ErrTruncated) {
					t.Fatalf("error %v, want ErrTruncated", err)
				}
				s := e.steps()
				if got.text != "Hello " || len(s) != 1 || s[0].Output != "Hello " || s[0].Metadata[llmhttp.MetaStream] != "truncated" || s[0].Metadata[llmhttp.MetaError] == "" {
					t.Errorf("agent got %q; steps: %v", got.text, s)
				}
				if e.run.Ended() {
					t.Error("a truncated stream stopped the run")
				}
			})
		}
	}
}

// TestBurstStreamTruncatesAtTheRightEvent: events that arrive together are
// checked together, and again one by one when that check blocks.
func TestBurstStreamTruncatesAtTheRightEvent(t *testing.T) {
	for _, d := range drivers {
		if !d.stream {
			continue
		}
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{
				Chunks: []string{"a ", "b ", "c ", "123-45-", "6789", " d"}, Text: "a b c 123-45-6789 d", Burst: true,
			})
			got, err := d.call(e, "hi")
			var v *governance.Violation
			if !errors.As(err, &v) || got.text != "a b c 123-45-" {
				t.Fatalf("agent got %q, %v", got.text, err)
			}
			if s := e.steps(); len(s) != 1 || s[0].Output != "a b c 123-45-" {
				t.Errorf("steps: %v", s)
			}
		})
	}
}

// TestStreamCheckBytes: checks batched by text size still end the stream
// exactly before the offending event.
func TestStreamCheckBytes(t *testing.T) {
	e := newEnv(t, policy(100), llmhttptest.Reply{
		Chunks: []string{"a ", "b ", "c ", "123-45-", "6789", " d"}, Text: "a b c 123-45-6789 d", Delay: time.Millisecond,
	})
	e.opts = append(e.opts, llmhttp.WithStreamCheckBytes(64))
	got, err := chatStream(e, "hi")
	var v *governance.Violation
	if !errors.As(err, &v) || got.text != "a b c 123-45-" {
		t.Fatalf("agent got %q, %v", got.text, err)
	}
	if s := e.steps(); len(s) != 1 || s[0].Output != "a b c 123-45-" {
		t.Errorf("steps: %v", s)
	}
}

func TestStreamWithoutUsage(t *testing.T) {
	e := newEnv(t, policy(100), llmhttptest.Reply{Text: "Hi there", Usage: llmhttptest.Usage{Input: 3, Output: 2}})
	s := e.openai().Chat.Completions.NewStreaming(ctx, chatParams("hi")) // no include_usage
	for s.Next() {
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	st := e.steps()
	if len(st) != 1 || st[0].Tokens != 0 || st[0].Metadata[llmhttp.MetaUsage] != "missing" || st[0].Output != "Hi there" {
		t.Errorf("steps: %v", st)
	}
}

func TestStreamClosedEarly(t *testing.T) {
	e := newEnv(t, policy(100), llmhttptest.Reply{Text: "one two three four", Usage: llmhttptest.Usage{Input: 3, Output: 4}, Delay: 20 * time.Millisecond})
	s := e.anthropic().Messages.NewStreaming(ctx, messagesParams("hi"))
	text := ""
	for s.Next() {
		ev := s.Current()
		if ev.Type == "content_block_delta" {
			text += ev.Delta.Text
			break // the agent has seen enough
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	st := e.steps()
	if len(st) != 1 || st[0].Metadata[llmhttp.MetaStream] != "closed" || st[0].Output != text || text != "one " {
		t.Errorf("agent read %q; steps: %v", text, st)
	}
}

func TestOversized(t *testing.T) {
	big := strings.Repeat("x", 4096)
	t.Run("fails closed", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Text: big})
		e.opts = append(e.opts, llmhttp.WithMaxBodyBytes(1024))
		if _, err := chatCall(e, "hi"); !errors.Is(err, llmhttp.ErrTooLarge) {
			t.Fatalf("error %v, want ErrTooLarge", err)
		}
		if s := e.steps(); len(s) != 1 || s[0].Metadata[llmhttp.MetaBody] != "oversized" {
			t.Errorf("steps: %v", s)
		}
	})
	t.Run("passes through", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Text: big})
		e.opts = append(e.opts, llmhttp.WithMaxBodyBytes(1024), llmhttp.WithOversizedPassThrough())
		got, err := chatCall(e, "hi")
		if err != nil || got.text != big {
			t.Fatalf("agent got %d bytes, %v", len(got.text), err)
		}
		if s := e.steps(); len(s) != 1 || s[0].Metadata[llmhttp.MetaBody] != "oversized" || s[0].Output != "" {
			t.Errorf("steps: %v", s)
		}
	})
	t.Run("stream event", func(t *testing.T) {
		e := newEnv(t, policy(100), llmhttptest.Reply{Chunks: []string{"ok ", big}, Text: "ok " + big})
		e.opts = append(e.opts, llmhttp.WithMaxBodyBytes(1024))
		got, err := chatStream(e, "hi")
		if !errors.Is(err, llmhttp.ErrMalformed) || got.text != "ok " {
			t.Fatalf("agent got %q, %v", got.text, err)
		}
		if s := e.steps(); len(s) != 1 || s[0].Metadata[llmhttp.MetaStream] != "malformed" || s[0].Output != "ok " {
			t.Errorf("steps: %v", s)
		}
	})
}

// TestConcurrentCallsOnOneRun: calls at once, whole and streamed, each
// recorded once, the chain intact. Run it with -race.
func TestConcurrentCallsOnOneRun(t *testing.T) {
	const workers, calls = 8, 4
	var replies []llmhttptest.Reply
	for i := 0; i < workers*calls; i++ {
		replies = append(replies, llmhttptest.Reply{Text: "answer number " + fmt.Sprint(i), Usage: llmhttptest.Usage{Input: 100, Output: 10}})
	}
	e := newEnv(t, policy(1000), replies...)
	e.opts = []llmhttp.Option{llmhttp.WithPrices(llmhttp.Prices{"gpt-4o": {Input: 2.5, Output: 10}, "claude-sonnet-4-5": {Input: 2.5, Output: 10}})}
	var wg sync.WaitGroup
	errs := make(chan error, workers*calls)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < calls; i++ {
				d := drivers[(w+i)%len(drivers)]
				if _, err := d.call(e, "q"); err != nil {
					errs <- err
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	st := e.steps()
	rec := e.run.Record()
	if len(st) != workers*calls || rec.TotalTokens != workers*calls*110 || !near(rec.TotalCostCents, float64(workers*calls)*0.035) {
		t.Errorf("%d steps, %d tokens, %v cents", len(st), rec.TotalTokens, rec.TotalCostCents)
	}
}

// TestRequestsUnaltered: the provider receives the same bytes with and
// without the middleware.
func TestRequestsUnaltered(t *testing.T) {
	e := newEnv(t, policy(100), llmhttptest.Reply{Text: "a"}, llmhttptest.Reply{Text: "b"})
	if _, err := chatCall(e, "same question"); err != nil {
		t.Fatal(err)
	}
	plain := openai.NewClient(optionsWithout(e)...)
	if _, err := plain.Chat.Completions.New(ctx, chatParams("same question")); err != nil {
		t.Fatal(err)
	}
	b := e.srv.Bodies()
	if !bytes.Equal(b[0], b[1]) {
		t.Errorf("governed request body\n%s\ndiffers from\n%s", b[0], b[1])
	}
}

// TestClientAndTransport: any HTTP client, through Client.
func TestClientAndTransport(t *testing.T) {
	e := newEnv(t, policy(100), llmhttptest.Reply{Text: "hello", Usage: llmhttptest.Usage{Input: 4, Output: 1}})
	hc := llmhttp.Client(e.run, llmhttp.WithPrices(prices))
	post := func() (*http.Response, error) {
		return hc.Post(e.srv.URL+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}`))
	}
	res, err := post()
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !strings.Contains(string(body), `"hello"`) {
		t.Errorf("body %s", body)
	}
	if s := e.steps(); len(s) != 1 || s[0].Tokens != 5 || s[0].Input != "hi" {
		t.Errorf("steps: %v", e.steps())
	}
	e.run.Finish(ctx)
	_, err = post()
	var ue *url.Error
	if !errors.As(err, &ue) || !errors.Is(err, llmhttp.ErrNotSent) || e.srv.Requests() != 1 {
		t.Errorf("after the run ended: %v, %d requests", err, e.srv.Requests())
	}
	if _, err := llmhttp.New(e.run, llmhttp.WithMaxBodyBytes(0)); err == nil {
		t.Error("New accepted a zero cap")
	}
}

func TestPricesLookup(t *testing.T) {
	p := llmhttp.Prices{
		"gpt-4o":            {Input: 1},
		"gpt-4o-mini":       {Input: 2},
		"claude-sonnet-4-5": {Input: 3},
		"claude-sonnet-4":   {Input: 4},
		"o*":                {Input: 5},
		"o3*":               {Input: 6},
	}
	tests := []struct {
		model string
		want  float64 // 0: unpriced
	}{
		{"gpt-4o", 1},
		{"gpt-4o-2024-08-06", 1},
		{"gpt-4o-mini-2024-07-18", 2},
		{"gpt-4o-audio-preview", 0},
		{"claude-sonnet-4-5-20250929", 3},
		{"claude-sonnet-4-5", 3},
		{"claude-sonnet-4-20250514", 4},
		{"claude-sonnet-4-latest", 4},
		{"o3-mini", 6},
		{"o1", 5},
		{"gpt-4", 0},
		{"", 0},
	}
	for _, tc := range tests {
		got, ok := p.Lookup(tc.model)
		if ok != (tc.want != 0) || got.Input != tc.want {
			t.Errorf("Lookup(%q) = %v, %v; want %v", tc.model, got, ok, tc.want)
		}
	}
}

// TestRequestBodies: a body without GetBody is read and replayed; one over
// the cap goes through whole, uninspected.
func TestRequestBodies(t *testing.T) {
	for _, max := range []int64{llmhttp.DefaultMaxBodyBytes, 32} {
		t.Run(fmt.Sprint(max), func(t *testing.T) {
			e := newEnv(t, policy(100), llmhttptest.Reply{Text: "ok", Usage: llmhttptest.Usage{Input: 4, Output: 1}})
			const body = `{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"look"},{"type":"text","text":"here"}]}]}`
			req, _ := http.NewRequest("POST", e.srv.URL+"/v1/chat/completions", io.NopCloser(strings.NewReader(body)))
			req.GetBody = nil
			rt := llmhttp.Transport(e.run, nil, llmhttp.WithPrices(prices), llmhttp.WithMaxBodyBytes(max), llmhttp.WithOversizedPassThrough())
			res, err := rt.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if got := string(e.srv.Bodies()[0]); got != body {
				t.Errorf("server got %s", got)
			}
			s := e.steps()
			if max == 32 {
				// Neither the request nor the response was inspected.
				if len(s) != 1 || s[0].Input != "" || s[0].Metadata[llmhttp.MetaBody] != "oversized" {
					t.Errorf("steps: %v", s)
				}
				return
			}
			if len(s) != 1 || s[0].Model != "gpt-4o" || s[0].Input != "look\nhere" || s[0].Tokens != 5 {
				t.Errorf("steps: %v", s)
			}
		})
	}
}

// TestGzipResponse: a compressed body is inspected decompressed and
// passed on as it came.
func TestGzipResponse(t *testing.T) {
	e := newEnv(t, policy(100))
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	io.WriteString(zw, `{"id":"chatcmpl-1","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"zipped"},"finish_reason":"stop"}],"usage":{"prompt_tokens":2,"completion_tokens":1,"total_tokens":3}}`)
	zw.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Encoding", "gzip")
		w.Write(zipped.Bytes())
	}))
	defer srv.Close()
	rt := llmhttp.Transport(e.run, &http.Transport{DisableCompression: true})
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o","messages":[]}`))
	res, err := rt.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if !bytes.Equal(got, zipped.Bytes()) {
		t.Error("body altered")
	}
	if s := e.steps(); len(s) != 1 || s[0].Output != "zipped" || s[0].Tokens != 3 {
		t.Errorf("steps: %v", s)
	}
}
