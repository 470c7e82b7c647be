package governance_test

import (
	"errors"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

const checkDoc = `{"tenant_id":"acme","thresholds":{"max_cost_cents":100,"max_steps":10},"policies":[
 {"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}},
 {"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
 {"id":"no-ssn","kind":"content","params":{"fields":["output"],"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}}]}`

func TestCheckIsDry(t *testing.T) {
	st := memstore.New()
	r, _ := newRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, checkDoc)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, CostCents: 60}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   governance.StepInput
		want prevention.Action
		pol  string
	}{
		{"within budget", governance.StepInput{Type: prevention.StepLLMResponse, CostCents: 40}, prevention.Allow, ""},
		{"over budget counts the hypothetical step", governance.StepInput{Type: prevention.StepLLMResponse, CostCents: 40.5}, prevention.Block, "cost"},
		{"content", governance.StepInput{Type: prevention.StepLLMResponse, Output: "ssn 123-45-6789"}, prevention.Block, "no-ssn"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := run.Check(ctx, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if ev.Decision.Action != tc.want || ev.Decision.PolicyID != tc.pol {
				t.Errorf("decision %v, want %v by %q", ev.Decision, tc.want, tc.pol)
			}
		})
	}
	rec := run.Record()
	if run.Ended() || rec.StepCount != 1 || rec.TotalCostCents != 60 || rec.ChainLength != 2 {
		t.Errorf("Check changed the run: %+v", rec)
	}
	if _, err := run.Check(ctx, governance.StepInput{Type: "bogus"}); !errors.Is(err, governance.ErrInvalidStep) {
		t.Errorf("malformed step: %v", err)
	}
}

func TestWithholdRecordsWhatWasDelivered(t *testing.T) {
	st := memstore.New()
	r, _ := newRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, checkDoc)})
	if err != nil {
		t.Fatal(err)
	}
	attempted := governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Output: "hello, ssn 123-45-6789", Tokens: 7, CostCents: 1}
	delivered := attempted
	delivered.Output = "hello, "
	delivered.Metadata = map[string]string{"stream": "blocked"}

	// Allowed: nothing recorded.
	ok := governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Output: "hello"}
	if ev, err := run.Withhold(ctx, ok, ok); err != nil || ev.Decision.Action != prevention.Allow {
		t.Fatalf("allowed step: %v %v", ev.Decision, err)
	}
	if n := run.Record().ChainLength; n != 1 {
		t.Fatalf("allowed Withhold recorded something: chain %d", n)
	}

	// Not a part of attempted.
	bad := delivered
	bad.Tokens = 8
	if _, err := run.Withhold(ctx, attempted, bad); !errors.Is(err, governance.ErrInvalidStep) {
		t.Errorf("delivered with more tokens: %v", err)
	}

	_, err = run.Withhold(ctx, attempted, delivered)
	var v *governance.Violation
	if !errors.As(err, &v) || v.PolicyID() != "no-ssn" || v.StepIndex != 0 {
		t.Fatalf("withheld step: %v", err)
	}
	if !run.Ended() {
		t.Fatal("run goes on after a withheld block")
	}
	recs, _ := st.Records(ctx, "acme", run.ID())
	step := recs[1]
	if step.Kind != trace.KindStep || !step.Inflection || step.Tokens != 7 || step.TotalCostCents != 1 || step.Decision.PolicyID != "no-ssn" {
		t.Errorf("inflection record %+v", step)
	}
	contents, _ := st.Contents(ctx, "acme", run.ID())
	c := contents[0]
	if c.Output != "hello, " || c.Metadata[governance.MetadataWithheld] != "true" || c.Metadata["stream"] != "blocked" {
		t.Errorf("recorded content %+v", c)
	}
	stored, _ := st.Run(ctx, "acme", run.ID())
	if stored.Status != governance.StatusFailedPolicy || stored.ViolationPolicyID != "no-ssn" {
		t.Errorf("stored run %+v", stored)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Error(err)
	}
	if _, err := run.Check(ctx, ok); !errors.Is(err, governance.ErrRunStopped) || !errors.As(err, &v) {
		t.Errorf("Check after the run stopped: %v", err)
	}
	if _, err := run.Withhold(ctx, ok, ok); !errors.Is(err, governance.ErrRunStopped) {
		t.Errorf("Withhold after the run stopped: %v", err)
	}
}
