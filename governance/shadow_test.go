package governance_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

// strictDoc blocks every step (a budget of 0 steps) and every output
// that names a key.
const strictDoc = `{"tenant_id":"acme","thresholds":{"none":0},"policies":[
  {"id":"keys","kind":"content","params":{"patterns":["sk-[a-z0-9]+"]}},
  {"id":"strict","kind":"budget","params":{"metric":"steps","threshold":"none"}}]}`

// TestShadowNeverStopsARun: a shadow snapshot that blocks every step
// never stops the run, blocks nothing, and its decisions are in the
// chain; Run.Shadow and ShadowOf say where it would have stopped.
func TestShadowNeverStopsARun(t *testing.T) {
	st := memstore.New()
	r, clock := newRunner(t, st)
	strict := parse(t, strictDoc)
	id := runScript(t, r, clock, governance.StartOptions{Snapshot: parse(t, everyKindDoc), Shadow: strict},
		[]scripted{llm(100, 1, ""), llm(50, 1, "sk-abc"), tool("calc"), llm(10, 1, "")})
	run, _ := st.Run(ctx, "acme", id)
	if run.Status != governance.StatusSucceeded || run.StepCount != 4 {
		t.Fatalf("run %s after 4 steps, want succeeded", run.Status)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", id); err != nil {
		t.Fatal(err)
	}
	recs, _ := st.Records(ctx, "acme", id)
	if recs[0].ShadowSnapshotID != strict.ID() || recs[0].ShadowSnapshotHash != strict.ContentHash() {
		t.Errorf("run_start binds shadow %s %s", recs[0].ShadowSnapshotID, recs[0].ShadowSnapshotHash)
	}
	want := []string{"strict", "keys", "strict", "strict"}
	for i, rec := range recs[1:5] {
		d := rec.ShadowDecision
		if d == nil || d.Action != prevention.Block || d.PolicyID != want[i] || rec.Status == trace.StatusViolation {
			t.Errorf("step %d: shadow %+v, status %s; want %s's block, the step allowed", i, d, rec.Status, want[i])
		}
	}
	out, ok := governance.ShadowOf(recs)
	if !ok || *out.WouldStopAtStep != 0 || out.PolicyID != "strict" || out.Reason != prevention.ReasonBudgetExceeded ||
		out.Blocks != 4 || out.Differs != 4 || out.EnforcingStoppedAtStep != nil || out.Change != governance.WhatIfWouldStop {
		t.Errorf("ShadowOf = %+v", out)
	}

	// On a run the enforcing snapshot stops, the shadow that lets the
	// step pass would have continued.
	loose := parse(t, `{"tenant_id":"acme","thresholds":{"many":1000},"policies":[{"id":"many","kind":"budget","params":{"metric":"steps","threshold":"many"}}]}`)
	run2, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, everyKindDoc), Shadow: loose})
	if err != nil {
		t.Fatal(err)
	}
	run2.Step(ctx, llm(1, 1, "").in)
	if _, err := run2.Step(ctx, tool("rm").in); !errors.As(err, new(*governance.Violation)) {
		t.Fatalf("the enforcing snapshot did not stop the run: %v", err)
	}
	got, ok := run2.Shadow()
	if !ok || got.WouldStopAtStep != nil || *got.EnforcingStoppedAtStep != 1 || got.EnforcingPolicyID != "no-rm" || got.Change != governance.WhatIfWouldContinue {
		t.Errorf("Run.Shadow = %+v", got)
	}
	recs2, _ := st.Records(ctx, "acme", run2.ID())
	if again, _ := governance.ShadowOf(recs2); again.Change != got.Change || again.Steps != 2 {
		t.Errorf("ShadowOf from the records %+v, the run said %+v", again, got)
	}
	if _, ok := governance.ShadowOf(recs2[:0]); ok {
		t.Error("ShadowOf of no records has a shadow")
	}
}

func TestShadowRefused(t *testing.T) {
	r, _ := newRunner(t, memstore.New())
	other := parse(t, strings.Replace(strictDoc, `"acme"`, `"globex"`, 1))
	if _, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, everyKindDoc), Shadow: other}); err == nil || !strings.Contains(err.Error(), "globex") {
		t.Errorf("a shadow of another tenant: %v", err)
	}
	if _, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, everyKindDoc), Retention: "some"}); err == nil {
		t.Error("an unknown retention was accepted")
	}
	if _, err := governance.NewRunner(memstore.New(), governance.WithRetention("none")); err == nil {
		t.Error("WithRetention(none) was accepted")
	}
}

// TestReplayShadowDecisions: replay evaluates every recorded shadow
// decision again; one altered, with the chain recomputed so that the run
// verifies, is a mismatch.
func TestReplayShadowDecisions(t *testing.T) {
	st := memstore.New()
	r, clock := newRunner(t, st)
	id := runScript(t, r, clock, governance.StartOptions{Snapshot: parse(t, everyKindDoc), Shadow: parse(t, strictDoc)},
		[]scripted{llm(100, 1, ""), llm(50, 1, "sk-abc"), tool("calc")})
	rep := replay(t, r, id)
	if !rep.Reproduced() || rep.ShadowTotals == nil || rep.ShadowTotals.Reproduced != 3 || rep.Steps[1].Shadow.Recomputed.Decision.PolicyID != "keys" {
		t.Fatalf("replay of a shadow run: %+v", rep.ShadowTotals)
	}

	forged := forge(t, st, id, func(recs []trace.Record) {
		recs[2].ShadowDecision.PolicyID = "strict" // the step the keys policy blocked
		recs[2].ShadowFindings[0].PolicyID = "strict"
	})
	if _, err := governance.VerifyRun(ctx, forged, "acme", id); err != nil {
		t.Fatalf("the forged run does not verify: %v", err)
	}
	rep = replay(t, newRunnerOn(t, forged), id)
	ms := rep.Mismatches()
	if rep.Reproduced() || rep.ShadowTotals.Mismatch != 1 || len(ms) != 1 || ms[0].StepIndex != 1 || ms[0].Outcome != governance.ReplayReproduced ||
		!strings.Contains(ms[0].Shadow.Difference, "keys") {
		t.Fatalf("replay of an altered shadow decision: reproduced %v, totals %+v, mismatches %+v", rep.Reproduced(), rep.ShadowTotals, ms)
	}
}

// TestWhatIfContentNotKept: a run kept as hashes cannot be evaluated for
// a candidate's content policy, and says so; for a candidate that reads
// no text it is evaluated as any run.
func TestWhatIfContentNotKept(t *testing.T) {
	st := memstore.New()
	r, clock := newRunner(t, st, governance.WithRetention(trace.RetentionHashes, "acme"))
	runScript(t, r, clock, governance.StartOptions{Snapshot: parse(t, everyKindDoc)}, []scripted{llm(10, 1, "fine"), llm(10, 1, "sk-abc")})
	rep, err := r.WhatIf(ctx, parse(t, `{"tenant_id":"acme","thresholds":{},"policies":[{"id":"keys","kind":"content","params":{"patterns":["sk-"]}}]}`), governance.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if w := rep.Runs[0]; w.Change != governance.WhatIfContentNotKept || rep.Totals.ContentNotKept != 1 || rep.Totals.Unchanged != 0 ||
		len(w.Flags) == 0 || w.Flags[len(w.Flags)-1].Why != governance.GapContentNotKept {
		t.Errorf("what-if of a content policy on a run kept as hashes: %+v", w)
	}
	rep, err = r.WhatIf(ctx, parse(t, `{"tenant_id":"acme","thresholds":{"one":1},"policies":[{"id":"one","kind":"budget","params":{"metric":"steps","threshold":"one"}}]}`), governance.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if w := rep.Runs[0]; w.Change != governance.WhatIfWouldStop || *w.Candidate.StoppedAtStep != 1 {
		t.Errorf("what-if of a step budget on a run kept as hashes: %+v", w)
	}
}

// keptContents is a store whose stored contents are edited as they are
// read (and that is no RangeStore, so VerifyRun reads them whole).
type keptContents struct {
	governance.Store
	edit func(map[int]trace.Content)
}

func (s keptContents) Contents(ctx context.Context, tenant, run string) (map[int]trace.Content, error) {
	cs, err := s.Store.Contents(ctx, tenant, run)
	if err == nil {
		if cs == nil {
			cs = map[int]trace.Content{}
		}
		s.edit(cs)
	}
	return cs, err
}

// TestVerifyKeptContent: what a run kept of its steps' content is bound
// by its records: the original text put back in place of the redacted
// one, or text stored for a run that keeps only hashes, fails VerifyRun.
func TestVerifyKeptContent(t *testing.T) {
	st := memstore.New()
	r, clock := newRunner(t, st)
	snap := parse(t, everyKindDoc)
	steps := []scripted{withIO(llm(10, 1, ""), "q", "call 123-45-6789 now"), llm(10, 1, "fine")}
	redacted := runScript(t, r, clock, governance.StartOptions{Snapshot: snap, Retention: trace.RetentionRedacted}, []scripted{withMeta(steps[0], "env", "dev"), steps[1]})
	hashes := runScript(t, r, clock, governance.StartOptions{Snapshot: snap, Retention: trace.RetentionHashes}, steps)
	cs, _ := st.Contents(ctx, "acme", redacted)
	// The ssn policy stops the run at step 0; its record keeps the text masked.
	if cs[0].Output != "call "+trace.RedactMask+" now" || cs[0].Metadata["env"] != "dev" {
		t.Fatalf("redacted contents %+v", cs)
	}
	for _, id := range []string{redacted, hashes} {
		if _, err := governance.VerifyRun(ctx, keptContents{st, func(map[int]trace.Content) {}}, "acme", id); err != nil {
			t.Fatalf("VerifyRun: %v", err)
		}
	}
	for name, tc := range map[string]struct {
		run  string
		edit func(map[int]trace.Content)
	}{
		"original text put back": {redacted, func(cs map[int]trace.Content) {
			c := cs[0]
			c.Output = "call 123-45-6789 now"
			cs[0] = c
		}},
		"text stored for a hash-only run": {hashes, func(cs map[int]trace.Content) { cs[0] = trace.Content{Input: "q"} }},
	} {
		_, err := governance.VerifyRun(ctx, keptContents{st, tc.edit}, "acme", tc.run)
		var ie *governance.IntegrityError
		if !errors.As(err, &ie) || !strings.Contains(ie.Problem, "content of step") {
			t.Errorf("%s: VerifyRun = %v, want an IntegrityError on the content", name, err)
		}
	}
}
