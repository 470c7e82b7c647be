package storetest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// secretsJSON adds to the suite's policies a monitor-mode content policy
// over input and output (it records a finding and lets the step pass).
const secretsJSON = `{
  "tenant_id": "acme",
  "thresholds": {"max_steps": 30},
  "policies": [
    {"id": "step-limit", "kind": "budget", "params": {"metric": "steps", "threshold": "max_steps"}},
    {"id": "secrets", "kind": "content", "params": {"fields": ["input", "output"], "patterns": ["sk-[a-z0-9]{6}"]}, "enforcement": "monitor"}
  ]
}`

// strictJSON blocks every step: a shadow that would stop a run at once.
const strictJSON = `{
  "tenant_id": "acme",
  "thresholds": {"none": 0},
  "policies": [{"id": "strict", "kind": "budget", "params": {"metric": "steps", "threshold": "none"}}]
}`

func parseSnap(t *testing.T, doc string) *snapshot.PolicySnapshot {
	t.Helper()
	s, err := snapshot.Parse("storetest.json", []byte(doc), T0, prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// testRetentionAndShadow: a run kept redacted stores its content with
// the content policies' matches masked, a run kept as hashes stores no
// text, and both verify and replay, reporting the steps whose content
// was not kept; a run with a shadow snapshot that blocks every step
// completes, records every shadow decision in its chain, verifies, and
// replays them.
func testRetentionAndShadow(t *testing.T, open Opener) {
	st := open(t)
	clock := governance.NewFakeClock(T0)
	ids := &seqIDs{}
	r, err := governance.NewRunner(st, governance.WithClock(clock), governance.WithIDGenerator(ids.next),
		governance.WithRetention(trace.RetentionRedacted, "acme"))
	if err != nil {
		t.Fatal(err)
	}
	snap := parseSnap(t, secretsJSON)
	steps := []governance.StepInput{
		{Type: prevention.StepLLMResponse, Input: "key please", Output: "here: sk-abc123 and sk-def456", Metadata: map[string]string{"k": "v"}},
		{Type: prevention.StepLLMResponse, Input: "thanks", Output: "welcome"},
		{Type: prevention.StepMessage},
	}
	runWith := func(opts governance.StartOptions) string {
		t.Helper()
		opts.Snapshot = snap
		run, err := r.Start(ctx, opts)
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range steps {
			clock.Advance(1e9)
			if _, err := run.Step(ctx, in); err != nil {
				t.Fatalf("step: %v", err)
			}
		}
		if _, err := run.Finish(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
			t.Fatalf("VerifyRun of a run kept %s: %v", opts.Retention, err)
		}
		return run.ID()
	}

	redacted := runWith(governance.StartOptions{})
	cs, err := st.Contents(ctx, "acme", redacted)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]trace.Content{
		0: {Input: "key please", Output: "here: " + trace.RedactMask + " and " + trace.RedactMask, Metadata: map[string]string{"k": "v"}},
		1: {Input: "thanks", Output: "welcome"},
	}
	if diff := cmp.Diff(want, cs); diff != "" {
		t.Errorf("redacted contents (-want +got):\n%s", diff)
	}
	// A run may keep less than its tenant, never more.
	hashes := runWith(governance.StartOptions{Retention: trace.RetentionHashes})
	if cs, _ := st.Contents(ctx, "acme", hashes); len(cs) != 0 {
		t.Errorf("a run kept as hashes stored content: %v", cs)
	}
	full := runWith(governance.StartOptions{Retention: trace.RetentionFull})
	recs, _ := st.Records(ctx, "acme", full)
	if recs[0].Retention != trace.RetentionRedacted {
		t.Errorf("a run asking for full content under a tenant kept redacted is recorded %q", recs[0].Retention)
	}

	for _, tc := range []struct {
		run, want string
		retention trace.Retention
	}{
		{redacted, "content_not_kept reproduced reproduced", trace.RetentionRedacted},
		{hashes, "content_not_kept content_not_kept reproduced", trace.RetentionHashes},
	} {
		rep, err := r.Replay(ctx, "acme", tc.run)
		if err != nil {
			t.Fatalf("Replay: %v", err)
		}
		var got []string
		for _, s := range rep.Steps {
			got = append(got, string(s.Outcome))
		}
		if strings.Join(got, " ") != tc.want || rep.Retention != tc.retention || rep.Totals.ContentNotKept == 0 {
			t.Errorf("replay of a run kept %s: %v (retention %s), want %s", tc.retention, got, rep.Retention, tc.want)
		}
	}

	// A shadow that blocks every step never stops the run.
	strict := parseSnap(t, strictJSON)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap, Shadow: strict})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range steps {
		if _, err := run.Step(ctx, in); err != nil {
			t.Fatalf("a shadow Block stopped the run: %v", err)
		}
	}
	if rec, err := run.Finish(ctx); err != nil || rec.Status != governance.StatusSucceeded {
		t.Fatalf("Finish: %v, %v", rec.Status, err)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Fatalf("VerifyRun of a shadow run: %v", err)
	}
	got, err := st.Snapshot(ctx, "acme", strict.ID())
	if err != nil || got.ContentHash() != strict.ContentHash() {
		t.Fatalf("the shadow snapshot is not stored: %v", err)
	}
	recs, _ = st.Records(ctx, "acme", run.ID())
	for _, rec := range recs {
		if rec.Kind == trace.KindStep && (rec.ShadowDecision == nil || rec.ShadowDecision.Action != prevention.Block || rec.ShadowDecision.PolicyID != "strict") {
			t.Errorf("step %d: shadow decision %+v, want strict's block", rec.StepIndex, rec.ShadowDecision)
		}
	}
	out, ok := governance.ShadowOf(recs)
	if !ok || out.WouldStopAtStep == nil || *out.WouldStopAtStep != 0 || out.PolicyID != "strict" || out.Blocks != 3 || out.Change != governance.WhatIfWouldStop {
		t.Errorf("ShadowOf = %+v, %v", out, ok)
	}
	rep, err := r.Replay(ctx, "acme", run.ID())
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Reproduced() || rep.ShadowTotals == nil || rep.ShadowTotals.Reproduced != 3 {
		t.Errorf("replay of a shadow run: reproduced %v, shadow totals %+v", rep.Reproduced(), rep.ShadowTotals)
	}
}
