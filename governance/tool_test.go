package governance_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

const toolDoc = `{"tenant_id":"acme","thresholds":{},"policies":[
	{"id":"tools","kind":"tool_allowlist","params":{"allow":["search","lookup"]}},
	{"id":"no-ssn","kind":"content","params":{"fields":["output"],"patterns":["\\d{3}-\\d{2}-\\d{4}"]}}]}`

type query struct {
	Q string `json:"q"`
}

func TestWrapTool(t *testing.T) {
	st := memstore.New()
	r, _ := newRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, toolDoc)})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	search, err := governance.WrapTool("search", func(_ context.Context, q query) ([]string, error) {
		calls.Add(1)
		if q.Q == "ssn" {
			return []string{"123-45-6789"}, nil
		}
		if q.Q == "fail" {
			return nil, errors.New("index offline")
		}
		return []string{"a", "b"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	shell, _ := governance.WrapTool("shell", func(context.Context, string) (string, error) {
		calls.Add(1)
		return "ran", nil
	})
	rctx := governance.ContextWithRun(ctx, run)

	// Allowed: two steps, the input and output as JSON.
	out, err := search(rctx, query{Q: "go"})
	if err != nil || len(out) != 2 {
		t.Fatalf("search: %v %v", out, err)
	}
	// The tool's own error: recorded, returned, the run goes on.
	if _, err := search(rctx, query{Q: "fail"}); err == nil || err.Error() != "index offline" {
		t.Fatalf("failing tool: %v", err)
	}
	// No run in the context: refused, not run.
	if _, err := search(ctx, query{Q: "go"}); !errors.Is(err, governance.ErrNoRun) {
		t.Fatalf("without a run: %v", err)
	}
	if calls.Load() != 2 {
		t.Fatalf("%d calls, want 2", calls.Load())
	}
	recs, _ := st.Records(ctx, "acme", run.ID())
	cs, _ := st.Contents(ctx, "acme", run.ID())
	if len(recs) != 5 || recs[1].StepType != prevention.StepToolCall || recs[2].StepType != prevention.StepToolResult || recs[2].Tool != "search" {
		t.Fatalf("records %+v", recs)
	}
	if cs[0].Input != `{"q":"go"}` || cs[1].Output != `["a","b"]` || cs[3].Metadata[governance.MetadataToolError] != "index offline" {
		t.Errorf("contents %+v", cs)
	}

	// An output a policy blocks is not returned; the run stops.
	out, err = search(rctx, query{Q: "ssn"})
	var v *governance.Violation
	if !errors.As(err, &v) || v.PolicyID() != "no-ssn" || out != nil {
		t.Fatalf("blocked output: %v %v", out, err)
	}
	// A denied tool never runs (the run has stopped anyway; on a fresh run
	// the allowlist stops it at the call).
	run2, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, toolDoc)})
	before := calls.Load()
	if _, err := shell(governance.ContextWithRun(ctx, run2), "rm -rf /"); !errors.As(err, &v) || v.PolicyID() != "tools" {
		t.Fatalf("denied tool: %v", err)
	}
	if calls.Load() != before {
		t.Error("a denied tool ran")
	}
	recs, _ = st.Records(ctx, "acme", run2.ID())
	if inf, ok := trace.InflectionOf(recs); !ok || inf.StepIndex != 0 {
		t.Errorf("inflection %+v %v", inf, ok)
	}
}

func TestWrapToolRefusesBadNames(t *testing.T) {
	fn := func(context.Context, string) (string, error) { return "", nil }
	for _, name := range []string{"", "sh\u200bell", "tool\x00"} {
		if _, err := governance.WrapTool(name, fn); err == nil {
			t.Errorf("WrapTool(%q) accepted", name)
		}
	}
	if _, err := governance.WrapTool[string, string]("ok", nil); err == nil {
		t.Error("nil function accepted")
	}
}

// TestWrapToolConcurrent: calls from many goroutines on one run are each
// recorded as a call followed, later, by its result.
func TestWrapToolConcurrent(t *testing.T) {
	st := memstore.New()
	r, _ := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, toolDoc)})
	lookup, _ := governance.WrapTool("lookup", func(_ context.Context, n int) (int, error) { return n * 2, nil })
	rctx := governance.ContextWithRun(ctx, run)
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if out, err := lookup(rctx, i); err != nil || out != 2*i {
				t.Errorf("lookup(%d) = %d, %v", i, out, err)
			}
		}()
	}
	wg.Wait()
	recs, _ := st.Records(ctx, "acme", run.ID())
	calls, results := 0, 0
	for _, rec := range recs {
		switch rec.StepType {
		case prevention.StepToolCall:
			calls++
		case prevention.StepToolResult:
			results++
			if results > calls {
				t.Fatal("a result recorded before its call")
			}
		}
	}
	if calls != 16 || results != 16 {
		t.Errorf("%d calls, %d results", calls, results)
	}
}
