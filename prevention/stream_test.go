package prevention_test

import (
	"context"
	"encoding/json"
	"errors"
	"regexp"
	"testing"

	"github.com/stopline/stopline/prevention"
)

// contentEngine compiles one content policy over output and input with
// the given patterns.
func contentEngine(t testing.TB, patterns ...string) *prevention.Engine {
	t.Helper()
	p, _ := json.Marshal(map[string]any{"fields": []string{"output", "input"}, "patterns": patterns})
	return compile(t, nil, policy("secrets", "content", string(p)))
}

// sameEvaluation fails unless EvaluateStream with st gives step the
// evaluation Evaluate gives it.
func sameEvaluation(t *testing.T, e *prevention.Engine, st *prevention.Stream, step *prevention.Step) prevention.Evaluation {
	t.Helper()
	want, werr := e.Evaluate(context.Background(), step)
	got, gerr := e.EvaluateStream(context.Background(), step, nil, st)
	if (werr == nil) != (gerr == nil) || got.Decision != want.Decision || len(got.Findings) != len(want.Findings) {
		t.Fatalf("output %q, input %q: EvaluateStream %+v, %v; Evaluate %+v, %v", step.Output, step.Input, got.Decision, gerr, want.Decision, werr)
	}
	return got
}

// TestEvaluateStreamContent: a stream's checks — its text growing, going
// back to the text delivered after a blocked batch, replaced — decide as
// Evaluate does, end-of-text assertions included.
func TestEvaluateStreamContent(t *testing.T) {
	e := contentEngine(t, `(?i)password\s*[:=]`, `BEGIN(?s:.*)END$`, `\b\d{3}-\d{2}-\d{4}\b`)
	st := e.NewStream()
	texts := []string{
		"", "The", "The pass", "The password", "The password is", // a thread through the gap
		"The password is BEGIN x", "The password is BEGIN x\nEND", // blocked: END at the end
		"The password is BEGIN x", "The password is BEGIN x\n", "The password is BEGIN x\nENDING", // back, then past the end: allowed
		"123-45-6789", "123-45-6789x", // another text: in full
		"id 123-45-678", "id 123-45-6789", "id 123-45-67890", "PASSWORD:",
	}
	blocked := 0
	for _, text := range texts {
		s := benchStep(text)
		s.Input = "a prompt"
		if sameEvaluation(t, e, st, s).Decision.Action == prevention.Block {
			blocked++
		}
	}
	if blocked != 4 {
		t.Errorf("%d checks blocked, want 4", blocked)
	}
}

// TestStreamStateFailureEvaluatesInFull: a state that errs or panics is
// no decision: the hook's Evaluate decides, now and for the rest of the
// stream.
func TestStreamStateFailureEvaluatesInFull(t *testing.T) {
	for _, panics := range []bool{false, true} {
		h := &streamHook{panics: panics}
		e, err := prevention.Builtin().Compile(newSnapshot(t, benchThresholds, policy("steps", "budget", `{"metric":"steps","threshold":"max_steps"}`)), prevention.NamedHook{ID: "h", Hook: h})
		if err != nil {
			t.Fatal(err)
		}
		st := e.NewStream()
		for i := range 3 {
			ev, err := e.EvaluateStream(context.Background(), benchStep("text"), nil, st)
			if err != nil || ev.Decision.Action != prevention.Block || ev.Decision.Message != "full" {
				t.Fatalf("panics %v, check %d: %+v, %v", panics, i, ev.Decision, err)
			}
		}
		if h.stateCalls != 1 {
			t.Errorf("panics %v: the state was called %d times, want once", panics, h.stateCalls)
		}
	}
}

// streamHook blocks in Evaluate; its state allows after failing once.
type streamHook struct {
	panics     bool
	stateCalls int
}

func (h *streamHook) Evaluate(context.Context, *prevention.Step) (prevention.Decision, error) {
	return prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonPolicyBlock, Message: "full"}, nil
}

func (h *streamHook) NewStreamState() prevention.StreamState {
	return prevention.HookFunc(func(context.Context, *prevention.Step) (prevention.Decision, error) {
		h.stateCalls++
		if h.panics {
			panic("state")
		}
		return prevention.Allowed(), errors.New("state")
	})
}

// TestEvaluateStreamOtherEngine: a Stream of another engine is not used.
func TestEvaluateStreamOtherEngine(t *testing.T) {
	a, b := contentEngine(t, `secret`), contentEngine(t, `other`)
	st := a.NewStream()
	ev, err := b.EvaluateStream(context.Background(), benchStep("other"), nil, st)
	if err != nil || ev.Decision.Action != prevention.Block {
		t.Fatalf("%+v, %v", ev.Decision, err)
	}
}

// FuzzContentStream checks that a content policy decides every check of
// a stream through EvaluateStream as Evaluate decides it: the output
// grows by pieces of text, goes back to the text two checks before (a
// blocked batch, then its events one by one), is replaced, or the input
// changes; the policy's patterns are a piece the fuzzer writes and two
// unbounded ones with end-of-text assertions.
func FuzzContentStream(f *testing.F) {
	f.Add(`\bab\b`, "xx ab ab\nb", []byte{0, 0, 1, 0, 2, 0, 3, 0})
	f.Add(`(?i)password\s*[:=]`, "my PASSWORD  = no", []byte{0, 0, 0, 1, 0, 0})
	f.Add(`^$`, "\n\n", []byte{0, 2, 0})
	f.Fuzz(func(t *testing.T, piece, text string, ops []byte) {
		if len(piece) > 64 || len(text) > 256 || len(ops) > 64 {
			return
		}
		if _, err := regexp.Compile(piece); err != nil || piece == "" {
			piece = regexp.QuoteMeta(piece + "q")
		}
		e := contentEngine(t, piece, `a.*b$`, `(?m)^x\s*y`)
		st := e.NewStream()
		var outs []string
		out, in, pos := "", "", 0
		for i, op := range ops {
			switch op % 4 {
			case 0:
				n := min(int(op/4%8), len(text)-pos)
				out += text[pos : pos+n]
				pos += n
			case 1:
				if len(outs) >= 2 {
					out = outs[len(outs)-2]
				}
			case 2:
				out = text[min(int(op/4), len(text)):]
			case 3:
				in = text[:min(i, len(text))]
			}
			outs = append(outs, out)
			s := benchStep(out)
			s.Input = in
			sameEvaluation(t, e, st, s)
		}
	})
}
