package governance_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

// The hostile-input suite: what an agent, a hook or a Go caller can send
// that is too big, not UTF-8, not a finite number, nested too deep, or
// never returns. Each must be refused with a clear error or recorded in a
// documented, bounded, verifiable form; the run never fails open and its
// chain always verifies. Runs on the in-memory store and on SQLite.

// hostileRun starts a run of doc on a fresh store of kind sk.
func hostileRun(t *testing.T, open func(testing.TB) governance.Store, doc string, opts ...governance.Option) (governance.Store, *governance.Runner, *governance.Run) {
	t.Helper()
	st := open(t)
	r, _ := newRunner(t, st, opts...)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, doc)})
	if err != nil {
		t.Fatal(err)
	}
	return st, r, run
}

func mustVerify(t *testing.T, st governance.Store, runID string) {
	t.Helper()
	if _, err := governance.VerifyRun(ctx, st, "acme", runID); err != nil {
		t.Errorf("VerifyRun: %v", err)
	}
	if _, err := governance.Explain(ctx, st, "acme", runID, t0.Add(time.Hour)); err != nil {
		t.Errorf("Explain: %v", err)
	}
}

// TestHostileOversizedOutput: policies see the whole text; what is stored
// is cut to WithMaxContentBytes at a character boundary, and the step's
// metadata says which fields were cut.
func TestHostileOversizedOutput(t *testing.T) {
	const max = 1024
	doc := `{"tenant_id":"acme","thresholds":{"x":1},"policies":[
		{"id":"no-secret","kind":"content","params":{"fields":["output"],"patterns":["SECRET-[0-9]+"]}}]}`
	for _, sk := range stores {
		t.Run(sk.name, func(t *testing.T) {
			st, _, run := hostileRun(t, sk.open, doc, governance.WithMaxContentBytes(max))
			// Allowed: 1 MiB of two- and three-byte characters, cut.
			in := governance.StepInput{Type: prevention.StepLLMResponse,
				Input: strings.Repeat("€", 5000), Output: strings.Repeat("é", 1<<19), Metadata: map[string]string{"k": "v"}}
			if _, err := run.Step(ctx, in); err != nil {
				t.Fatal(err)
			}
			// Blocked by what lies beyond the cap: the policy saw it.
			in.Output = strings.Repeat("é", 1<<19) + " SECRET-42"
			_, err := run.Step(ctx, in)
			var v *governance.Violation
			if !errors.As(err, &v) || v.PolicyID() != "no-secret" {
				t.Fatalf("a secret past the storage cap: got %v, want the content policy to block", err)
			}
			cs, err := st.Contents(ctx, "acme", run.ID())
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 2; i++ {
				c := cs[i]
				if len(c.Input) > max || len(c.Output) > max || !utf8.ValidString(c.Input) || !utf8.ValidString(c.Output) ||
					!strings.HasPrefix(strings.Repeat("é", 1<<19), c.Output) || len(c.Output) < max-2 {
					t.Errorf("step %d stored %d bytes of input, %d of output", i, len(c.Input), len(c.Output))
				}
				if c.Metadata["stopline.truncated"] != "input,output" || c.Metadata["k"] != "v" {
					t.Errorf("step %d metadata %v: want it to say input and output were cut", i, c.Metadata)
				}
			}
			mustVerify(t, st, run.ID())
		})
	}
}

// TestHostileOversizedFields: names and messages that would not fit a
// record are refused (a model or tool name over MaxNameBytes) or cut (a
// hook's message, an Abort message, over prevention.MaxMessageBytes).
func TestHostileOversizedFields(t *testing.T) {
	huge := strings.Repeat("x", 2<<20)
	talker := prevention.HookFunc(func(context.Context, *prevention.Step) (prevention.Decision, error) {
		return prevention.Decision{Action: prevention.Warn, Message: huge, Threshold: huge}, nil
	})
	for _, sk := range stores {
		t.Run(sk.name, func(t *testing.T) {
			st, _, run := hostileRun(t, sk.open, allowAllDoc, governance.WithHooks(prevention.NamedHook{ID: "talker", Hook: talker}))
			for _, in := range []governance.StepInput{
				{Type: prevention.StepLLMResponse, Model: huge},
				{Type: prevention.StepToolCall, Tool: strings.Repeat("t", governance.MaxNameBytes+1)},
			} {
				if _, err := run.Step(ctx, in); !errors.Is(err, governance.ErrInvalidStep) {
					t.Errorf("a %d-byte name: got %v, want ErrInvalidStep", max(len(in.Model), len(in.Tool)), err)
				}
			}
			res, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: strings.Repeat("t", governance.MaxNameBytes)})
			if err != nil {
				t.Fatal(err)
			}
			if m := res.Evaluation.Findings[0].Message; len(m) > prevention.MaxMessageBytes || !strings.HasSuffix(m, "…") {
				t.Errorf("hook message of %d bytes returned", len(m))
			}
			rec, err := run.Abort(ctx, prevention.ReasonUserAbort, huge)
			if err != nil || len(rec.Message) > prevention.MaxMessageBytes {
				t.Errorf("abort with a huge message: %d bytes, %v", len(rec.Message), err)
			}
			recs, _ := st.Records(ctx, "acme", run.ID())
			for _, r := range recs {
				if n := len(trace.Encode(nil, &r)); n > 64<<10 {
					t.Errorf("record %d is %d bytes", r.Seq, n)
				}
			}
			mustVerify(t, st, run.ID())
		})
	}
}

// TestHostileInvalidUTF8 sends invalid UTF-8 in every text field a caller
// or hook controls. Free text is recorded with each bad sequence replaced
// by U+FFFD (and policies see exactly that); ids and the names policies
// compare (model, tool), are refused.
func TestHostileInvalidUTF8(t *testing.T) {
	const bad = "bad \xff\xfe byte"
	const fixed = "bad \uFFFD byte"
	hook := prevention.HookFunc(func(_ context.Context, s *prevention.Step) (prevention.Decision, error) {
		if s.Tool == "fail" {
			return prevention.Decision{}, errors.New("hook failed: " + bad)
		}
		if !utf8.ValidString(s.Output) || !utf8.ValidString(s.Model) {
			return prevention.Decision{}, errors.New("the hook saw invalid UTF-8")
		}
		for k, v := range s.Metadata {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return prevention.Decision{}, errors.New("the hook saw invalid UTF-8 metadata")
			}
		}
		return prevention.Decision{Action: prevention.Warn, Message: bad, Threshold: bad}, nil
	})
	for _, sk := range stores {
		t.Run(sk.name, func(t *testing.T) {
			st := sk.open(t)
			r, clock := newRunner(t, st, governance.WithHooks(prevention.NamedHook{ID: "h", Hook: hook}))
			snap := parse(t, allowAllDoc)
			v, err := r.Publish(ctx, snap, bad, bad)
			if err != nil || v.PublishedBy != fixed || v.Note != fixed {
				t.Errorf("Publish: %+v %v", v, err)
			}
			run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{bad: bad}})
			if err != nil {
				t.Fatal(err)
			}
			md := map[string]string{bad: bad, "ok": "fine"}
			for _, in := range []governance.StepInput{
				{Type: prevention.StepToolCall, Tool: bad},
				{Type: prevention.StepLLMResponse, Model: bad},
			} {
				if _, err := run.Step(ctx, in); !errors.Is(err, governance.ErrInvalidStep) || !errors.Is(err, prevention.ErrInvalidName) {
					t.Errorf("step %+v: %v, want ErrInvalidStep and ErrInvalidName", in, err)
				}
			}
			res, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Tool: "t", Input: bad, Output: bad, Metadata: md})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := md[bad]; !ok || md[bad] != bad {
				t.Error("the caller's metadata map was changed")
			}
			if f := res.Evaluation.Findings; len(f) != 1 || f[0].Message != fixed || f[0].Threshold != fixed {
				t.Errorf("hook decision %+v", f)
			}
			cs, _ := st.Contents(ctx, "acme", run.ID())
			if c := cs[0]; c.Input != fixed || c.Output != fixed || c.Metadata[fixed] != fixed || c.Metadata["ok"] != "fine" {
				t.Errorf("stored content %+v", c)
			}
			recs, _ := st.Records(ctx, "acme", run.ID())
			if r := recs[1]; r.Model != "m" || r.Tool != "t" || r.Findings[0].Message != fixed {
				t.Errorf("stored record %+v", r)
			}
			stored, _ := st.Run(ctx, "acme", run.ID())
			if stored.Labels[fixed] != fixed {
				t.Errorf("labels %v", stored.Labels)
			}
			// A failing hook's text becomes the stop's message.
			clock.Advance(time.Second)
			if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "fail"}); !errors.Is(err, prevention.ErrHookFailed) {
				t.Fatalf("hook failure: %v", err)
			}
			stored, _ = st.Run(ctx, "acme", run.ID())
			if !utf8.ValidString(stored.Message) || !strings.Contains(stored.Message, fixed) {
				t.Errorf("stop message %q", stored.Message)
			}
			mustVerify(t, st, run.ID())

			// An Abort message, and RecoverRun's.
			run2, _ := r.Start(ctx, governance.StartOptions{Snapshot: snap})
			if rec, err := run2.Abort(ctx, prevention.ReasonUserAbort, bad); err != nil || rec.Message != fixed {
				t.Errorf("Abort: %q %v", rec.Message, err)
			}
			mustVerify(t, st, run2.ID())
			run3, _ := r.Start(ctx, governance.StartOptions{Snapshot: snap})
			if rec, err := governance.RecoverRun(ctx, st, "acme", run3.ID(), bad, t0); err != nil || rec.Message != fixed {
				t.Errorf("RecoverRun: %q %v", rec.Message, err)
			}
			mustVerify(t, st, run3.ID())

			// Ids are refused, not changed.
			if _, err := r.Start(ctx, governance.StartOptions{Snapshot: snap, RunID: "RUN-\xff"}); err == nil || !strings.Contains(err.Error(), "UTF-8") {
				t.Errorf("run id with invalid UTF-8: %v", err)
			}
			if _, err := r.Start(ctx, governance.StartOptions{TenantID: "acme\xff"}); err == nil {
				t.Error("tenant id with invalid UTF-8 accepted")
			}
		})
	}
	// Policy sets and hooks made in Go.
	for name, mk := range map[string]func() error{
		"tenant": func() error {
			_, err := snapshot.New("acme\xff", []snapshot.Policy{{ID: "p", Kind: "budget"}}, nil, t0)
			return err
		},
		"policy id": func() error {
			_, err := snapshot.New("acme", []snapshot.Policy{{ID: "p\xff", Kind: "budget"}}, nil, t0)
			return err
		},
		"kind": func() error {
			_, err := snapshot.New("acme", []snapshot.Policy{{ID: "p", Kind: "budget\xff"}}, nil, t0)
			return err
		},
		"threshold name": func() error {
			_, err := snapshot.New("acme", []snapshot.Policy{{ID: "p", Kind: "budget"}}, snapshot.Thresholds{"m\xff": 1}, t0)
			return err
		},
	} {
		if err := mk(); !errors.Is(err, snapshot.ErrInvalid) || !strings.Contains(err.Error(), "UTF-8") {
			t.Errorf("%s with invalid UTF-8: %v", name, err)
		}
	}
	if _, err := governance.NewRunner(memstore.New(), governance.WithHooks(prevention.NamedHook{ID: "h\xff", Hook: prevention.AllowAll})); err == nil {
		t.Error("hook id with invalid UTF-8 accepted")
	}
}

// TestHostileNonFinite: NaN and ±Inf from Go callers — thresholds, costs,
// totals that overflow, a hook's limit or observed value — are refused
// with a clear error, or fail the step closed; nothing unverifiable is
// recorded.
func TestHostileNonFinite(t *testing.T) {
	for _, v := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		_, err := snapshot.New("acme", []snapshot.Policy{{ID: "p", Kind: "budget", Params: []byte(`{"metric":"cost_cents","threshold":"max"}`)}},
			snapshot.Thresholds{"max": v}, t0)
		var ve *snapshot.ValidationError
		if !errors.As(err, &ve) || ve.Threshold != "max" || !strings.Contains(err.Error(), "not a finite number") {
			t.Errorf("threshold %v: %v", v, err)
		}
	}
	// A token budget (which a total that wrapped around would pass) and
	// no cost budget (so that a huge but finite cost is allowed).
	doc := `{"tenant_id":"acme","thresholds":{"max_tokens":100},"policies":[
		{"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}}]}`
	for _, sk := range stores {
		t.Run(sk.name, func(t *testing.T) {
			st, _, run := hostileRun(t, sk.open, doc)
			for _, in := range []governance.StepInput{
				{Type: prevention.StepLLMResponse, CostCents: math.NaN()},
				{Type: prevention.StepLLMResponse, CostCents: math.Inf(1)},
				{Type: prevention.StepLLMResponse, CostCents: math.Inf(-1)},
			} {
				if _, err := run.Step(ctx, in); !errors.Is(err, governance.ErrInvalidStep) || !strings.Contains(err.Error(), "cost_cents") {
					t.Errorf("cost %v: %v", in.CostCents, err)
				}
				if _, err := run.Check(ctx, in); !errors.Is(err, governance.ErrInvalidStep) {
					t.Errorf("Check with cost %v: %v", in.CostCents, err)
				}
			}
			if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 1, CostCents: math.MaxFloat64}); err != nil {
				t.Fatal(err)
			}
			// Totals that would wrap around (and so pass the budget) or
			// become infinite are refused.
			for _, in := range []governance.StepInput{
				{Type: prevention.StepLLMResponse, Tokens: math.MaxInt64},
				{Type: prevention.StepLLMResponse, CostCents: math.MaxFloat64},
			} {
				for name, call := range map[string]func() error{
					"Step":     func() error { _, err := run.Step(ctx, in); return err },
					"Check":    func() error { _, err := run.Check(ctx, in); return err },
					"Withhold": func() error { _, err := run.Withhold(ctx, in, in); return err },
				} {
					if err := call(); !errors.Is(err, governance.ErrInvalidStep) || !strings.Contains(err.Error(), "overflow") {
						t.Errorf("%s with tokens %d cost %v: %v", name, in.Tokens, in.CostCents, err)
					}
				}
			}
			rec, _ := st.Run(ctx, "acme", run.ID())
			if rec.ChainLength != 2 || rec.Status != governance.StatusRunning {
				t.Errorf("refused steps were recorded: %+v", rec)
			}
			mustVerify(t, st, run.ID())
		})
	}
	// A hook's non-finite numbers fail the step closed.
	for _, d := range []prevention.Decision{
		{Action: prevention.Warn, Observed: math.NaN(), Threshold: "x"},
		{Action: prevention.Warn, Limit: math.Inf(1), Threshold: "x"},
		{Action: prevention.Block, Observed: math.Inf(-1), Threshold: "x"},
	} {
		hook := prevention.HookFunc(func(context.Context, *prevention.Step) (prevention.Decision, error) { return d, nil })
		for _, sk := range stores {
			t.Run(fmt.Sprintf("hook %s %v %v on %s", d.Action, d.Limit, d.Observed, sk.name), func(t *testing.T) {
				st, _, run := hostileRun(t, sk.open, allowAllDoc, governance.WithHooks(prevention.NamedHook{ID: "nan", Hook: hook}))
				_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse})
				if !errors.Is(err, governance.ErrRunStopped) || !errors.Is(err, prevention.ErrHookFailed) || !strings.Contains(err.Error(), "non-finite") {
					t.Fatalf("got %v, want the step to fail closed", err)
				}
				rec, _ := st.Run(ctx, "acme", run.ID())
				if rec.Status != governance.StatusFailed || rec.ViolationPolicyID != "nan" {
					t.Errorf("stored run %+v", rec)
				}
				mustVerify(t, st, run.ID())
			})
		}
	}
}

// TestHostileHookBlocksForever: a hook that never returns, even when its
// context is done, holds a step no longer than the step timeout (plus
// scheduling); the step fails closed, naming the hook.
func TestHostileHookBlocksForever(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) }) // let the abandoned goroutines end
	stuck := prevention.HookFunc(func(context.Context, *prevention.Step) (prevention.Decision, error) {
		<-release // ignores its context
		return prevention.Allowed(), nil
	})
	const timeout = 50 * time.Millisecond
	for _, sk := range stores {
		t.Run(sk.name, func(t *testing.T) {
			st, _, run := hostileRun(t, sk.open, allowAllDoc,
				governance.WithHooks(prevention.NamedHook{ID: "stuck", Hook: stuck}), governance.WithStepTimeout(timeout))
			start := time.Now()
			_, err := run.Check(ctx, governance.StepInput{Type: prevention.StepLLMResponse})
			var he *prevention.HookError
			if !errors.As(err, &he) || he.PolicyID != "stuck" || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Check: %v", err)
			}
			_, err = run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse})
			if elapsed := time.Since(start); elapsed > 20*timeout+2*time.Second {
				t.Errorf("two evaluations took %v with a step timeout of %v", elapsed, timeout)
			}
			if !errors.Is(err, governance.ErrRunStopped) || !errors.Is(err, prevention.ErrHookFailed) {
				t.Fatalf("got %v, want the step to fail closed", err)
			}
			rec, _ := st.Run(ctx, "acme", run.ID())
			if rec.Status != governance.StatusFailed || rec.TerminationReason != prevention.ReasonSystemFailure ||
				rec.ViolationPolicyID != "stuck" || rec.IncidentID == "" {
				t.Errorf("stored run %+v", rec)
			}
			mustVerify(t, st, run.ID())
		})
	}
}

// TestHostileDeepNesting: deeply nested JSON in a policy file (in a
// policy's params, as a threshold, as the whole document) and a deeply
// nested CEL expression are refused with an error naming where, without
// exhausting the stack.
func TestHostileDeepNesting(t *testing.T) {
	nest := func(n int, leaf string) string {
		return strings.Repeat(`{"a":`, n) + leaf + strings.Repeat("}", n)
	}
	for _, depth := range []int{200, 10_000, 200_000} {
		for name, doc := range map[string]string{
			"params":    `{"tenant_id":"acme","thresholds":{},"policies":[{"id":"deep","kind":"expression","params":` + nest(depth, `"x"`) + `}]}`,
			"threshold": `{"tenant_id":"acme","thresholds":{"deep":` + nest(depth, "1") + `},"policies":[{"id":"p","kind":"budget"}]}`,
			"document":  nest(depth, "{}"),
			"arrays":    `{"tenant_id":"acme","thresholds":{},"policies":[{"id":"deep","kind":"tool_allowlist","params":{"allow":` + strings.Repeat("[", depth) + strings.Repeat("]", depth) + `}}]}`,
		} {
			_, err := snapshot.Parse("deep.json", []byte(doc), t0, testKinds)
			if !errors.Is(err, snapshot.ErrInvalid) {
				t.Errorf("%s nested %d deep: got %v, want ErrInvalid", name, depth, err)
			}
		}
	}
	// A CEL expression nested far deeper than any policy needs.
	for _, depth := range []int{100, 10_000} {
		expr := strings.Repeat("(", depth) + "step.tokens > 1" + strings.Repeat(")", depth)
		doc := fmt.Sprintf(`{"tenant_id":"acme","thresholds":{},"policies":[{"id":"deep","kind":"expression","params":{"expr":%q}}]}`, expr)
		if _, err := snapshot.Parse("cel.json", []byte(doc), t0, testKinds); err != nil {
			var ve *snapshot.ValidationError
			if !errors.As(err, &ve) || ve.PolicyID != "deep" {
				t.Errorf("CEL nested %d deep: error does not name the policy: %v", depth, err)
			}
		}
	}
}
