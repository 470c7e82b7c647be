package governance_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/faultstore"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/store/sqlite"
)

// ack is something the runner told the agent was recorded: a run's start,
// a step (allowed or the blocking one), a run's end, a published policy.
type ack struct {
	kind     string // start, step, block, end, policy
	tenant   string
	run      string
	seq      int    // position of the record in the chain
	hash     string // its hash
	incident string // block: the incident created with the stop
	version  int    // policy: the version published
}

// faultRun is what one run of the fault scenario saw.
type faultRun struct {
	acks []ack
	runs []string
	// problems are broken promises seen while the scenario ran.
	problems []string
}

func (f *faultRun) problem(format string, args ...any) {
	f.problems = append(f.problems, fmt.Sprintf(format, args...))
}

// stores opens a fresh store of each kind for the fault and isolation
// suites: the in-memory reference and a SQLite file.
var stores = []struct {
	name string
	open func(t testing.TB) governance.Store
}{
	{"memstore", func(t testing.TB) governance.Store { return memstore.New() }},
	{"sqlite", func(t testing.TB) governance.Store {
		// Durability is not what these suites test (the crash suite
		// is): NORMAL keeps hundreds of fresh files fast.
		s, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "stopline.db"), sqlite.WithSynchronous(sqlite.Normal))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}},
}

const faultPolicy = `{"tenant_id":"acme","thresholds":{"max_steps":4},"policies":[
	{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
	{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`

// seqIDs makes the scenario's ids the same on every repetition.
func seqIDs() func(string) string {
	var mu sync.Mutex
	n := map[string]int{}
	return func(kind string) string {
		mu.Lock()
		defer mu.Unlock()
		n[kind]++
		return fmt.Sprintf("%s-%03d", kind, n[kind])
	}
}

// faultScenario drives a runner over st the way an agent would, through
// every path that writes: publishing a policy, starting a run on the
// active policy, steps (with a checkpoint every 2), a policy stop with
// its incident, a queued run, Finish, the Run wrapper ending a run on a
// loop error, and Withhold. The agent stops a run at the first error.
// fs (the faulty store, or nil) says which calls failed, to classify
// errors.
func faultScenario(t testing.TB, st governance.Store, fs *faultstore.Store, signer note.Signer) *faultRun {
	t.Helper()
	out := &faultRun{}
	clock := governance.NewFakeClock(t0)
	r, err := governance.NewRunner(st, governance.WithClock(clock), governance.WithIDGenerator(seqIDs()),
		governance.WithCheckpoints(signer, 2))
	if err != nil {
		t.Fatal(err)
	}
	snap := parse(t, faultPolicy)
	other := parse(t, `{"tenant_id":"acme","thresholds":{"max_steps":9},"policies":[
		{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}]}`)

	// check classifies an error returned by the runner: it must be a
	// clean violation (want), or a failure to record that says so
	// (ErrRecordFailed) and carries the store's error; a failure to read
	// (the run never started) must carry the store's error.
	calls := func() int {
		if fs == nil {
			return 0
		}
		return len(fs.Calls())
	}
	check := func(what string, before int, err error, violationOK bool) {
		if err == nil {
			return
		}
		var v *governance.Violation
		if violationOK && errors.As(err, &v) && !errors.Is(err, governance.ErrRecordFailed) {
			return
		}
		if fs == nil {
			out.problem("%s: error without a fault: %v", what, err)
			return
		}
		failedWrite := false
		for _, c := range fs.Calls()[before:] {
			if c.Failed && !isRead(c.Method) {
				failedWrite = true
			}
		}
		switch {
		case !errors.Is(err, faultstore.ErrInjected):
			out.problem("%s: error does not carry the store's failure: %v", what, err)
		case failedWrite && !errors.Is(err, governance.ErrRecordFailed):
			out.problem("%s: a write failed but the error does not match ErrRecordFailed: %v", what, err)
		}
	}
	// step reports one step and records what was acknowledged. It
	// returns false when the agent must stop the run.
	step := func(run *governance.Run, in governance.StepInput, blockOK bool) bool {
		before := calls()
		clock.Advance(time.Second)
		res, err := run.Step(ctx, in)
		check(fmt.Sprintf("run %s step %d", run.ID(), res.Index), before, err, blockOK)
		if err == nil && !res.Recorded {
			out.problem("run %s step %d allowed without being recorded", run.ID(), res.Index)
		}
		if res.Recorded {
			a := ack{kind: "step", tenant: run.TenantID(), run: run.ID(), seq: res.Index + 1, hash: res.Hash}
			var v *governance.Violation
			if errors.As(err, &v) {
				a.kind, a.incident = "block", v.IncidentID
			}
			out.acks = append(out.acks, a)
		}
		if err != nil && !res.Recorded {
			// Fail closed: the run takes no further step, and records none.
			before := calls()
			if _, err2 := run.Step(ctx, in); !errors.Is(err2, governance.ErrRunStopped) {
				out.problem("run %s: step after a failed record: %v, want ErrRunStopped", run.ID(), err2)
			}
			if fs != nil {
				for _, c := range fs.Calls()[before:] {
					if !isRead(c.Method) {
						out.problem("run %s: step after a failed record wrote %s", run.ID(), c.Method)
					}
				}
			}
		}
		return err == nil
	}
	end := func(run *governance.Run, finish func() (governance.RunRecord, error)) {
		if run.Ended() {
			return
		}
		before := calls()
		rec, err := finish()
		check("end of run "+run.ID(), before, err, false)
		if rec.EndedAt != nil {
			out.acks = append(out.acks, ack{kind: "end", tenant: run.TenantID(), run: run.ID(), seq: rec.ChainLength - 1, hash: rec.HeadHash})
		}
	}
	started := func(run *governance.Run) {
		rec := run.Record()
		out.runs = append(out.runs, run.ID())
		out.acks = append(out.acks, ack{kind: "start", tenant: rec.TenantID, run: rec.RunID, seq: 0, hash: rec.HeadHash})
	}
	llmStep := governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Input: "q", Output: "a", Tokens: 3, CostCents: 0.5}

	// 1. Publish, then a run on the active policy until the budget stops it.
	before := calls()
	v, err := r.Publish(ctx, snap, "alice", "initial")
	check("publish", before, err, false)
	if err == nil {
		out.acks = append(out.acks, ack{kind: "policy", tenant: "acme", version: v.Version})
	}
	opts := governance.StartOptions{TenantID: "acme"}
	if err != nil {
		opts.Snapshot = snap // no active policy: name the snapshot
	}
	before = calls()
	run, err := r.Start(ctx, opts)
	check("start on the active policy", before, err, false)
	if err == nil {
		started(run)
		for i := 0; i < 5 && step(run, llmStep, i == 4); i++ {
		}
		end(run, func() (governance.RunRecord, error) { return run.Finish(ctx) })
	}

	// 2. A queued run of another snapshot: its first step starts it.
	before = calls()
	run, err = r.Enqueue(ctx, governance.StartOptions{Snapshot: other})
	check("enqueue", before, err, false)
	if err == nil {
		started(run)
		for i := 0; i < 3 && step(run, llmStep, false); i++ {
		}
		end(run, func() (governance.RunRecord, error) { return run.Finish(ctx) })
	}

	// 3. The Run wrapper: the loop fails after two steps.
	before = calls()
	var wrapped *governance.Run
	rec, err := r.Run(ctx, governance.StartOptions{Snapshot: snap}, func(ctx context.Context, run *governance.Run) error {
		wrapped = run
		started(run)
		for i := 0; i < 2; i++ {
			if !step(run, llmStep, false) {
				return errors.New("agent: step failed")
			}
		}
		return errors.New("agent: tool crashed")
	})
	if wrapped == nil {
		check("Run wrapper start", before, err, false)
	} else if rec.EndedAt != nil {
		out.acks = append(out.acks, ack{kind: "end", tenant: rec.TenantID, run: rec.RunID, seq: rec.ChainLength - 1, hash: rec.HeadHash})
	} else if !errors.Is(err, governance.ErrRecordFailed) {
		out.problem("Run wrapper: run %s not ended and the error does not say why: %v", rec.RunID, err)
	}

	// 4. Withhold: a forbidden tool call is stopped before it runs.
	before = calls()
	run, err = r.Start(ctx, governance.StartOptions{Snapshot: snap})
	check("start", before, err, false)
	if err == nil {
		started(run)
		if step(run, llmStep, false) {
			before = calls()
			clock.Advance(time.Second)
			attempted := governance.StepInput{Type: prevention.StepToolCall, Tool: "shell", Input: "rm -rf /"}
			_, err := run.Withhold(ctx, attempted, attempted)
			var v *governance.Violation
			check("withhold", before, err, true)
			if errors.As(err, &v) && !errors.Is(err, governance.ErrRecordFailed) {
				out.acks = append(out.acks, ack{kind: "block", tenant: "acme", run: run.ID(), seq: v.StepIndex + 1, hash: v.RecordHash, incident: v.IncidentID})
			}
		}
		end(run, func() (governance.RunRecord, error) { return run.Finish(ctx) })
	}
	return out
}

func isRead(method string) bool {
	for _, m := range faultstore.ReadMethods {
		if m == method {
			return true
		}
	}
	return false
}

// checkAcked checks that everything acknowledged is in st as it was
// acknowledged, then recovers every unfinished run (RecoverRun) and checks
// that every chain and every checkpoint of the store verifies.
func checkAcked(t testing.TB, st governance.Store, fr *faultRun, verifiers note.Verifiers) {
	t.Helper()
	for _, p := range fr.problems {
		t.Error(p)
	}
	for _, a := range fr.acks {
		switch a.kind {
		case "policy":
			vs, err := st.PolicyVersions(ctx, a.tenant)
			if err != nil || len(vs) < a.version {
				t.Errorf("acknowledged policy version %d lost: %v %v", a.version, vs, err)
			}
			continue
		}
		recs, err := st.Records(ctx, a.tenant, a.run)
		if err != nil {
			t.Errorf("acknowledged %s of run %s: %v", a.kind, a.run, err)
			continue
		}
		if a.seq >= len(recs) || recs[a.seq].Hash != a.hash {
			t.Errorf("acknowledged %s record %d of run %s (hash %.12s) lost: the run has %d records", a.kind, a.seq, a.run, a.hash, len(recs))
			continue
		}
		if a.kind == "block" {
			inc, err := st.Incident(ctx, a.tenant, a.incident)
			if err != nil || inc.RecordHash != a.hash || inc.RunID != a.run {
				t.Errorf("acknowledged stop of run %s: incident %s: %+v %v", a.run, a.incident, inc, err)
			}
		}
		if a.kind == "block" || a.kind == "end" {
			rec, err := st.Run(ctx, a.tenant, a.run)
			if err != nil || !rec.Status.Ended() || rec.HeadHash != recs[len(recs)-1].Hash {
				t.Errorf("acknowledged end of run %s: stored %+v %v", a.run, rec, err)
			}
		}
	}
	recoverAll(t, st)
	verifyAll(t, st, verifiers)
}

// recoverAll closes every run left queued or running, as an operator does
// after a restart, and checks it is recognisably unfinished until then.
func recoverAll(t testing.TB, st governance.Store) (recovered []string) {
	t.Helper()
	tenants, err := st.Tenants(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tenant := range tenants {
		runs, err := st.Runs(ctx, governance.RunFilter{TenantID: tenant})
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range runs {
			if run.Status.Ended() {
				continue
			}
			if run.Status != governance.StatusRunning && run.Status != governance.StatusQueued {
				t.Errorf("run %s: status %s", run.RunID, run.Status)
			}
			rec, err := governance.RecoverRun(ctx, st, tenant, run.RunID, "", t0.Add(time.Hour))
			if err != nil {
				t.Errorf("RecoverRun %s: %v", run.RunID, err)
				continue
			}
			if rec.Status != governance.StatusFailed || rec.TerminationReason != prevention.ReasonSystemFailure {
				t.Errorf("recovered run %s: %s/%s", run.RunID, rec.Status, rec.TerminationReason)
			}
			recovered = append(recovered, run.RunID)
		}
	}
	return recovered
}

// verifyAll checks every chain (VerifyStore) and every stored checkpoint.
func verifyAll(t testing.TB, st governance.Store, verifiers note.Verifiers) {
	t.Helper()
	rep, err := governance.VerifyStore(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Failures {
		t.Errorf("VerifyStore: %v", f)
	}
	if verifiers == nil {
		return
	}
	tenants, _ := st.Tenants(ctx)
	for _, tenant := range tenants {
		runs, _ := st.Runs(ctx, governance.RunFilter{TenantID: tenant})
		for _, run := range runs {
			if !run.Status.Ended() {
				t.Errorf("run %s still %s after recovery", run.RunID, run.Status)
			}
			if _, err := governance.VerifyRunCheckpoints(ctx, st, tenant, run.RunID, verifiers); err != nil {
				t.Errorf("checkpoints of run %s: %v", run.RunID, err)
			}
		}
	}
}

// TestFaultNthCall fails the N-th store call, for every N the scenario
// makes, in each way a store fails: once, from then on (a store that went
// away), only writes from then on (a full disk that still reads), and
// once after the write took effect (a commit whose answer was lost). Each
// time the runner must fail closed with an error matching ErrRecordFailed
// that carries the store's error, lose nothing it acknowledged, and leave
// a store that RecoverRun brings back to a state where every chain and
// checkpoint verifies.
func TestFaultNthCall(t *testing.T) {
	signer, verifiers := checkpointKeys(t, "stopline-faults")
	faults := []struct {
		name  string
		fault func(n int) faultstore.Fault
	}{
		{"transient", func(n int) faultstore.Fault { return faultstore.Fault{N: n, Mode: faultstore.Transient} }},
		{"persistent", func(n int) faultstore.Fault { return faultstore.Fault{N: n, Mode: faultstore.Persistent} }},
		{"persistent writes", func(n int) faultstore.Fault {
			return faultstore.Fault{N: n, Mode: faultstore.Persistent, Methods: faultstore.WriteMethods}
		}},
		{"transient after commit", func(n int) faultstore.Fault {
			return faultstore.Fault{N: n, Mode: faultstore.Transient, After: true}
		}},
		{"persistent after commit", func(n int) faultstore.Fault {
			return faultstore.Fault{N: n, Mode: faultstore.Persistent, After: true, Methods: faultstore.WriteMethods}
		}},
	}
	for _, sk := range stores {
		t.Run(sk.name, func(t *testing.T) {
			// The scenario without faults: it must pass clean, and it
			// says how many calls there are to fail.
			for _, f := range faults {
				t.Run(f.name, func(t *testing.T) {
					clean := faultstore.New(sk.open(t), f.fault(0))
					fr := faultScenario(t, clean, clean, signer)
					if len(fr.problems) > 0 || len(fr.acks) == 0 {
						t.Fatalf("scenario without faults: %v", fr.problems)
					}
					k := clean.Counted()
					t.Logf("%d store calls to fail, %d acknowledgements without faults", k, len(fr.acks))
					for n := 1; n <= k; n++ {
						fs := faultstore.New(sk.open(t), f.fault(n))
						fr := faultScenario(t, fs, fs, signer)
						if fs.Failures() == 0 {
							t.Errorf("N=%d: no fault injected", n)
						}
						fs.Heal()
						t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
							checkAcked(t, fs, fr, verifiers)
						})
					}
				})
			}
		})
	}
}
