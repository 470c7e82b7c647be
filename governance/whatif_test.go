package governance_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

const whatIfRecordedDoc = `{"tenant_id":"acme","thresholds":{"max_tokens":1000,"max_cost_cents":100},"policies":[
	{"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}},
	{"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}},
	{"id":"tools","kind":"tool_allowlist","params":{"allow":["search","calc","shell"]}}]}`

// whatIfCorpus records five runs under whatIfRecordedDoc, a second apart,
// and returns their ids by name:
//
//	completes  300+300+100 tokens, 10+10+5 cents; search, calc
//	tokens     400+400+400 tokens: stopped at step 3 by tokens
//	browser    a browser call: stopped at step 2 by tools
//	small      50 tokens and a search
//	cancelled  600 tokens and a shell call, then cancelled
func whatIfCorpus(t *testing.T, st governance.Store) (*governance.Runner, map[string]string) {
	t.Helper()
	r, clock := newRunner(t, st)
	snap := parse(t, whatIfRecordedDoc)
	ids := map[string]string{}
	ids["completes"] = runScript(t, r, clock, governance.StartOptions{Snapshot: snap},
		[]scripted{llm(300, 10, "a"), tool("search"), llm(300, 10, "b"), tool("calc"), llm(100, 5, "c")})
	ids["tokens"] = runScript(t, r, clock, governance.StartOptions{Snapshot: snap},
		[]scripted{llm(400, 1, ""), llm(400, 1, ""), tool("search"), llm(400, 1, "")})
	ids["browser"] = runScript(t, r, clock, governance.StartOptions{Snapshot: snap},
		[]scripted{llm(100, 1, ""), tool("search"), tool("browser")})
	ids["small"] = runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, []scripted{llm(50, 1, ""), tool("search")})
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []scripted{llm(600, 3, ""), tool("shell")} {
		clock.Advance(s.after)
		if _, err := run.Step(ctx, s.in); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := run.Abort(ctx, prevention.ReasonUserAbort, "user left"); err != nil {
		t.Fatal(err)
	}
	ids["cancelled"] = run.ID()
	return r, ids
}

// change is a run's outcome under a candidate, in short.
type change struct {
	Change    governance.WhatIfChange
	Stop      string // candidate's "step/policy/reason", or its status
	Saved     *governance.WhatIfCost
	Recorded  string // recorded "step/policy/reason", or status
	CostNote  bool
	FlagCount int
}

func outcomeText(o governance.WhatIfOutcome) string {
	if o.StoppedAtStep == nil {
		return o.Status
	}
	return fmt.Sprintf("%d/%s/%s", *o.StoppedAtStep, o.PolicyID, o.Reason)
}

func changes(rep *governance.WhatIfReport, names map[string]string) map[string]change {
	byID := map[string]string{}
	for n, id := range names {
		byID[id] = n
	}
	out := map[string]change{}
	for _, r := range rep.Runs {
		out[byID[r.RunID]] = change{Change: r.Change, Stop: outcomeText(r.Candidate), Saved: r.Saved,
			Recorded: outcomeText(r.Recorded), CostNote: r.CostNote != "", FlagCount: len(r.Flags)}
	}
	return out
}

// TestWhatIfStricterAndLooser evaluates a stricter and a looser candidate
// on a corpus of recorded runs, on memstore and SQLite, and checks each
// run's change, where and why the candidate stops it, what that saves,
// and the totals.
func TestWhatIfStricterAndLooser(t *testing.T) {
	stricter := `{"tenant_id":"acme","thresholds":{"max_tokens":500,"max_cost_cents":100},"policies":[
		{"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}},
		{"id":"tools","kind":"tool_allowlist","params":{"allow":["search","calc","shell"]}},
		{"id":"no-shell","kind":"expression","params":{"expr":"step.tool == 'shell'"}}]}`
	looser := `{"tenant_id":"acme","thresholds":{"max_tokens":5000},"policies":[
		{"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}},
		{"id":"tools","kind":"tool_allowlist","params":{"allow":["search","calc","shell","browser"]}}]}`
	for _, sk := range stores {
		t.Run(sk.name, func(t *testing.T) {
			st := sk.open(t)
			r, ids := whatIfCorpus(t, st)

			rep, err := r.WhatIf(ctx, parse(t, stricter), governance.RunFilter{})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]change{
				"completes": {Change: governance.WhatIfWouldStop, Stop: "2/tokens/budget_exceeded", Recorded: "succeeded",
					Saved: &governance.WhatIfCost{Steps: 2, Tokens: 100, CostCents: 5}},
				"tokens": {Change: governance.WhatIfStopsEarlier, Stop: "1/tokens/budget_exceeded", Recorded: "3/tokens/budget_exceeded",
					Saved: &governance.WhatIfCost{Steps: 2, Tokens: 400, CostCents: 1}},
				"browser":   {Change: governance.WhatIfUnchanged, Stop: "2/tools/policy_block", Recorded: "2/tools/policy_block"},
				"small":     {Change: governance.WhatIfUnchanged, Stop: "succeeded", Recorded: "succeeded"},
				"cancelled": {Change: governance.WhatIfWouldStop, Stop: "0/tokens/budget_exceeded", Recorded: "cancelled", Saved: &governance.WhatIfCost{Steps: 1}},
			}
			if diff := cmp.Diff(want, changes(rep, ids)); diff != "" {
				t.Errorf("stricter (-want +got):\n%s", diff)
			}
			wantTotals := governance.WhatIfTotals{Runs: 5, Unchanged: 2, WouldStop: 2, StopsEarlier: 1,
				Saved: governance.WhatIfCost{Steps: 5, Tokens: 500, CostCents: 6}}
			if diff := cmp.Diff(wantTotals, rep.Totals); diff != "" {
				t.Errorf("stricter totals (-want +got):\n%s", diff)
			}
			if rep.Runs[0].RunID != ids["cancelled"] || rep.CandidateID == "" || rep.TenantID != "acme" {
				t.Errorf("report: newest first, candidate and tenant named: %+v", rep)
			}

			rep, err = r.WhatIf(ctx, parse(t, looser), governance.RunFilter{})
			if err != nil {
				t.Fatal(err)
			}
			want = map[string]change{
				"completes": {Change: governance.WhatIfUnchanged, Stop: "succeeded", Recorded: "succeeded"},
				"tokens":    {Change: governance.WhatIfWouldContinue, Stop: governance.StatusContinues, Recorded: "3/tokens/budget_exceeded", CostNote: true},
				"browser":   {Change: governance.WhatIfWouldContinue, Stop: governance.StatusContinues, Recorded: "2/tools/policy_block", CostNote: true},
				"small":     {Change: governance.WhatIfUnchanged, Stop: "succeeded", Recorded: "succeeded"},
				"cancelled": {Change: governance.WhatIfUnchanged, Stop: "cancelled", Recorded: "cancelled"},
			}
			if diff := cmp.Diff(want, changes(rep, ids)); diff != "" {
				t.Errorf("looser (-want +got):\n%s", diff)
			}
			if rep.Totals.WouldContinue != 2 || rep.Totals.CostUnknown != 2 || rep.Totals.Unchanged != 3 || rep.Totals.Saved != (governance.WhatIfCost{}) {
				t.Errorf("looser totals %+v", rep.Totals)
			}

			// The recorded policies themselves change nothing.
			rep, err = r.WhatIf(ctx, parse(t, whatIfRecordedDoc), governance.RunFilter{})
			if err != nil || rep.Totals.Unchanged != 5 {
				t.Errorf("the recorded policies: %+v %v", rep.Totals, err)
			}
		})
	}
}

// TestWhatIfFilters: status, time range and tenant select the runs; a
// candidate of another tenant is refused; nothing is written.
func TestWhatIfFilters(t *testing.T) {
	st := memstore.New()
	r, ids := whatIfCorpus(t, st)
	stopped, err := r.WhatIf(ctx, parse(t, whatIfRecordedDoc), governance.RunFilter{Status: governance.StatusFailedPolicy})
	if err != nil || len(stopped.Runs) != 2 {
		t.Fatalf("failed_policy runs: %+v %v", stopped, err)
	}
	tokens, _ := st.Run(ctx, "acme", ids["tokens"])
	small, _ := st.Run(ctx, "acme", ids["small"])
	between, err := r.WhatIf(ctx, parse(t, whatIfRecordedDoc), governance.RunFilter{From: tokens.CreatedAt, To: small.CreatedAt})
	if err != nil || len(between.Runs) != 2 || between.Runs[0].RunID != ids["browser"] || between.Runs[1].RunID != ids["tokens"] {
		t.Errorf("runs created in [tokens, small): %+v %v", between, err)
	}
	if _, err := r.WhatIf(ctx, parse(t, whatIfRecordedDoc), governance.RunFilter{TenantID: "globex"}); err == nil || !strings.Contains(err.Error(), "tenant") {
		t.Errorf("candidate of another tenant: %v", err)
	}
	before, _ := st.Runs(ctx, governance.RunFilter{TenantID: "acme"})
	if _, err := r.WhatIf(ctx, parse(t, `{"tenant_id":"acme","thresholds":{"n":0},"policies":[{"id":"none","kind":"budget","params":{"metric":"steps","threshold":"n"}}]}`), governance.RunFilter{}); err != nil {
		t.Fatal(err)
	}
	after, _ := st.Runs(ctx, governance.RunFilter{TenantID: "acme"})
	if diff := cmp.Diff(before, after); diff != "" {
		t.Errorf("what-if changed the runs:\n%s", diff)
	}
}

// TestWhatIfFlags: runs the candidate cannot evaluate exactly are
// flagged — hooks the program does not run, limits across runs, text
// stored cut, a withheld step — and a run that does not verify is not
// evaluated, the others still are.
func TestWhatIfFlags(t *testing.T) {
	st := memstore.New()
	audit := prevention.NamedHook{ID: "audit", Enforcement: snapshot.EnforceMonitor, Hook: prevention.HookFunc(func(_ context.Context, s *prevention.Step) (prevention.Decision, error) {
		if s.Tool == "shell" {
			return prevention.Decision{Action: prevention.Block, Message: "shell"}, nil
		}
		return prevention.Allowed(), nil
	})}
	r, clock := newRunner(t, st, governance.WithHooks(audit), governance.WithMaxContentBytes(8))
	snap := parse(t, whatIfRecordedDoc)
	hooked := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, []scripted{tool("shell"), llm(1, 0, "")})
	cut := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, []scripted{llm(1, 0, "a long answer, 123-45-6789")})
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, checkDoc)})
	attempted := governance.StepInput{Type: prevention.StepLLMResponse, Output: "ssn 123-45-6789"}
	delivered := attempted
	delivered.Output = "ssn "
	run.Withhold(ctx, attempted, delivered)
	withheld := run.ID()
	plain := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, []scripted{llm(1, 0, "")})

	plainRunner := newRunnerOn(t, st)
	candidate := parse(t, `{"tenant_id":"acme","thresholds":{"day":1000},"policies":[
		{"id":"ssn","kind":"content","params":{"patterns":["\\d{3}-\\d{2}-\\d{4}"]}},
		{"id":"spend","kind":"tenant_budget","params":{"metric":"cost_cents","threshold":"day","period":"day"}}]}`)
	rep, err := plainRunner.WhatIf(ctx, candidate, governance.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]string{}
	for _, wr := range rep.Runs {
		var why []string
		for _, f := range wr.Flags {
			why = append(why, f.PolicyID+":"+string(f.Why))
		}
		flags[wr.RunID] = strings.Join(why, " ")
	}
	want := map[string]string{
		hooked:   "audit:hook spend:tenant_wide",
		cut:      "spend:tenant_wide :truncated",
		withheld: "spend:tenant_wide :withheld",
		plain:    "spend:tenant_wide",
	}
	if diff := cmp.Diff(want, flags); diff != "" {
		t.Errorf("flags (-want +got):\n%s", diff)
	}
	if rep.Totals.Flagged != 4 {
		t.Errorf("flagged %d", rep.Totals.Flagged)
	}
	for _, wr := range rep.Runs {
		if wr.RunID == cut && wr.Change != governance.WhatIfUnchanged {
			// The SSN was past the 8 bytes stored: the candidate cannot see it.
			t.Errorf("cut run: %s", wr.Change)
		}
	}

	// A run altered behind the store's back is not evaluated.
	altered := rewrittenRun{Store: st, runID: hooked, edit: func(recs []trace.Record) { recs[1].Tokens = 99 }}
	rep, err = newRunnerOn(t, altered).WhatIf(ctx, candidate, governance.RunFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, wr := range rep.Runs {
		if (wr.RunID == hooked) != (wr.Change == governance.WhatIfNotEvaluated) || (wr.RunID == hooked && !strings.Contains(wr.Error, "record 1")) {
			t.Errorf("%s: %s %q", wr.RunID, wr.Change, wr.Error)
		}
	}
	if rep.Totals.NotEvaluated != 1 || rep.Totals.Runs != 4 {
		t.Errorf("totals %+v", rep.Totals)
	}
}

// rewrittenRun is a store whose records of one run were changed behind
// its back, without recomputing any hash.
type rewrittenRun struct {
	governance.Store
	runID string
	edit  func([]trace.Record)
}

func (s rewrittenRun) Records(ctx context.Context, tenant, run string) ([]trace.Record, error) {
	recs, err := s.Store.Records(ctx, tenant, run)
	if err == nil && run == s.runID {
		s.edit(recs)
	}
	return recs, err
}
