package export_test

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/sqlite"
)

// TestEvidenceOutlook: an evidence bundle carries each step's headroom
// and, for a run with a shadow snapshot, where that snapshot would have
// stopped it; streamed or in memory, the bytes are the same, Verify
// accepts them, and a bundle whose headroom or shadow comparison is not
// the chain's is refused.
func TestEvidenceOutlook(t *testing.T) {
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "x.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	for _, f := range []*fixture.F{fixture.New(t, nil), fixture.New(t, st)} {
		run, err := f.Runner.Start(ctx, governance.StartOptions{Snapshot: fixture.Policy(t, "acme", 50, fixture.T0),
			Shadow: fixture.Policy(t, "acme", 1, fixture.T0)})
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			f.Clock.Advance(1e9)
			if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 10, CostCents: 2}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := run.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		req := export.Request{TenantID: "acme", RunID: run.ID()}
		checkSameExport(t, "shadow run", f.Exp, bundle.TypeEvidence, req, export.FormatJSON)
		a, err := f.Exp.Export(ctx, bundle.TypeEvidence, req, export.FormatJSON)
		if err != nil {
			t.Fatal(err)
		}
		v, err := bundle.Verify(dataOf(t, a), f.Pub)
		if err != nil {
			t.Fatalf("Verify: %v", err)
		}
		b := v.Bundle.(*bundle.Evidence)
		sh := b.Shadow
		if sh == nil || sh.WouldStopAtStep == nil || *sh.WouldStopAtStep != 1 || sh.PolicyID != "step-limit" || sh.Change != "would_stop" ||
			sh.Blocks != 2 || sh.Snapshot == nil || sh.Snapshot.ContentHash() != fixture.Policy(t, "acme", 1, fixture.T0).ContentHash() {
			t.Fatalf("shadow comparison %+v", sh)
		}
		if len(b.StepHeadroom) != 3 {
			t.Fatalf("headroom of %d steps, want 3", len(b.StepHeadroom))
		}
		var steps *bundle.PolicyHeadroom
		for i, p := range b.StepHeadroom[2].Policies {
			if p.PolicyID == "step-limit" {
				steps = &b.StepHeadroom[2].Policies[i]
			}
		}
		if steps == nil || *steps.Observed != 3 || steps.Limit != 50 || *steps.Fraction != 0.06 || b.StepHeadroom[2].Closest == "" {
			t.Errorf("headroom at step 2: %+v (closest %q)", steps, b.StepHeadroom[2].Closest)
		}

		// The exporter's own bundle, changed, no longer checks.
		for name, edit := range map[string]func(b *bundle.Evidence){
			"headroom observed": func(b *bundle.Evidence) { v := 1.0; b.StepHeadroom[2].Policies[0].Observed = &v },
			"closest":           func(b *bundle.Evidence) { b.StepHeadroom[0].Closest = "other" },
			"shadow stop":       func(b *bundle.Evidence) { at := 2; b.Shadow.WouldStopAtStep = &at },
			"shadow dropped":    func(b *bundle.Evidence) { b.Shadow = nil },
			"shadow snapshot":   func(b *bundle.Evidence) { b.Shadow.Snapshot = fixture.Policy(t, "acme", 2, fixture.T0) },
		} {
			e, err := f.Exp.Evidence(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			edit(e)
			if err := bundle.Check(e); !errors.Is(err, bundle.ErrInconsistent) {
				t.Errorf("%s: Check = %v, want ErrInconsistent", name, err)
			}
		}
	}
}
