package governance_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
)

const streamDoc = `{"tenant_id":"acme","thresholds":{"max_cost_cents":100},"policies":[
 {"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}},
 {"id":"secrets","kind":"content","params":{"fields":["output","input"],"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b","(?i)password\\s*[:=]","BEGIN(?s:.*)END$"]}},
 {"id":"invalid","kind":"content","params":{"patterns":["\\x{FFFD}x"]}}]}`

// TestStreamChecksAsCheck: a Stream's checks decide as Run.Check does,
// whether the text grows, goes back, is replaced, or is not valid UTF-8
// (replaced by U+FFFD as in every check).
func TestStreamChecksAsCheck(t *testing.T) {
	r, _ := newRunner(t, memstore.New())
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, streamDoc)})
	if err != nil {
		t.Fatal(err)
	}
	s := run.Stream()
	outputs := []string{
		"", "The", "The pass", "The password", "The password :", "The password", "BEGIN", "BEGIN a\nEND", "BEGIN a\nEND.",
		"ab", "ab\xff", "ab\xffx", "ab\xe2\x82", "ab\xe2\x82\xac", "ab\xe2\x82\xacx", "id 123-45-678", "id 123-45-6789",
	}
	blocks := 0
	for i, out := range outputs {
		in := governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Input: "prompt", Output: out, CostCents: float64(i)}
		want, werr := run.Check(ctx, in)
		got, gerr := s.Check(ctx, in)
		if werr != nil || gerr != nil || got.Decision != want.Decision {
			t.Fatalf("output %q: Stream.Check %v, %v; Run.Check %v, %v", out, got.Decision, gerr, want.Decision, werr)
		}
		if got.Decision.Action == prevention.Block {
			blocks++
		}
	}
	if blocks != 4 {
		t.Errorf("%d checks blocked, want 4", blocks)
	}
	if _, err := s.Check(ctx, governance.StepInput{Type: "bogus"}); !errors.Is(err, governance.ErrInvalidStep) {
		t.Errorf("malformed step: %v", err)
	}
	if run.Record().ChainLength != 1 {
		t.Error("a Stream's Check recorded something")
	}
}

// TestStreamWithhold: a Stream's Withhold stops the run as Run.Withhold
// does, recording what was delivered.
func TestStreamWithhold(t *testing.T) {
	st := memstore.New()
	r, _ := newRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, streamDoc)})
	if err != nil {
		t.Fatal(err)
	}
	s := run.Stream()
	text := "your password is safe; my password: hunter2"
	for _, n := range []int{4, 13, 24, 36, len(text)} {
		attempted := governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Output: text[:n]}
		delivered := attempted
		delivered.Output = text[:min(n, 24)]
		_, err := s.Withhold(ctx, attempted, delivered)
		var v *governance.Violation
		switch {
		case n < 36 && err != nil:
			t.Fatalf("%q: %v", attempted.Output, err)
		case n == 36 && (!errors.As(err, &v) || v.PolicyID() != "secrets"):
			t.Fatalf("%q: %v, want the secrets violation", attempted.Output, err)
		case n > 36 && !errors.Is(err, governance.ErrRunStopped):
			t.Fatalf("after the stop: %v", err)
		}
	}
	contents, _ := st.Contents(ctx, "acme", run.ID())
	if len(contents) != 1 || contents[0].Output != text[:24] || contents[0].Metadata[governance.MetadataWithheld] != "true" {
		t.Errorf("recorded %+v", contents)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Error(err)
	}
}

// TestReservationStream: a reservation's Stream checks with the
// reservation's holds left out, as Reservation.Check does, and is done
// with the reservation.
func TestReservationStream(t *testing.T) {
	r, _ := newRunner(t, memstore.New())
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, tenantBudgetDoc)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := run.Reserve(ctx, governance.StepInput{Type: prevention.StepLLMResponse, CostCents: 60})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Stream()
	in := governance.StepInput{Type: prevention.StepLLMResponse, Output: "so far", CostCents: 60}
	if ev, err := s.Check(ctx, in); err != nil || ev.Decision.Action != prevention.Allow {
		t.Fatalf("the stream's own reservation counted: %v, %v", ev.Decision, err)
	}
	if ev, err := run.Stream().Check(ctx, in); err != nil || ev.Decision.Action != prevention.Block {
		t.Fatalf("the run's Stream leaves the reservation in: %v, %v", ev.Decision, err)
	}
	if err := res.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Check(ctx, in); !errors.Is(err, governance.ErrReservationDone) {
		t.Errorf("Check after Release: %v", err)
	}
	if _, err := s.Withhold(ctx, in, in); !errors.Is(err, governance.ErrReservationDone) {
		t.Errorf("Withhold after Release: %v", err)
	}
}

// TestStreamConcurrent: checks through one Stream from several
// goroutines are serialized (run with -race) and decide as Run.Check.
func TestStreamConcurrent(t *testing.T) {
	r, _ := newRunner(t, memstore.New())
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, streamDoc)})
	if err != nil {
		t.Fatal(err)
	}
	s := run.Stream()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			text := ""
			for i := range 50 {
				text += fmt.Sprintf("w%d ", i)
				out := text
				if g == 0 && i == 40 {
					out += "password="
				}
				in := governance.StepInput{Type: prevention.StepLLMResponse, Output: out}
				got, err := s.Check(ctx, in)
				want, _ := run.Check(ctx, in)
				if err != nil || got.Decision != want.Decision {
					errs <- fmt.Errorf("%q: %v, %v; want %v", out, got.Decision, err, want.Decision)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
