package governance_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

// everyKindDoc has a policy of every built-in kind, CEL expressions over
// the step, its metadata and the run's elapsed time, and warn- and
// monitor-mode policies that record findings on most steps.
const everyKindDoc = `{"tenant_id":"acme","thresholds":{"max_tokens":1000,"max_cost_cents":100,"max_steps":30,
  "per_min":20,"max_s":3600,"warn_tokens":300,"mon_steps":3,"mon_s":2,"mon_pace":2},
 "policies":[
  {"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}},
  {"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}},
  {"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
  {"id":"pace","kind":"rate_limit","params":{"threshold":"per_min","window_seconds":60}},
  {"id":"clock","kind":"timeout","params":{"threshold":"max_s"}},
  {"id":"ssn","kind":"content","params":{"fields":["output","input"],"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}},
  {"id":"tools","kind":"tool_allowlist","params":{"allow":["search","shell","calc","rm"]}},
  {"id":"no-rm","kind":"tool_denylist","params":{"deny":["rm"]}},
  {"id":"shell-review","kind":"expression","params":{"expr":"step.type == 'tool_call' && step.tool == 'shell'","message":"review"},"enforcement":"warn"},
  {"id":"token-warn","kind":"budget","params":{"metric":"tokens","threshold":"warn_tokens"},"enforcement":"warn"},
  {"id":"step-watch","kind":"budget","params":{"metric":"steps","threshold":"mon_steps"},"enforcement":"monitor"},
  {"id":"slow","kind":"timeout","params":{"threshold":"mon_s"},"enforcement":"monitor"},
  {"id":"burst","kind":"rate_limit","params":{"threshold":"mon_pace","window_seconds":5},"enforcement":"monitor"},
  {"id":"prod","kind":"expression","params":{"expr":"'env' in step.metadata && step.metadata.env == 'prod'"},"enforcement":"monitor"},
  {"id":"late","kind":"expression","params":{"expr":"run.elapsed_seconds > 4.5 && run.total_cost_cents > 10.0","reason":"timeout"},"enforcement":"monitor"}
 ]}`

// runScript runs the steps through the runner, each after its delay, and
// returns the run's id; a step a policy blocks ends the script.
func runScript(t *testing.T, r *governance.Runner, clock *governance.FakeClock, opts governance.StartOptions, steps []scripted) string {
	t.Helper()
	run, err := r.Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range steps {
		clock.Advance(s.after)
		if _, err := run.Step(ctx, s.in); err != nil {
			if !errors.Is(err, governance.ErrRunStopped) || !run.Ended() {
				t.Fatalf("step: %v", err)
			}
			return run.ID()
		}
	}
	if _, err := run.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	return run.ID()
}

func withMeta(s scripted, kv ...string) scripted {
	s.in.Metadata = map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		s.in.Metadata[kv[i]] = kv[i+1]
	}
	return s
}

func withIO(s scripted, input, output string) scripted {
	s.in.Input, s.in.Output = input, output
	return s
}

func replay(t *testing.T, r *governance.Runner, runID string) *governance.ReplayReport {
	t.Helper()
	rep, err := r.Replay(ctx, "acme", runID)
	if err != nil {
		t.Fatalf("Replay: %v", err)
	}
	return rep
}

// outcomes is the outcome of each step of a report, "step:outcome".
func outcomes(rep *governance.ReplayReport) string {
	var out []string
	for _, s := range rep.Steps {
		out = append(out, fmt.Sprintf("%d:%s", s.StepIndex, s.Outcome))
	}
	return strings.Join(out, " ")
}

func allOutcomes(n int, o governance.ReplayOutcome) string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, fmt.Sprintf("%d:%s", i, o))
	}
	return strings.Join(out, " ")
}

// TestReplayReproducesEveryKind records runs under every built-in kind,
// CEL expressions, and warn- and monitor-mode policies — runs that
// complete and runs that each kind stops — on memstore and SQLite, and
// replays each: every decision, finding, status and inflection flag is
// reproduced.
func TestReplayReproducesEveryKind(t *testing.T) {
	busy := []scripted{
		withIO(llm(100, 2, "let me look"), "summarise the logs", "let me look"),
		tool("search"),
		withMeta(withIO(scripted{500 * time.Millisecond, governance.StepInput{Type: prevention.StepToolResult, Tool: "search", Output: "3 errors"}}, "", "3 errors"), "env", "prod"),
		llm(250, 5, "thinking"),
		tool("shell"),
		at(200*time.Millisecond, tool("calc")),
		at(100*time.Millisecond, llm(10, 4, "almost")),
		at(3*time.Second, withMeta(llm(10, 1, "done"), "env", "dev")),
	}
	blockers := []struct {
		name string
		last scripted
		at   time.Duration
	}{
		{"tokens", llm(950, 0, ""), time.Second},
		{"cost", llm(0, 99, ""), time.Second},
		{"rate", tool("calc"), 0}, // burst below
		{"timeout", llm(1, 0, ""), time.Hour},
		{"content output", llm(1, 0, "ssn 123-45-6789"), time.Second},
		{"content input", withIO(tool("search"), "find 987-65-4321", ""), time.Second},
		{"allowlist", tool("browser"), time.Second},
		{"denylist", tool("rm"), time.Second},
	}
	for _, sk := range stores {
		t.Run(sk.name, func(t *testing.T) {
			st := sk.open(t)
			r, clock := newRunner(t, st)
			snap := parse(t, everyKindDoc)

			id := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, busy)
			rep := replay(t, r, id)
			if got, want := outcomes(rep), allOutcomes(len(busy), governance.ReplayReproduced); got != want || !rep.Reproduced() {
				t.Errorf("completed run: %s\nwant %s\n%+v", got, want, rep.Steps)
			}
			findings := 0
			for _, s := range rep.Steps {
				findings += len(s.Stored.Findings)
			}
			if findings < 10 || len(rep.NotReplayable) != 0 || rep.Records != len(busy)+2 {
				t.Errorf("completed run: %d findings (want warnings and monitor findings), gaps %v, %d records", findings, rep.NotReplayable, rep.Records)
			}

			for _, b := range blockers {
				t.Run(b.name, func(t *testing.T) {
					steps := append([]scripted(nil), busy[:3]...)
					if b.name == "rate" {
						for i := 0; i < 20; i++ {
							steps = append(steps, at(time.Millisecond, tool("calc")))
						}
					}
					steps = append(steps, at(b.at, b.last))
					id := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, steps)
					run, _ := st.Run(ctx, "acme", id)
					if run.Status != governance.StatusFailedPolicy {
						t.Fatalf("the script did not stop the run: %s", run.Status)
					}
					rep := replay(t, r, id)
					if got, want := outcomes(rep), allOutcomes(*run.StoppedAtStep+1, governance.ReplayReproduced); got != want {
						t.Errorf("%s\nwant %s\n%+v", got, want, rep.Steps[len(rep.Steps)-1])
					}
					last := rep.Steps[len(rep.Steps)-1]
					if last.Recomputed == nil || last.Recomputed.Decision.Action != prevention.Block || last.Recomputed.Decision.PolicyID != run.ViolationPolicyID {
						t.Errorf("the stop is not recomputed: %+v", last.Recomputed)
					}
				})
			}
		})
	}
}

// TestReplayQueuedRun: a queued run starts with its first step, and its
// steps are timed from that step (not from when the run was enqueued), as
// the runner timed them; monitor-mode timeouts record the elapsed time of
// each.
func TestReplayQueuedRun(t *testing.T) {
	for _, sk := range stores {
		t.Run(sk.name, func(t *testing.T) {
			st := sk.open(t)
			r, clock := newRunner(t, st)
			run, err := r.Enqueue(ctx, governance.StartOptions{Snapshot: parse(t, `{"tenant_id":"acme","thresholds":{"s":1,"big":100},"policies":[
				{"id":"slow","kind":"timeout","params":{"threshold":"s"},"enforcement":"monitor"},
				{"id":"late","kind":"expression","params":{"expr":"run.elapsed_seconds > 1.5"},"enforcement":"monitor"},
				{"id":"stop","kind":"timeout","params":{"threshold":"big"}}]}`)})
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range []time.Duration{90 * time.Second, 2500 * time.Millisecond, time.Second, 95 * time.Second} {
				clock.Advance(d)
				run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
			}
			rep := replay(t, r, run.ID())
			if got, want := outcomes(rep), allOutcomes(4, governance.ReplayReproduced); got != want {
				t.Errorf("%s\nwant %s", got, want)
			}
			if f := rep.Steps[0].Stored.Findings; len(f) != 0 {
				t.Errorf("step 0 findings %+v: want none, the run starting with it (not 90 s after it was queued)", f)
			}
			if f := rep.Steps[2].Stored.Findings; len(f) != 2 || f[0].Observed != 3.5 {
				t.Errorf("step 2 findings %+v: want the 3.5 s since step 0", f)
			}
		})
	}
}

const tenantDoc = `{"tenant_id":"acme","thresholds":{"day_cents":100,"watch_cents":50,"tenant_rate":100},"policies":[
	{"id":"spend","kind":"tenant_budget","params":{"metric":"cost_cents","threshold":"day_cents","period":"day"}},
	{"id":"spend-watch","kind":"tenant_budget","params":{"metric":"cost_cents","threshold":"watch_cents","period":"day"},"enforcement":"monitor"},
	{"id":"tenant-pace","kind":"tenant_rate_limit","params":{"threshold":"tenant_rate","window_seconds":60}}]}`

// TestReplayTenantWideLimits: a run stopped by the tenant's spend across
// runs is reproduced from the totals its records state, and reported as
// not reproducible from this run alone; a forged record that says the
// run's own spend was under the limit is a mismatch.
func TestReplayTenantWideLimits(t *testing.T) {
	st := memstore.New()
	r, clock := newRunner(t, st)
	snap := parse(t, tenantDoc)
	first := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, []scripted{llm(0, 0, ""), llm(0, 70, "")})
	second := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, []scripted{llm(0, 15, ""), llm(0, 10, ""), llm(0, 10, "")})
	run, _ := st.Run(ctx, "acme", second)
	if run.StoppedAtStep == nil || *run.StoppedAtStep != 2 || run.ViolationPolicyID != "spend" {
		t.Fatalf("the tenant's budget did not stop the second run at step 2: %+v", run)
	}
	for _, id := range []string{first, second} {
		rep := replay(t, r, id)
		if !rep.Reproduced() || rep.Totals.Partial != len(rep.Steps) {
			t.Errorf("%s: %s", id, outcomes(rep))
		}
		var why []string
		for _, g := range rep.NotReplayable {
			why = append(why, g.PolicyID+":"+string(g.Why))
		}
		if got := strings.Join(why, " "); got != "spend:tenant_wide spend-watch:tenant_wide tenant-pace:tenant_wide" {
			t.Errorf("not replayable: %s", got)
		}
	}

	// The first run alone spent 70 at its step 1, over the monitor's 50:
	// a record that says its monitor did not fire contradicts the run's
	// own spend, whatever the other runs spent.
	forged := forge(t, st, first, func(recs []trace.Record) {
		recs[2].Findings, recs[2].Status = nil, trace.StatusOK
	})
	rep := replay(t, newRunnerOn(t, forged), first)
	if got := outcomes(rep); got != "0:partial 1:mismatch" {
		t.Errorf("forged: %s", got)
	}
}

// TestReplayHooks: Go hooks are evaluated again when the replaying runner
// has them, and taken from the records (not replayable) when it does not;
// a hook's failure is reproduced either way.
func TestReplayHooks(t *testing.T) {
	st := memstore.New()
	var calls int
	pii := prevention.NamedHook{ID: "pii-guard", Hook: prevention.HookFunc(func(_ context.Context, s *prevention.Step) (prevention.Decision, error) {
		calls++
		switch {
		case strings.Contains(s.Output, "password"):
			return prevention.Decision{Action: prevention.Block, Message: "credential in output"}, nil
		case strings.Contains(s.Output, "boom"):
			return prevention.Decision{}, errors.New("classifier unavailable")
		}
		return prevention.Allowed(), nil
	})}
	audit := prevention.NamedHook{ID: "audit", Enforcement: snapshot.EnforceWarn, Hook: prevention.HookFunc(func(_ context.Context, s *prevention.Step) (prevention.Decision, error) {
		if s.Type == prevention.StepToolCall {
			return prevention.Decision{Action: prevention.Block, Message: "tool call " + s.Tool}, nil
		}
		return prevention.Allowed(), nil
	})}
	r, clock := newRunner(t, st, governance.WithHooks(pii, audit))
	snap := parse(t, everyKindDoc)
	blocked := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, []scripted{llm(1, 0, "hi"), tool("search"), llm(1, 0, "the password is x")})
	failed := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, []scripted{tool("calc"), llm(1, 0, "boom")})

	for _, id := range []string{blocked, failed} {
		calls = 0
		rep := replay(t, r, id)
		if got, want := outcomes(rep), allOutcomes(len(rep.Steps), governance.ReplayReproduced); got != want || calls != len(rep.Steps) {
			t.Errorf("with the hooks: %s (hook called %d times)", got, calls)
		}

		plain, _ := newRunner(t, st)
		rep = replay(t, plain, id)
		if got, want := outcomes(rep), allOutcomes(len(rep.Steps), governance.ReplayPartial); got != want {
			t.Errorf("without the hooks: %s\n%+v", got, rep.Steps)
		}
		for _, s := range rep.Steps {
			var ids []string
			for _, g := range s.Gaps {
				if g.Why == governance.GapHook {
					ids = append(ids, g.PolicyID)
				}
			}
			if slices.Sort(ids); strings.Join(ids, " ") != "audit pii-guard" || len(s.Gaps) != 2 {
				t.Errorf("step %d gaps %+v", s.StepIndex, s.Gaps)
			}
		}
		if len(rep.NotReplayable) != 2 || !strings.Contains(rep.NotReplayable[0].Detail, "taken from the records") {
			t.Errorf("not replayable: %+v", rep.NotReplayable)
		}
	}
	// The failure, recorded as the runner records it, is recomputed the same.
	rep := replay(t, r, failed)
	if d := rep.Steps[1].Recomputed.Decision; d.Reason != prevention.ReasonSystemFailure || d.PolicyID != "pii-guard" || !strings.Contains(d.Message, "classifier unavailable") {
		t.Errorf("recomputed failure %v", d)
	}

	// A replaying hook that decides otherwise than the recorded one did
	// is a mismatch.
	strict := prevention.NamedHook{ID: "pii-guard", Hook: prevention.HookFunc(func(_ context.Context, s *prevention.Step) (prevention.Decision, error) {
		if s.Type == prevention.StepToolCall {
			return prevention.Decision{Action: prevention.Block, Message: "no tools"}, nil
		}
		return prevention.Allowed(), nil
	})}
	other, _ := newRunner(t, st, governance.WithHooks(strict))
	rep = replay(t, other, blocked)
	if got := outcomes(rep); got != "0:partial 1:mismatch 2:mismatch" {
		t.Errorf("another hook: %s", got)
	}
}

// TestReplayTruncatedContent: a step whose text was stored cut is
// evaluated on what was stored; where that decides otherwise for a policy
// that reads text, the step is not replayable rather than a mismatch, and
// where it decides the same, replayed in part.
func TestReplayTruncatedContent(t *testing.T) {
	st := memstore.New()
	r, clock := newRunner(t, st, governance.WithMaxContentBytes(16))
	snap := parse(t, `{"tenant_id":"acme","thresholds":{"max_tokens":100},"policies":[
		{"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}},
		{"id":"ssn","kind":"content","params":{"patterns":["\\b\\d{3}-\\d{2}-\\d{4}\\b"]}},
		{"id":"tool-names","kind":"content","params":{"fields":["tool"],"patterns":["^rm$"]}}]}`)
	id := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, []scripted{
		llm(1, 0, "short"),
		llm(1, 0, "a long answer that goes on and on"),
		withIO(tool("ls"), "a long input to the tool", ""),
		llm(1, 0, "a long preamble, then 123-45-6789"),
	})
	rep := replay(t, r, id)
	if got := outcomes(rep); got != "0:reproduced 1:partial 2:partial 3:not_replayable" || !rep.Reproduced() {
		t.Fatalf("%s", got)
	}
	// Cut after the match: the stop is reproduced, in part.
	within := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, []scripted{llm(1, 0, "123-45-6789 then a long tail")})
	if got := outcomes(replay(t, r, within)); got != "0:partial" {
		t.Errorf("a match within what was stored: %s", got)
	}
	last := rep.Steps[3]
	if len(last.Gaps) != 1 || last.Gaps[0].PolicyID != "ssn" || last.Gaps[0].Why != governance.GapTruncated ||
		!strings.Contains(last.Gaps[0].Detail, "output") || !strings.Contains(last.Difference, "stored cut") {
		t.Errorf("step 3: %+v", last)
	}
	if last.Recomputed.Decision.Action != prevention.Allow || last.Stored.Decision.PolicyID != "ssn" {
		t.Errorf("step 3: stored %v, recomputed %v", last.Stored.Decision, last.Recomputed.Decision)
	}
}

// TestReplayWithheldStep: a step stopped while it was withheld is not
// replayable (its record holds what was delivered, not what was decided
// on); the steps before it are reproduced.
func TestReplayWithheldStep(t *testing.T) {
	st := memstore.New()
	r, _ := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, checkDoc)})
	run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Output: "hello", CostCents: 5})
	attempted := governance.StepInput{Type: prevention.StepLLMResponse, Output: "hello, ssn 123-45-6789", Tokens: 7, CostCents: 1}
	delivered := attempted
	delivered.Output = "hello, "
	if _, err := run.Withhold(ctx, attempted, delivered); err == nil {
		t.Fatal("not blocked")
	}
	rep := replay(t, r, run.ID())
	if got := outcomes(rep); got != "0:reproduced 1:not_replayable" || !rep.Reproduced() {
		t.Errorf("%s", got)
	}
	if s := rep.Steps[1]; s.Recomputed != nil || len(s.Gaps) != 1 || s.Gaps[0].Why != governance.GapWithheld {
		t.Errorf("withheld step: %+v", s)
	}
	if len(rep.NotReplayable) != 1 || rep.NotReplayable[0].Why != governance.GapWithheld {
		t.Errorf("not replayable: %+v", rep.NotReplayable)
	}
}

// TestReplayUnknownKind: a runner that lacks a kind the run's snapshot
// uses replays the other policies and takes that kind's decisions from
// the records.
func TestReplayUnknownKind(t *testing.T) {
	st := memstore.New()
	r, clock := newRunner(t, st)
	id := runScript(t, r, clock, governance.StartOptions{Snapshot: parse(t, everyKindDoc)}, []scripted{tool("search"), tool("shell"), tool("rm")})
	builtin, err := governance.NewRunner(st)
	if err != nil {
		t.Fatal(err)
	}
	rep := replay(t, builtin, id)
	if got := outcomes(rep); got != "0:partial 1:partial 2:partial" || !rep.Reproduced() {
		t.Errorf("%s\n%+v", got, rep.Steps)
	}
	var ids []string
	for _, g := range rep.NotReplayable {
		if g.Why != governance.GapUnknownKind || !strings.Contains(g.Detail, `"expression"`) {
			t.Errorf("gap %+v", g)
		}
		ids = append(ids, g.PolicyID)
	}
	if strings.Join(ids, " ") != "shell-review prod late" {
		t.Errorf("not replayable: %v", ids)
	}
}

// TestReplayForgedDecision: a writer who changes a stored decision and
// recomputes the whole chain (and the run row and incident) leaves a run
// that verifies; replay finds the step.
func TestReplayForgedDecision(t *testing.T) {
	st := memstore.New()
	r, clock := newRunner(t, st)
	snap := parse(t, everyKindDoc)
	completed := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, []scripted{llm(100, 1, ""), llm(250, 1, ""), tool("calc"), llm(10, 1, "")})
	stopped := runScript(t, r, clock, governance.StartOptions{Snapshot: snap}, []scripted{llm(100, 1, ""), tool("rm")})

	tests := []struct {
		name, run string
		edit      func(recs []trace.Record)
		want      string
		diff      string
	}{
		{"a warning's observed value", completed, func(recs []trace.Record) {
			recs[2].Findings[0].Observed = 299 // token-warn at step 1
		}, "0:reproduced 1:mismatch 2:reproduced 3:reproduced", "observed 299"},
		{"a warning removed", completed, func(recs []trace.Record) {
			recs[3].Findings, recs[3].Status, recs[3].Decision = nil, trace.StatusOK, &prevention.Decision{Action: prevention.Allow}
		}, "0:reproduced 1:reproduced 2:mismatch 3:reproduced", "finding 1: stored none"},
		{"the stop's policy", stopped, func(recs []trace.Record) {
			recs[2].Decision.PolicyID, recs[2].Findings[len(recs[2].Findings)-1].PolicyID = "tools", "tools"
			recs[3].ViolationPolicyID = "tools"
		}, "0:reproduced 1:mismatch", "block by tools"},
		{"a status", completed, func(recs []trace.Record) {
			recs[1].Status = trace.StatusWarning
		}, "0:mismatch 1:reproduced 2:reproduced 3:reproduced", "status: stored warning, recomputed ok"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forged := forge(t, st, tt.run, tt.edit)
			if _, err := governance.VerifyRun(ctx, forged, "acme", tt.run); err != nil {
				t.Fatalf("the forged run does not verify: %v", err)
			}
			rep := replay(t, newRunnerOn(t, forged), tt.run)
			if got := outcomes(rep); got != tt.want || rep.Reproduced() {
				t.Errorf("%s\nwant %s", got, tt.want)
			}
			for _, s := range rep.Mismatches() {
				if !strings.Contains(s.Difference, tt.diff) {
					t.Errorf("step %d: difference %q, want it to say %q", s.StepIndex, s.Difference, tt.diff)
				}
			}
		})
	}

	// Altered without recomputing the chain: nothing is replayed.
	altered := rewritten{Store: st, records: func(recs []trace.Record) []trace.Record {
		recs[2].Findings[0].Observed = 1
		return recs
	}}
	if _, err := newRunnerOn(t, altered).Replay(ctx, "acme", completed); !errors.Is(err, trace.ErrChainBroken) {
		t.Errorf("replay of an altered chain: %v, want ErrChainBroken", err)
	}
	if _, err := r.Replay(ctx, "globex", completed); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("replay as another tenant: %v, want ErrNotFound", err)
	}
}

func newRunnerOn(t *testing.T, st governance.Store, opts ...governance.Option) *governance.Runner {
	t.Helper()
	r, _ := newRunner(t, st, opts...)
	return r
}

// forge copies run runID of st into a new memstore, its records changed
// by edit and every hash recomputed, with the run row and incident that
// agree, as a writer who can rewrite the whole database would: the copy
// verifies (without a signed checkpoint).
func forge(t *testing.T, st governance.Store, runID string, edit func(recs []trace.Record)) *memstore.Store {
	t.Helper()
	run, err := st.Run(ctx, "acme", runID)
	if err != nil {
		t.Fatal(err)
	}
	snap, _ := st.Snapshot(ctx, "acme", run.SnapshotID)
	recs, _ := st.Records(ctx, "acme", runID)
	contents, _ := st.Contents(ctx, "acme", runID)
	incs, _ := st.Incidents(ctx, governance.IncidentFilter{TenantID: "acme", RunID: runID})
	edit(recs)
	writes := make([]governance.StepWrite, len(recs))
	prev := trace.GenesisHash
	for i := range recs {
		writes[i] = governance.StepWrite{Record: recs[i], Body: trace.Seal(&recs[i], prev, nil)}
		writes[i].Record = recs[i]
		if c, ok := contents[recs[i].StepIndex]; ok && recs[i].Kind == trace.KindStep {
			writes[i].Content = &c
		}
		prev = recs[i].Hash
	}
	out := memstore.New()
	if err := out.PutSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if id := recs[0].ShadowSnapshotID; id != "" {
		shadow, _ := st.Snapshot(ctx, "acme", id)
		if err := out.PutSnapshot(ctx, shadow); err != nil {
			t.Fatal(err)
		}
	}
	row := governance.RunRecord{RunID: run.RunID, TenantID: run.TenantID, TraceID: run.TraceID, SnapshotID: run.SnapshotID,
		Status: governance.StatusRunning, CreatedAt: run.CreatedAt, StartedAt: run.StartedAt, Labels: run.Labels}
	if err := out.CreateRun(ctx, row, writes[0]); err != nil {
		t.Fatal(err)
	}
	var stop *governance.StepWrite
	for i := 1; i < len(recs); i++ {
		r := recs[i]
		switch {
		case r.Kind == trace.KindStep && r.Inflection:
			stop = &writes[i]
		case r.Kind == trace.KindStep:
			if err := out.AppendStep(ctx, writes[i]); err != nil {
				t.Fatal(err)
			}
		default:
			c := governance.Close{TenantID: "acme", RunID: runID, Step: stop, End: writes[i],
				Status: governance.RunStatus(r.RunStatus), Reason: r.Reason, StoppedAtStep: r.StoppedAtStep,
				ViolationPolicyID: r.ViolationPolicyID, IncidentID: r.IncidentID, Message: r.Message, EndedAt: r.At}
			if stop != nil && len(incs) == 1 {
				inc := incs[0]
				inc.RecordHash, inc.PolicyID = stop.Record.Hash, stop.Record.Decision.PolicyID
				c.Incident = &inc
			}
			if err := out.CloseRun(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}

// TestReplayHookOrder: hooks the replaying runner lacks are evaluated
// from the records in the order the records show they ran, not the order
// they first objected in.
func TestReplayHookOrder(t *testing.T) {
	st := memstore.New()
	warnIf := func(id string, cond func(*prevention.Step) bool) prevention.NamedHook {
		return prevention.NamedHook{ID: id, Enforcement: snapshot.EnforceWarn, Hook: prevention.HookFunc(func(_ context.Context, s *prevention.Step) (prevention.Decision, error) {
			if cond(s) {
				return prevention.Decision{Action: prevention.Warn, Message: id}, nil
			}
			return prevention.Allowed(), nil
		})}
	}
	pii := warnIf("pii", func(s *prevention.Step) bool { return strings.Contains(s.Input, "secret") })
	audit := warnIf("audit", func(s *prevention.Step) bool { return s.Type == prevention.StepToolCall })
	r, clock := newRunner(t, st, governance.WithHooks(pii, audit))
	id := runScript(t, r, clock, governance.StartOptions{Snapshot: parse(t, allowAllDoc)},
		[]scripted{tool("search"), withIO(tool("search"), "the secret", "")})
	rep := replay(t, newRunnerOn(t, st), id)
	if got := outcomes(rep); got != "0:partial 1:partial" {
		t.Errorf("%s\n%+v", got, rep.Steps)
	}
}
