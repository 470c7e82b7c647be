package llmhttp_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// eventReader returns one event per Read, as a model streaming token by
// token over the network does.
type eventReader struct{ events []string }

func (r *eventReader) Read(p []byte) (int, error) {
	if len(r.events) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.events[0])
	r.events[0] = r.events[0][n:]
	if r.events[0] == "" {
		r.events = r.events[1:]
	}
	return n, nil
}

func chatEvents(n int) []string {
	ev := make([]string, 0, n+2)
	for i := 0; i < n; i++ {
		ev = append(ev, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":"word "},"finish_reason":null}]}`+"\n\n")
	}
	ev = append(ev, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":1000,"total_tokens":1010}}`+"\n\n", "data: [DONE]\n\n")
	return ev
}

type memTransport struct {
	events   []string
	oneByOne bool
}

func (m memTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var body io.Reader = strings.NewReader(strings.Join(m.events, ""))
	if m.oneByOne {
		body = &eventReader{events: append([]string(nil), m.events...)}
	}
	return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"text/event-stream"}},
		Body: io.NopCloser(body), Request: req}, nil
}

// BenchmarkStream measures a streamed response of n text events read
// through the Governor (one check per event when events arrive one at a
// time, one per batch when they arrive together) against the same
// stream read directly.
func BenchmarkStream(b *testing.B) {
	snap, err := snapshot.Parse("p.json", []byte(policy(1e9)), time.Now(), prevention.Builtin())
	if err != nil {
		b.Fatal(err)
	}
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	for _, n := range []int{250, 1000, 4000} {
		events := chatEvents(n)
		for _, mode := range []string{"direct", "governed-burst", "governed-per-event", "governed-per-64B"} {
			b.Run(fmt.Sprintf("events=%d/%s", n, mode), func(b *testing.B) {
				r, _ := governance.NewRunner(memstore.New())
				run, _ := r.Start(ctx, governance.StartOptions{Snapshot: snap})
				var rt http.RoundTripper = memTransport{events: events, oneByOne: mode != "governed-burst"}
				if mode != "direct" {
					opts := []llmhttp.Option{llmhttp.WithPrices(prices)}
					if mode == "governed-per-64B" {
						opts = append(opts, llmhttp.WithStreamCheckBytes(64))
					}
					rt = llmhttp.Transport(run, rt, opts...)
				}
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					req, _ := http.NewRequest("POST", "http://model.test/v1/chat/completions", bytes.NewReader(body))
					res, err := rt.RoundTrip(req)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := io.Copy(io.Discard, res.Body); err != nil {
						b.Fatal(err)
					}
					res.Body.Close()
				}
			})
		}
	}
}
