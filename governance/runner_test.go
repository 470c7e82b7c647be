package governance_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/kinds/cel"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

var (
	ctx = context.Background()
	t0  = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	// testKinds are the built-in policy kinds and CEL expressions.
	testKinds = func() *prevention.Kinds {
		k, err := prevention.NewKinds(cel.Kind())
		if err != nil {
			panic(err)
		}
		return k
	}()
)

func parse(t testing.TB, doc string) *snapshot.PolicySnapshot {
	t.Helper()
	s, err := snapshot.Parse("test.json", []byte(doc), t0, testKinds)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newRunner(t testing.TB, st governance.Store, opts ...governance.Option) (*governance.Runner, *governance.FakeClock) {
	t.Helper()
	clock := governance.NewFakeClock(t0)
	r, err := governance.NewRunner(st, append([]governance.Option{governance.WithClock(clock), governance.WithKinds(testKinds)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return r, clock
}

// scripted is a step and how long after the previous one it happens.
type scripted struct {
	after time.Duration
	in    governance.StepInput
}

func llm(tokens int64, cents float64, out string) scripted {
	return scripted{time.Second, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: tokens, CostCents: cents, Output: out}}
}

func tool(name string) scripted {
	return scripted{time.Second, governance.StepInput{Type: prevention.StepToolCall, Tool: name}}
}

func at(d time.Duration, s scripted) scripted { s.after = d; return s }

// TestStopsAtExactStep runs, for every built-in kind, a script that
// reaches the limit exactly (allowed) and then exceeds it (blocked), and
// checks the run stopped at exactly that step with the right reason.
func TestStopsAtExactStep(t *testing.T) {
	many := func(n int, s scripted) []scripted {
		out := make([]scripted, n)
		for i := range out {
			out[i] = s
		}
		return out
	}
	tests := []struct {
		name      string
		thresh    string
		policy    string
		steps     []scripted
		wantStop  int // -1: completes
		wantWhy   prevention.RunTerminationReason
		wantObs   float64
		wantLimit float64
	}{
		{"budget tokens", `"max_tokens": 300`, `{"id":"p","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}}`,
			[]scripted{llm(100, 0, ""), llm(100, 0, ""), llm(100, 0, ""), llm(1, 0, "")}, 3, prevention.ReasonBudgetExceeded, 301, 300},
		{"budget cost", `"max_cost_cents": 150`, `{"id":"p","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}}`,
			[]scripted{llm(0, 50, ""), llm(0, 100, ""), llm(0, 0.5, "")}, 2, prevention.ReasonBudgetExceeded, 150.5, 150},
		{"budget steps", `"max_steps": 3`, `{"id":"p","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}`,
			many(5, llm(1, 0, "")), 3, prevention.ReasonBudgetExceeded, 4, 3},
		{"rate limit", `"per_min": 3`, `{"id":"p","kind":"rate_limit","params":{"threshold":"per_min","window_seconds":60}}`,
			[]scripted{at(time.Second, llm(1, 0, "")), at(time.Second, llm(1, 0, "")), at(time.Second, llm(1, 0, "")),
				at(58500*time.Millisecond, llm(1, 0, "")),                                        // t=61.5s: step 0 (t=1s) has left the window (1.5s, 61.5s]
				at(100*time.Millisecond, llm(1, 0, ""))}, 4, prevention.ReasonRateLimited, 4, 3}, // t=61.6s: 4 steps in (1.6s, 61.6s]
		{"timeout", `"max_s": 10`, `{"id":"p","kind":"timeout","params":{"threshold":"max_s"}}`,
			[]scripted{at(5*time.Second, llm(1, 0, "")), at(5*time.Second, llm(1, 0, "")), at(time.Millisecond, llm(1, 0, ""))}, 2, prevention.ReasonTimeout, 10.001, 10},
		{"content", `"x": 1`, `{"id":"p","kind":"content","params":{"fields":["output"],"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}}`,
			[]scripted{llm(1, 0, "hello"), llm(1, 0, "call 555-1234"), llm(1, 0, "ssn 123-45-6789")}, 2, prevention.ReasonPolicyBlock, 0, 0},
		{"tool allowlist", `"x": 1`, `{"id":"p","kind":"tool_allowlist","params":{"allow":["search"]}}`,
			[]scripted{tool("search"), llm(1, 0, ""), tool("shell")}, 2, prevention.ReasonPolicyBlock, 0, 0},
		{"tool denylist", `"x": 1`, `{"id":"p","kind":"tool_denylist","params":{"deny":["shell"]}}`,
			[]scripted{tool("search"), tool("shell")}, 1, prevention.ReasonPolicyBlock, 0, 0},
		{"expression", `"x": 1`, `{"id":"p","kind":"expression","params":{"expr":"step.type == 'tool_call' && step.tool == 'shell'"}}`,
			[]scripted{tool("search"), tool("shell")}, 1, prevention.ReasonPolicyBlock, 0, 0},
		{"expression over run totals", `"max_tokens": 250`, `{"id":"p","kind":"expression","params":{"expr":"double(run.total_tokens) > thresholds.max_tokens","reason":"budget_exceeded"}}`,
			[]scripted{llm(100, 0, ""), llm(150, 0, ""), llm(1, 0, "")}, 2, prevention.ReasonBudgetExceeded, 0, 0},
		{"warn never stops", `"max_steps": 1`, `{"id":"p","kind":"budget","params":{"metric":"steps","threshold":"max_steps"},"enforcement":"warn"}`,
			many(4, llm(1, 0, "")), -1, "", 0, 0},
		{"monitor never stops", `"max_steps": 1`, `{"id":"p","kind":"budget","params":{"metric":"steps","threshold":"max_steps"},"enforcement":"monitor"}`,
			many(4, llm(1, 0, "")), -1, "", 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			snap := parse(t, fmt.Sprintf(`{"tenant_id":"acme","thresholds":{%s},"policies":[%s]}`, tc.thresh, tc.policy))
			st := memstore.New()
			r, clock := newRunner(t, st)
			run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
			if err != nil {
				t.Fatal(err)
			}
			stopped := -1
			var v *governance.Violation
			for i, s := range tc.steps {
				clock.Advance(s.after)
				res, err := run.Step(ctx, s.in)
				if err != nil {
					if !errors.As(err, &v) {
						t.Fatalf("step %d: %v", i, err)
					}
					stopped = i
					break
				}
				if tc.wantStop < 0 && i > 0 && res.Status != trace.StatusWarning {
					t.Errorf("step %d status %s, want warning (non-blocking policy over its limit)", i, res.Status)
				}
			}
			if stopped != tc.wantStop {
				t.Fatalf("stopped at step %d, want %d", stopped, tc.wantStop)
			}
			if stopped < 0 {
				return
			}
			if v.StepIndex != tc.wantStop || v.PolicyID() != "p" || v.Reason() != tc.wantWhy {
				t.Errorf("violation %+v", v)
			}
			if tc.wantLimit != 0 && (v.Decision.Observed != tc.wantObs || v.Decision.Limit != tc.wantLimit) {
				t.Errorf("observed %v limit %v, want %v %v", v.Decision.Observed, v.Decision.Limit, tc.wantObs, tc.wantLimit)
			}
			rec, _ := st.Run(ctx, "acme", run.ID())
			if rec.Status != governance.StatusFailedPolicy || rec.TerminationReason != tc.wantWhy || *rec.StoppedAtStep != tc.wantStop {
				t.Errorf("stored run %+v", rec)
			}
			if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestRunWrapperMapsOutcome(t *testing.T) {
	snap := parse(t, `{"tenant_id":"acme","thresholds":{"max_steps":1},"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}]}`)
	boom := errors.New("tool crashed")
	tests := []struct {
		name       string
		ctx        func() (context.Context, context.CancelFunc)
		loop       func(ctx context.Context, run *governance.Run) error
		wantStatus governance.RunStatus
		wantReason prevention.RunTerminationReason
		wantErr    func(error) bool
	}{
		{"nil completes", nil, func(ctx context.Context, run *governance.Run) error {
			_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
			return err
		}, governance.StatusSucceeded, prevention.ReasonCompleted, func(err error) bool { return err == nil }},
		{"violation", nil, func(ctx context.Context, run *governance.Run) error {
			for {
				if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); err != nil {
					return fmt.Errorf("agent: %w", err)
				}
			}
		}, governance.StatusFailedPolicy, prevention.ReasonBudgetExceeded, func(err error) bool {
			var v *governance.Violation
			return errors.As(err, &v) && v.StepIndex == 1
		}},
		{"cancel", func() (context.Context, context.CancelFunc) { return context.WithCancel(ctx) },
			func(ctx context.Context, run *governance.Run) error {
				return context.Canceled
			}, governance.StatusCancelled, prevention.ReasonUserAbort, func(err error) bool { return errors.Is(err, context.Canceled) }},
		{"deadline", func() (context.Context, context.CancelFunc) { return context.WithTimeout(ctx, time.Millisecond) },
			func(ctx context.Context, run *governance.Run) error {
				<-ctx.Done()
				return ctx.Err()
			}, governance.StatusFailed, prevention.ReasonTimeout, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
		{"error", nil, func(ctx context.Context, run *governance.Run) error { return boom },
			governance.StatusFailed, prevention.ReasonSystemFailure, func(err error) bool { return errors.Is(err, boom) }},
		{"panic", nil, func(ctx context.Context, run *governance.Run) error { panic("nil map") },
			governance.StatusFailed, prevention.ReasonSystemFailure, func(err error) bool {
				var p *governance.PanicError
				return errors.As(err, &p) && p.Value == "nil map"
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New()
			r, _ := newRunner(t, st)
			c := ctx
			if tc.ctx != nil {
				var cancel context.CancelFunc
				c, cancel = tc.ctx()
				defer cancel()
			}
			rec, err := r.Run(c, governance.StartOptions{Snapshot: snap}, tc.loop)
			if !tc.wantErr(err) {
				t.Errorf("error %v", err)
			}
			stored, serr := st.Run(ctx, "acme", rec.RunID)
			if serr != nil {
				t.Fatal(serr)
			}
			if stored.Status != tc.wantStatus || stored.TerminationReason != tc.wantReason || rec.Status != tc.wantStatus {
				t.Errorf("stored %s/%s, returned %s, want %s/%s", stored.Status, stored.TerminationReason, rec.Status, tc.wantStatus, tc.wantReason)
			}
			if _, err := governance.VerifyRun(ctx, st, "acme", rec.RunID); err != nil {
				t.Error(err)
			}
		})
	}
}

// faultyStore fails AppendStep and/or CloseRun on demand.
type faultyStore struct {
	governance.Store
	failAppend, failClose atomic.Bool
	puts                  atomic.Int32
}

var errDisk = errors.New("disk I/O error")

func (f *faultyStore) AppendStep(ctx context.Context, w governance.StepWrite) error {
	if f.failAppend.Load() {
		return errDisk
	}
	return f.Store.AppendStep(ctx, w)
}

func (f *faultyStore) CloseRun(ctx context.Context, c governance.Close) error {
	if f.failClose.Load() {
		return errDisk
	}
	return f.Store.CloseRun(ctx, c)
}

func (f *faultyStore) PutSnapshot(ctx context.Context, s *snapshot.PolicySnapshot) error {
	f.puts.Add(1)
	return f.Store.PutSnapshot(ctx, s)
}

const allowAllDoc = `{"tenant_id":"acme","thresholds":{"max_steps":100},"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}]}`

func TestStoreFailureFailsClosed(t *testing.T) {
	st := &faultyStore{Store: memstore.New()}
	r, _ := newRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); err != nil {
		t.Fatal(err)
	}
	st.failAppend.Store(true)
	res, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	if !errors.Is(err, governance.ErrRecordFailed) || !errors.Is(err, errDisk) || res.Recorded {
		t.Fatalf("step the store could not record: %+v, %v; want ErrRecordFailed", res, err)
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); !errors.Is(err, governance.ErrRunStopped) {
		t.Errorf("step after a failed record: %v, want ErrRunStopped", err)
	}
	stored, _ := st.Run(ctx, "acme", run.ID())
	if stored.Status != governance.StatusFailed || stored.TerminationReason != prevention.ReasonSystemFailure || stored.StepCount != 1 {
		t.Errorf("stored run: %+v", stored)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Errorf("chain after failure: %v", err)
	}
}

func TestStoreDownLeavesRunUnfinished(t *testing.T) {
	st := &faultyStore{Store: memstore.New()}
	r, _ := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	st.failAppend.Store(true)
	st.failClose.Store(true)
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); !errors.Is(err, governance.ErrRecordFailed) {
		t.Fatal(err)
	}
	stored, _ := st.Run(ctx, "acme", run.ID())
	if stored.Status != governance.StatusRunning || stored.StepCount != 1 {
		t.Errorf("with the store down the run stays as last recorded: %+v", stored)
	}
	if !run.Ended() {
		t.Error("run accepts steps after its store failed")
	}
}

func TestFailOpenIsRecordedAndAllows(t *testing.T) {
	st := &faultyStore{Store: memstore.New()}
	r, _ := newRunner(t, st, governance.WithFailOpen())
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	st.failAppend.Store(true)
	res, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage, Tokens: 5})
	if err != nil || res.Recorded {
		t.Fatalf("fail-open step: %+v %v", res, err)
	}
	st.failAppend.Store(false)
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); err != nil {
		t.Fatal(err)
	}
	if _, err := run.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	recs, _ := st.Records(ctx, "acme", run.ID())
	if !strings.Contains(recs[0].Message, "fail-open") || !strings.Contains(recs[len(recs)-1].Message, "1 steps unrecorded") {
		t.Errorf("fail-open not recorded: start %q, end %q", recs[0].Message, recs[len(recs)-1].Message)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Error(err)
	}
}

func TestHookFailureFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		hook prevention.Hook
	}{
		{"error", prevention.HookFunc(func(context.Context, *prevention.Step) (prevention.Decision, error) {
			return prevention.Decision{}, errors.New("classifier unavailable")
		})},
		{"panic", prevention.HookFunc(func(context.Context, *prevention.Step) (prevention.Decision, error) {
			panic("index out of range")
		})},
		{"blocks forever", prevention.HookFunc(func(ctx context.Context, _ *prevention.Step) (prevention.Decision, error) {
			<-ctx.Done()
			return prevention.Decision{}, ctx.Err()
		})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := memstore.New()
			r, _ := newRunner(t, st, governance.WithHooks(prevention.NamedHook{ID: "classifier", Hook: tc.hook}),
				governance.WithStepTimeout(20*time.Millisecond))
			run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
			_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse})
			if !errors.Is(err, governance.ErrRunStopped) || !errors.Is(err, prevention.ErrHookFailed) {
				t.Fatalf("got %v", err)
			}
			stored, _ := st.Run(ctx, "acme", run.ID())
			if stored.Status != governance.StatusFailed || stored.TerminationReason != prevention.ReasonSystemFailure ||
				stored.ViolationPolicyID != "classifier" || stored.StoppedAtStep == nil || *stored.StoppedAtStep != 0 || stored.IncidentID == "" {
				t.Errorf("stored run: %+v", stored)
			}
			recs, _ := st.Records(ctx, "acme", run.ID())
			if inf, ok := trace.InflectionOf(recs); !ok || inf.PolicyID != "classifier" || inf.Reason != prevention.ReasonSystemFailure {
				t.Errorf("inflection %+v %v", inf, ok)
			}
			if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestCustomHookIdentifiedInRecords(t *testing.T) {
	st := memstore.New()
	pii := prevention.HookFunc(func(_ context.Context, s *prevention.Step) (prevention.Decision, error) {
		if strings.Contains(s.Output, "password") {
			return prevention.Decision{Action: prevention.Block, Message: "credential in output"}, nil
		}
		return prevention.Allowed(), nil
	})
	r, _ := newRunner(t, st, governance.WithHooks(prevention.NamedHook{ID: "pii-guard", Hook: pii}))
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Output: "ok"})
	_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Output: "the password is hunter2"})
	var v *governance.Violation
	if !errors.As(err, &v) || v.PolicyID() != "pii-guard" || v.Decision.Source != prevention.SourceHook || v.Reason() != prevention.ReasonPolicyBlock {
		t.Fatalf("got %v", err)
	}
	inc, _ := st.Incident(ctx, "acme", v.IncidentID)
	if inc.PolicyID != "pii-guard" || inc.Source != prevention.SourceHook {
		t.Errorf("incident %+v", inc)
	}
}

func TestInvalidStepRecordsNothing(t *testing.T) {
	st := memstore.New()
	r, _ := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	for _, in := range []governance.StepInput{
		{Type: "thinking"},
		{Type: prevention.StepLLMResponse, Tokens: -1},
		{Type: prevention.StepLLMResponse, CostCents: -0.5},
	} {
		if _, err := run.Step(ctx, in); !errors.Is(err, governance.ErrInvalidStep) {
			t.Errorf("%+v: got %v, want ErrInvalidStep", in, err)
		}
	}
	if rec, _ := st.Run(ctx, "acme", run.ID()); rec.ChainLength != 1 {
		t.Errorf("invalid steps were recorded: %+v", rec)
	}
	// Invalid UTF-8 is replaced, and what is stored verifies.
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Output: "bad \xff byte"}); err != nil {
		t.Fatal(err)
	}
	cs, _ := st.Contents(ctx, "acme", run.ID())
	if cs[0].Output != "bad \uFFFD byte" {
		t.Errorf("stored output %q", cs[0].Output)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Error(err)
	}
}

func TestSnapshotStoredAndCompiledOnce(t *testing.T) {
	st := &faultyStore{Store: memstore.New()}
	r, _ := newRunner(t, st)
	snap := parse(t, allowAllDoc)
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := r.Start(ctx, governance.StartOptions{Snapshot: snap}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := st.puts.Load(); n != 1 {
		t.Errorf("snapshot stored %d times for 50 concurrent starts, want 1", n)
	}
}

func TestConcurrentRunsUnderRace(t *testing.T) {
	st := memstore.New()
	r, err := governance.NewRunner(st)
	if err != nil {
		t.Fatal(err)
	}
	snap := parse(t, `{"tenant_id":"acme","thresholds":{"max_steps":1000},"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}]}`)
	const runs, steps = 200, 50
	var wg sync.WaitGroup
	ids := make([]string, runs)
	for i := 0; i < runs; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			rec, err := r.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
				for s := 0; s < steps; s++ {
					if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 1}); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
			ids[i] = rec.RunID
		}(i)
	}
	wg.Wait()
	for _, id := range ids {
		n, err := governance.VerifyRun(ctx, st, "acme", id)
		if err != nil || n != steps+2 {
			t.Errorf("run %s: %d records, %v", id, n, err)
		}
	}
}

func TestOneRunConcurrentSteps(t *testing.T) {
	st := memstore.New()
	r, _ := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run.Step(ctx, governance.StepInput{Type: prevention.StepToolResult, Tokens: 1})
		}()
	}
	wg.Wait()
	rec, _ := run.Finish(ctx)
	if rec.StepCount != 20 || rec.TotalTokens != 20 {
		t.Errorf("%+v", rec)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Error(err)
	}
}

func TestNewRunnerRejectsBadOptions(t *testing.T) {
	st := memstore.New()
	for _, o := range []governance.Option{
		governance.WithClock(nil), governance.WithStepTimeout(0), governance.WithWriteTimeout(-1),
		governance.WithMaxContentBytes(0), governance.WithIDGenerator(nil), governance.WithHooks(prevention.NamedHook{}),
	} {
		if _, err := governance.NewRunner(st, o); err == nil {
			t.Error("bad option accepted")
		}
	}
	if _, err := governance.NewRunner(nil); err == nil {
		t.Error("nil store accepted")
	}
}

func TestStartChecksTenant(t *testing.T) {
	r, _ := newRunner(t, memstore.New())
	if _, err := r.Start(ctx, governance.StartOptions{TenantID: "globex", Snapshot: parse(t, allowAllDoc)}); err == nil {
		t.Error("started a run of tenant globex with a snapshot of acme")
	}
	if _, err := r.Start(ctx, governance.StartOptions{}); err == nil {
		t.Error("started a run without tenant")
	}
}

func TestBadPolicyWritesNothing(t *testing.T) {
	st := memstore.New()
	r, _ := newRunner(t, st)
	// A file with a bad regex is refused when it is read, naming the
	// file, the policy and the field.
	const bad = `{"tenant_id":"acme","thresholds":{},"policies":[{"id":"re","kind":"content","params":{"patterns":["(unclosed"]}}]}`
	_, err := snapshot.Parse("test.json", []byte(bad), t0, r.Kinds())
	var ve *snapshot.ValidationError
	if !errors.As(err, &ve) || ve.File != "test.json" || ve.PolicyID != "re" || ve.Field != "params.patterns[0]" {
		t.Fatalf("parse bad regex: %v", err)
	}
	// Built in Go, structurally valid: Publish and Start refuse it before
	// writing.
	snap, err := snapshot.New("acme", []snapshot.Policy{{ID: "re", Kind: "content", Params: []byte(`{"patterns":["(unclosed"]}`)}}, nil, t0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = r.Publish(ctx, snap, "alice", "")
	if !errors.As(err, &ve) || ve.PolicyID != "re" || !strings.HasPrefix(ve.Field, "params.patterns") {
		t.Fatalf("publish bad regex: %v", err)
	}
	if _, err := r.Start(ctx, governance.StartOptions{Snapshot: snap}); !errors.As(err, &ve) {
		t.Fatalf("start with bad regex: %v", err)
	}
	if vs, _ := st.PolicyVersions(ctx, "acme"); len(vs) != 0 {
		t.Errorf("versions written: %v", vs)
	}
	if _, err := st.Snapshot(ctx, "acme", snap.ID()); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("snapshot written despite bad policy: %v", err)
	}
	if tenants, _ := st.Tenants(ctx); len(tenants) != 0 {
		t.Errorf("tenants: %v", tenants)
	}
}

func TestRecoverRun(t *testing.T) {
	st := memstore.New()
	r, clock := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	run.Step(ctx, governance.StepInput{Type: prevention.StepMessage, Tokens: 4})
	// The process dies here: the store shows the run running forever.
	clock.Advance(time.Hour)
	running, _ := st.Runs(ctx, governance.RunFilter{TenantID: "acme", Status: governance.StatusRunning})
	if len(running) != 1 || running[0].RunID != run.ID() {
		t.Fatalf("unfinished runs: %+v", running)
	}
	rec, err := governance.RecoverRun(ctx, st, "acme", run.ID(), "", clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rec.Status != governance.StatusFailed || rec.TerminationReason != prevention.ReasonSystemFailure || rec.StepCount != 1 ||
		rec.TotalTokens != 4 || !strings.Contains(rec.Message, "recovered") {
		t.Errorf("recovered run: %+v", rec)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Error(err)
	}
	if _, err := governance.RecoverRun(ctx, st, "acme", run.ID(), "", clock.Now()); !errors.Is(err, governance.ErrRunEnded) {
		t.Errorf("recovering an ended run: %v", err)
	}
}

func TestReserveRefusesOverflowingTotals(t *testing.T) {
	st := memstore.New()
	r, _ := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, allowAllDoc)})
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 10}); err != nil {
		t.Fatal(err)
	}
	_, err := run.Reserve(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: math.MaxInt64})
	if !errors.Is(err, governance.ErrInvalidStep) {
		t.Errorf("reserving tokens that overflow the run's total: got %v, want ErrInvalidStep", err)
	}
}

func TestStepInputValidate(t *testing.T) {
	md := map[string]string{"k\xff": "v"}
	ok := governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Output: "out\xff", Metadata: md}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid step (invalid UTF-8 in text is replaced, not refused): %v", err)
	}
	if ok.Output != "out\xff" || md["k\xff"] != "v" {
		t.Error("Validate changed its input")
	}
	for _, in := range []governance.StepInput{
		{Type: "plan"}, {Type: prevention.StepMessage, Tokens: -1}, {Type: prevention.StepMessage, CostCents: math.NaN()},
		{Type: prevention.StepMessage, Model: strings.Repeat("m", governance.MaxNameBytes+1)},
		{Type: prevention.StepToolCall, Tool: "search\xff"}, {Type: prevention.StepToolCall, Tool: "sh\u200bell"},
		{Type: prevention.StepToolCall, Tool: "shell\x00"}, {Type: prevention.StepLLMResponse, Model: "gpt\u202e"},
	} {
		if err := in.Validate(); !errors.Is(err, governance.ErrInvalidStep) {
			t.Errorf("%+v: got %v, want ErrInvalidStep", in.Type, err)
		}
	}
}

// snapshotReads counts Store.Snapshot calls.
type snapshotReads struct {
	governance.Store
	n atomic.Int32
}

func (s *snapshotReads) Snapshot(ctx context.Context, tenant, id string) (*snapshot.PolicySnapshot, error) {
	s.n.Add(1)
	return s.Store.Snapshot(ctx, tenant, id)
}

func TestPublishedSnapshotIsNotReadBack(t *testing.T) {
	st := &snapshotReads{Store: memstore.New()}
	r, _ := newRunner(t, st)
	if _, err := r.Publish(ctx, parse(t, allowAllDoc), "alice", ""); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := r.Start(ctx, governance.StartOptions{TenantID: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.n.Load(); n != 0 {
		t.Errorf("runs on the version this runner published read the snapshot back %d times, want 0", n)
	}
	// Another runner (another replica) reads it once.
	r2, _ := newRunner(t, st)
	for i := 0; i < 3; i++ {
		if _, err := r2.Start(ctx, governance.StartOptions{TenantID: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := st.n.Load(); n != 1 {
		t.Errorf("another runner read the snapshot %d times, want 1", n)
	}
}

// TestRunReturnsSwallowedViolation: a loop that drops the *Violation of a
// blocked step and returns nil still gets it from Runner.Run.
func TestRunReturnsSwallowedViolation(t *testing.T) {
	r, _ := newRunner(t, memstore.New())
	snap := parse(t, `{"tenant_id":"acme","thresholds":{},"policies":[{"id":"no-shell","kind":"tool_denylist","params":{"deny":["shell"]}}]}`)
	rec, err := r.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		_, _ = run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"}) // dropped
		return nil
	})
	var v *governance.Violation
	if !errors.As(err, &v) || v.PolicyID() != "no-shell" || v.StepIndex != 0 {
		t.Fatalf("Run returned %v, want the violation", err)
	}
	if rec.Status != governance.StatusFailedPolicy {
		t.Errorf("status %s", rec.Status)
	}
	// A loop that finishes its run itself and returns nil gets nil.
	rec, err = r.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		_, err := run.Finish(ctx)
		return err
	})
	if err != nil || rec.Status != governance.StatusSucceeded {
		t.Errorf("Run after Finish in the loop: %v %s", err, rec.Status)
	}
}
