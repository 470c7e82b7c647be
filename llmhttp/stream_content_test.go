package llmhttp_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/llmhttp"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// streamPatterns are the content patterns of
// TestStreamContentEndsAtTheEvent: bounded and unbounded, with
// assertions at the start and at the end of the text.
var streamPatterns = []string{`(?i)password\s*[:=]`, `\b\d{3}-\d{2}-\d{4}\b`, `BEGIN(?s:.*)END$`, `(?m)^secret$`, `x\z`, `\Aé+a`}

var streamPieces = []string{"pass", "word", "Pass", " ", ":", "=", "1", "23", "-", "\n", "secret", "BEGIN", "END", "x", "é", "a", "45", "6789"}

// TestStreamContentEndsAtTheEvent: a streamed answer checked by content
// policies ends exactly before the first event after which the text
// matches a pattern, as a full scan of the text after each event finds
// it, whether events arrive one per read or together (a batch checked at
// once, then event by event when it is blocked: a batch whose whole text
// passes is delivered, even if a pattern anchored at the end matched the
// text after an event inside it), and with two choices (whose text does
// not grow by appends: evaluated in full).
func TestStreamContentEndsAtTheEvent(t *testing.T) {
	res := make([]*regexp.Regexp, len(streamPatterns))
	for i, p := range streamPatterns {
		res[i] = regexp.MustCompile(p)
	}
	pj, _ := json.Marshal(streamPatterns)
	src := fmt.Sprintf(`{"tenant_id":"acme","thresholds":{"max_cost_cents":1e9},"policies":[
		{"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}},
		{"id":"secrets","kind":"content","params":{"patterns":%s}}]}`, pj)
	snap, err := snapshot.Parse("p.json", []byte(src), time.Now(), prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true}`)
	rng := rand.New(rand.NewPCG(7, 11))
	blocked := 0
	for trial := range 300 {
		choices := 1 + trial%3/2 // two choices in a third of the trials
		oneByOne := trial%2 == 0
		n := choices + rng.IntN(24) // every choice has an event before the final one
		var events []string
		texts := make([]strings.Builder, choices)
		seen := 0 // choices seen so far
		var after []string
		var matches []bool
		for i := range n {
			piece := streamPieces[rng.IntN(len(streamPieces))]
			c := i % choices
			tok, _ := json.Marshal(piece)
			events = append(events, fmt.Sprintf(`data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[{"index":%d,"delta":{"content":%s},"finish_reason":null}]}`+"\n\n", c, tok))
			texts[c].WriteString(piece)
			seen = max(seen, c+1)
			after = append(after, joinTexts(texts[:seen]))
			m := false
			for _, re := range res {
				m = m || re.MatchString(after[i])
			}
			matches = append(matches, m)
		}
		// One by one, each event is checked; together, the whole batch is,
		// then, if it is blocked, each event in turn.
		end, want := -1, after[n-1]
		if oneByOne || matches[n-1] {
			for i, m := range matches {
				if m {
					end, want = i, ""
					if i > 0 {
						want = after[i-1]
					}
					break
				}
			}
		}
		var fin []string
		for c := range choices {
			fin = append(fin, fmt.Sprintf(`{"index":%d,"delta":{},"finish_reason":"stop"}`, c))
		}
		events = append(events, `data: {"id":"c","object":"chat.completion.chunk","model":"gpt-4o","choices":[`+strings.Join(fin, ",")+`]}`+"\n\n", "data: [DONE]\n\n")

		st := memstore.New()
		r, _ := governance.NewRunner(st)
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		rt := llmhttp.Transport(run, memTransport{events: events, oneByOne: oneByOne}, llmhttp.WithPrices(prices))
		req, _ := http.NewRequest("POST", "http://model.test/v1/chat/completions", bytes.NewReader(body))
		resp, err := rt.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		_, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		steps, _ := st.Contents(ctx, "acme", run.ID())
		name := fmt.Sprintf("trial %d (%d choices, one by one %v, %q)", trial, choices, oneByOne, events[:n])
		if len(steps) != 1 {
			t.Fatalf("%s: %d steps", name, len(steps))
		}
		var v *governance.Violation
		if end >= 0 {
			blocked++
			if !errors.As(rerr, &v) || v.PolicyID() != "secrets" || steps[0].Output != want || steps[0].Metadata[llmhttp.MetaStream] != "blocked" {
				t.Fatalf("%s: read error %v, recorded %q (%s); want the violation at event %d, %q delivered", name, rerr, steps[0].Output, steps[0].Metadata[llmhttp.MetaStream], end, want)
			}
		} else if rerr != nil || steps[0].Output != want || steps[0].Metadata[llmhttp.MetaStream] != "complete" {
			t.Fatalf("%s: read error %v, recorded %q; want %q complete", name, rerr, steps[0].Output, want)
		}
	}
	if blocked < 50 || blocked > 250 {
		t.Errorf("%d of 300 streams blocked: the cases do not test both outcomes", blocked)
	}
}

// joinTexts is the accumulated text of the choices, as a step's output.
func joinTexts(bs []strings.Builder) string {
	parts := make([]string, len(bs))
	for i := range bs {
		parts[i] = bs[i].String()
	}
	return strings.Join(parts, "\n")
}
