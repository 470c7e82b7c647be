package llmhttp_test

import (
	"bytes"
	"encoding/json"
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

// wordTokens are the tokens of BenchmarkStreamContentPolicy's answer:
// prose with numbers, punctuation and line breaks, so that a content
// pattern's first characters (digits, "p", "A") keep turning up.
var wordTokens = []string{"The", " quarterly", " report", " lists", " 42", " shipments", " to", " 7", " regions", ";",
	" totals", " are", " in", " table", " 3", "-B", ".", " People", " asked", " about", " passwords", " and", " AWS", " keys", ".\n"}

// textEvents is a chat stream of n content events carrying wordTokens
// in turn, then its final chunk and [DONE].
func textEvents(n int) []string {
	ev := make([]string, 0, n+2)
	for i := range n {
		tok, _ := json.Marshal(wordTokens[i%len(wordTokens)])
		ev = append(ev, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{"content":`+string(tok)+`},"finish_reason":null}]}`+"\n\n")
	}
	ev = append(ev, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":1000,"total_tokens":1010}}`+"\n\n", "data: [DONE]\n\n")
	return ev
}

// BenchmarkStreamContentPolicy reads the same streamed answer of n
// events, one event per read as a model streams it (so one check per
// event), through a run whose policies have no content policy and
// through one whose policies add a content policy of three patterns,
// two of them unbounded, alternating the two in each iteration. It
// reports both times per stream and their ratio (the goal: at most 2).
func BenchmarkStreamContentPolicy(b *testing.B) {
	base := []string{
		`{"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}}`,
		`{"id":"no-shell","kind":"tool_denylist","params":{"deny":["shell"]}}`,
	}
	content := `{"id":"secrets","kind":"content","params":{"fields":["output"],"patterns":[` +
		`"\\b\\d{3}-\\d{2}-\\d{4}\\b","(?i)password\\s*[:=]","-----BEGIN [A-Z ]*PRIVATE KEY-----(?s:.*)-----END"]}}`
	mk := func(pols []string) *snapshot.PolicySnapshot {
		src := fmt.Sprintf(`{"tenant_id":"acme","thresholds":{"max_cost_cents":1e9},"policies":[%s]}`, strings.Join(pols, ","))
		snap, err := snapshot.Parse("p.json", []byte(src), time.Now(), prevention.Builtin())
		if err != nil {
			b.Fatal(err)
		}
		return snap
	}
	without, with := mk(base), mk(append(base, content))
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	for _, n := range []int{1000, 4000, 16000} {
		events := textEvents(n)
		b.Run(fmt.Sprintf("events=%d", n), func(b *testing.B) {
			stream := func(snap *snapshot.PolicySnapshot) time.Duration {
				r, _ := governance.NewRunner(memstore.New())
				run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
				if err != nil {
					b.Fatal(err)
				}
				rt := llmhttp.Transport(run, memTransport{events: events, oneByOne: true}, llmhttp.WithPrices(prices))
				req, _ := http.NewRequest("POST", "http://model.test/v1/chat/completions", bytes.NewReader(body))
				start := time.Now()
				res, err := rt.RoundTrip(req)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, res.Body); err != nil {
					b.Fatal(err)
				}
				res.Body.Close()
				d := time.Since(start)
				if run.Ended() {
					b.Fatal("the run ended: a policy blocked the answer")
				}
				return d
			}
			var tw, tc time.Duration
			for i := 0; b.Loop(); i++ {
				if i%2 == 0 {
					tw += stream(without)
					tc += stream(with)
				} else {
					tc += stream(with)
					tw += stream(without)
				}
			}
			n := float64(b.N)
			b.ReportMetric(tw.Seconds()*1e3/n, "ms-without/op")
			b.ReportMetric(tc.Seconds()*1e3/n, "ms-with/op")
			b.ReportMetric(float64(tc)/float64(tw), "ratio")
		})
	}
}
