package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/sqlite"
	"github.com/stopline/stopline/trace"
)

func TestOpenRunDerivesTotalsFromRecords(t *testing.T) {
	s := openStore(t, dbPath(t))
	c := startRun(t, s, newSnap(t, "acme"), "RUN-1", governance.StatusRunning)
	run, err := s.Run(ctx, "acme", "RUN-1")
	if err != nil {
		t.Fatal(err)
	}
	if run.StepCount != 0 || run.ChainLength != 1 || run.HeadHash != c.prev || run.TotalTokens != 0 {
		t.Errorf("new run: %+v", run)
	}
	appendSteps(t, s, c, 3)
	run, err = s.Run(ctx, "acme", "RUN-1")
	if err != nil {
		t.Fatal(err)
	}
	if run.StepCount != 3 || run.ChainLength != 4 || run.HeadHash != c.prev || run.TotalTokens != 30 || run.TotalCostCents != 4.5 ||
		run.Status != governance.StatusRunning || run.Labels["agent"] != "a1" || run.TraceID != "TRC-RUN-1" ||
		!run.CreatedAt.Equal(t0) || run.StartedAt == nil || !run.StartedAt.Equal(t0) || run.EndedAt != nil {
		t.Errorf("open run after 3 steps: %+v", run)
	}
	runs, err := s.Runs(ctx, governance.RunFilter{TenantID: "acme"})
	if err != nil || len(runs) != 1 || runs[0].HeadHash != c.prev || runs[0].StepCount != 3 {
		t.Errorf("Runs shows %+v %v", runs, err)
	}
}

func TestAppendStepRefusals(t *testing.T) {
	s := openStore(t, dbPath(t))
	snap := newSnap(t, "acme")
	c := startRun(t, s, snap, "RUN-1", governance.StatusQueued)

	good := c.next(false)
	wrongHash := good
	wrongHash.Record.Hash = "not-a-hash"
	runEnd := good
	runEnd.Record.Kind = trace.KindRunEnd
	reseal := func(mod func(*trace.Record)) governance.StepWrite {
		w := good
		mod(&w.Record)
		w.Body = trace.Seal(&w.Record, w.Record.PrevHash, nil)
		return w
	}
	otherTenant := reseal(func(r *trace.Record) { r.TenantID = "globex" })
	unknownRun := reseal(func(r *trace.Record) { r.RunID = "RUN-none" })
	gap := reseal(func(r *trace.Record) { r.Seq++ })
	offHead := reseal(func(r *trace.Record) { r.PrevHash = trace.GenesisHash })

	tests := []struct {
		name     string
		w        governance.StepWrite
		sentinel error // nil: any error
	}{
		{"hash is not a SHA-256", wrongHash, nil},
		{"run_end through AppendStep", runEnd, nil},
		{"empty body", governance.StepWrite{Record: good.Record}, nil},
		{"another tenant's run", otherTenant, governance.ErrNotFound},
		{"unknown run", unknownRun, governance.ErrNotFound},
		{"gap in seq", gap, governance.ErrChainConflict},
		{"prev_hash not the head", offHead, governance.ErrChainConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.AppendStep(ctx, tc.w)
			if err == nil || (tc.sentinel != nil && !errors.Is(err, tc.sentinel)) {
				t.Errorf("got %v, want %v", err, tc.sentinel)
			}
		})
	}

	// MarkRunning moves queued to running at the step's time, with the step.
	good.MarkRunning = true
	if err := s.AppendStep(ctx, good); err != nil {
		t.Fatal(err)
	}
	run, _ := s.Run(ctx, "acme", "RUN-1")
	if run.Status != governance.StatusRunning || run.StartedAt == nil || !run.StartedAt.Equal(good.Record.At) || run.StepCount != 1 {
		t.Errorf("after the first step with MarkRunning: %+v", run)
	}
	// A refused MarkRunning write changes nothing.
	dup := good
	if err := s.AppendStep(ctx, dup); !errors.Is(err, governance.ErrChainConflict) {
		t.Errorf("same step again: got %v, want ErrChainConflict", err)
	}

	// A cancelled context writes nothing.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.AppendStep(cctx, c.next(false)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v, want context.Canceled", err)
	}
	if recs, _ := s.Records(ctx, "acme", "RUN-1"); len(recs) != 2 {
		t.Errorf("%d records after refusals, want 2", len(recs))
	}
}

func TestCloseRunStoresTheStop(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)
	snap := newSnap(t, "acme")
	c := startRun(t, s, snap, "RUN-1", governance.StatusRunning)
	appendSteps(t, s, c, 2)
	cl, inc := blockRun(t, s, c, "INC-1")

	run, err := s.Run(ctx, "acme", "RUN-1")
	if err != nil {
		t.Fatal(err)
	}
	want := governance.RunRecord{RunID: "RUN-1", TenantID: "acme", TraceID: "TRC-RUN-1", SnapshotID: snap.ID(),
		Status: governance.StatusFailedPolicy, TerminationReason: prevention.ReasonPolicyBlock, StoppedAtStep: cl.StoppedAtStep,
		ViolationPolicyID: "tools", IncidentID: "INC-1", Message: "stopped", Labels: map[string]string{"agent": "a1"},
		CreatedAt: t0, StartedAt: &t0, EndedAt: &cl.EndedAt, StepCount: 3, TotalTokens: 30, TotalCostCents: 4.5,
		HeadHash: cl.End.Record.Hash, ChainLength: 5}
	if diff := cmp.Diff(want, run); diff != "" {
		t.Errorf("stopped run (-want +got):\n%s", diff)
	}
	got, err := s.Incident(ctx, "acme", "INC-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(inc, got); diff != "" {
		t.Errorf("incident (-want +got):\n%s", diff)
	}
	recs, err := s.Records(ctx, "acme", "RUN-1")
	if err != nil {
		t.Fatal(err)
	}
	if head, err := trace.Verify(recs); err != nil || head != run.HeadHash {
		t.Errorf("Verify: %s %v", head, err)
	}
	if inf, ok := trace.InflectionOf(recs); !ok || inf.StepIndex != 2 || inf.Hash != inc.RecordHash || inf.PolicyID != "tools" {
		t.Errorf("inflection: %+v %v", inf, ok)
	}
	// The stored body is the exact bytes that were written.
	var body []byte
	if err := rawDB(t, path).QueryRow(`SELECT body FROM records WHERE tenant_id = 'acme' AND run_id = 'RUN-1' AND seq = 3`).Scan(&body); err != nil {
		t.Fatal(err)
	}
	if string(body) != string(cl.Step.Body) {
		t.Errorf("stored body\n%s\nwant\n%s", body, cl.Step.Body)
	}
	cs, err := s.Contents(ctx, "acme", "RUN-1")
	if err != nil || len(cs) != 3 || trace.ContentHashOf(cs[2]) != recs[3].ContentHash {
		t.Errorf("contents: %v %v", cs, err)
	}
	if _, err := governance.VerifyRun(ctx, s, "acme", "RUN-1"); err != nil {
		t.Errorf("VerifyRun: %v", err)
	}

	// Closing again is refused, and writes nothing.
	again := cl
	again.End = c.end(governance.StatusSucceeded, prevention.ReasonCompleted, "", nil)
	again.Step, again.Incident, again.IncidentID = nil, nil, ""
	if err := s.CloseRun(ctx, again); !errors.Is(err, governance.ErrRunEnded) {
		t.Errorf("CloseRun of an ended run: got %v, want ErrRunEnded", err)
	}
	if err := s.AppendStep(ctx, c.next(false)); !errors.Is(err, governance.ErrRunEnded) {
		t.Errorf("AppendStep to an ended run: got %v, want ErrRunEnded", err)
	}
	if n := count(t, rawDB(t, path), `SELECT COUNT(*) FROM records WHERE run_id = 'RUN-1'`); n != 5 {
		t.Errorf("%d records after refused writes, want 5", n)
	}
}

func TestCloseRunRefusals(t *testing.T) {
	s := openStore(t, dbPath(t))
	snap := newSnap(t, "acme")
	c := startRun(t, s, snap, "RUN-1", governance.StatusRunning)
	appendSteps(t, s, c, 1)

	base := func(c *chain) governance.Close {
		step := c.next(true)
		idx := step.Record.StepIndex
		end := c.end(governance.StatusFailedPolicy, prevention.ReasonPolicyBlock, "", &idx)
		return governance.Close{TenantID: "acme", RunID: c.run, Step: &step, End: end, Status: governance.StatusFailedPolicy,
			Reason: prevention.ReasonPolicyBlock, StoppedAtStep: &idx, EndedAt: end.Record.At}
	}
	// Each case builds from a copy of the chain so that nothing advances it.
	cp := func() *chain { cc := *c; return &cc }
	tests := []struct {
		name     string
		mod      func(*governance.Close)
		sentinel error
	}{
		{"status does not end", func(cl *governance.Close) { cl.Status = governance.StatusRunning }, nil},
		{"blocking step not the inflection", func(cl *governance.Close) {
			st := *cl.Step
			st.Record.Inflection = false
			cl.Step = &st
		}, nil},
		{"end record of another run", func(cl *governance.Close) { cl.End.Record.RunID = "RUN-2" }, nil},
		{"end not extending the chain", func(cl *governance.Close) {
			cl.End.Record.PrevHash = trace.GenesisHash
			cl.End.Body = trace.Seal(&cl.End.Record, trace.GenesisHash, nil)
		}, governance.ErrChainConflict},
		{"unknown run", func(cl *governance.Close) {
			cl.RunID = "RUN-none"
			cl.Step.Record.RunID = "RUN-none"
			cl.Step.Body = trace.Seal(&cl.Step.Record, cl.Step.Record.PrevHash, nil)
			cl.End.Record.RunID = "RUN-none"
			cl.End.Body = trace.Seal(&cl.End.Record, cl.Step.Record.Hash, nil)
		}, governance.ErrNotFound},
		{"incident of another run", func(cl *governance.Close) {
			cl.Incident = &incident.Incident{ID: "INC-x", TenantID: "acme", RunID: "RUN-2", Status: incident.StatusOpen}
			cl.IncidentID = "INC-x"
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl := base(cp())
			tc.mod(&cl)
			err := s.CloseRun(ctx, cl)
			if err == nil || (tc.sentinel != nil && !errors.Is(err, tc.sentinel)) {
				t.Errorf("got %v, want %v", err, tc.sentinel)
			}
			run, _ := s.Run(ctx, "acme", "RUN-1")
			if run.Status != governance.StatusRunning || run.ChainLength != 2 {
				t.Errorf("a refused close changed the run: %+v", run)
			}
		})
	}
	// The untouched close goes through.
	if err := s.CloseRun(ctx, base(c)); err != nil {
		t.Errorf("CloseRun: %v", err)
	}
}

// Fifty runs appended to from fifty goroutines at once: no "database is
// locked", every chain intact.
func TestConcurrentAppendStep(t *testing.T) {
	s := openStore(t, dbPath(t))
	snap := newSnap(t, "acme")
	const runs, steps = 50, 20
	chains := make([]*chain, runs)
	for i := range chains {
		chains[i] = startRun(t, s, snap, fmt.Sprintf("RUN-%02d", i), governance.StatusQueued)
	}
	var wg sync.WaitGroup
	errs := make(chan error, runs*steps)
	for i, c := range chains {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range steps {
				w := c.next(false)
				w.MarkRunning = j == 0
				if err := s.AppendStep(ctx, w); err != nil {
					errs <- fmt.Errorf("run %d step %d: %w", i, j, err)
					return
				}
				if j%5 == 0 { // reads interleaved with the writes
					if _, err := s.Run(ctx, "acme", c.run); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, c := range chains {
		run, err := s.Run(ctx, "acme", c.run)
		if err != nil || run.StepCount != steps || run.HeadHash != c.prev || run.Status != governance.StatusRunning {
			t.Errorf("run %s: %+v %v", c.run, run, err)
		}
		if n, err := governance.VerifyRun(ctx, s, "acme", c.run); err != nil || n != steps+1 {
			t.Errorf("VerifyRun %s: %d %v", c.run, n, err)
		}
	}
}

// Two Store handles on one file (as two processes would have): each sees
// the other's commits at once, and their writers wait for each other
// rather than fail.
func TestSecondHandleSeesCommits(t *testing.T) {
	path := dbPath(t)
	s1, s2 := openStore(t, path), openStore(t, path)
	snap := newSnap(t, "acme")
	c := startRun(t, s1, snap, "RUN-1", governance.StatusRunning)
	appendSteps(t, s1, c, 2)
	if run, err := s2.Run(ctx, "acme", "RUN-1"); err != nil || run.StepCount != 2 || run.HeadHash != c.prev {
		t.Fatalf("second handle sees %+v %v", run, err)
	}
	cl, _ := blockRun(t, s1, c, "INC-1")
	run, err := s2.Run(ctx, "acme", "RUN-1")
	if err != nil || run.Status != governance.StatusFailedPolicy || run.HeadHash != cl.End.Record.Hash || run.IncidentID != "INC-1" {
		t.Errorf("second handle after CloseRun: %+v %v", run, err)
	}
	if _, err := s2.Incident(ctx, "acme", "INC-1"); err != nil {
		t.Errorf("second handle: incident: %v", err)
	}
	if _, err := governance.VerifyRun(ctx, s2, "acme", "RUN-1"); err != nil {
		t.Errorf("second handle: VerifyRun: %v", err)
	}

	// Both handles writing at once.
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		st := []*sqlite.Store{s1, s2}[i%2]
		c := startRun(t, st, snap, fmt.Sprintf("RUN-x%02d", i), governance.StatusRunning)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if err := st.AppendStep(ctx, c.next(false)); err != nil {
					errs <- err
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

func TestTenantIsolation(t *testing.T) {
	s := openStore(t, dbPath(t))
	snap := newSnap(t, "acme")
	if _, err := s.PublishPolicy(ctx, snap, governance.PolicyVersion{PublishedBy: "alice", PublishedAt: t0}); err != nil {
		t.Fatal(err)
	}
	c := startRun(t, s, snap, "RUN-1", governance.StatusRunning)
	appendSteps(t, s, c, 1)
	blockRun(t, s, c, "INC-1")
	open := startRun(t, s, snap, "RUN-2", governance.StatusRunning)
	if err := s.RecordExport(ctx, governance.ExportRecord{TenantID: "acme", BundleID: "B", Format: "json", BundleHash: "h", RunID: "RUN-1", IncidentID: "INC-1"}); err != nil {
		t.Fatal(err)
	}

	const other = "globex"
	notFound := []struct {
		name string
		err  error
	}{
		{"Run", second(s.Run(ctx, other, "RUN-1"))},
		{"Records", second(s.Records(ctx, other, "RUN-1"))},
		{"Contents", second(s.Contents(ctx, other, "RUN-1"))},
		{"Incident", second(s.Incident(ctx, other, "INC-1"))},
		{"Snapshot", second(s.Snapshot(ctx, other, snap.ID()))},
		{"ActivePolicy", second(s.ActivePolicy(ctx, other))},
		{"UpdateIncident", s.UpdateIncident(ctx, incident.Incident{ID: "INC-1", TenantID: other, Status: incident.StatusResolved})},
		{"CreateRun with another tenant's snapshot", func() error {
			oc := newChain(newSnap(t, other), "RUN-9")
			oc.snap = snap // acme's id, under globex
			oc.tenant = other
			return s.CreateRun(ctx, governance.RunRecord{RunID: "RUN-9", TenantID: other, SnapshotID: snap.ID(), CreatedAt: t0}, oc.start())
		}()},
		{"AppendStep to another tenant's run", func() error {
			oc := *open
			oc.tenant = other
			return s.AppendStep(ctx, oc.next(false))
		}()},
		{"CloseRun of another tenant's run", func() error {
			oc := *open
			oc.tenant = other
			end := oc.end(governance.StatusCancelled, prevention.ReasonUserAbort, "", nil)
			return s.CloseRun(ctx, governance.Close{TenantID: other, RunID: "RUN-2", End: end, Status: governance.StatusCancelled, EndedAt: t0})
		}()},
	}
	for _, c := range notFound {
		if !errors.Is(c.err, governance.ErrNotFound) {
			t.Errorf("%s: got %v, want ErrNotFound", c.name, c.err)
		}
	}
	empty := []struct {
		name string
		n    lengthErr
	}{
		{"Runs", length(s.Runs(ctx, governance.RunFilter{TenantID: other}))},
		{"Incidents", length(s.Incidents(ctx, governance.IncidentFilter{TenantID: other}))},
		{"Incidents of the run", length(s.Incidents(ctx, governance.IncidentFilter{TenantID: other, RunID: "RUN-1"}))},
		{"PolicyVersions", length(s.PolicyVersions(ctx, other))},
		{"Exports", length(s.Exports(ctx, governance.ExportFilter{TenantID: other}))},
		{"Exports of the run", length(s.Exports(ctx, governance.ExportFilter{TenantID: other, RunID: "RUN-1"}))},
	}
	for _, c := range empty {
		if c.n.err != nil || c.n.n != 0 {
			t.Errorf("%s of another tenant: %d rows, %v", c.name, c.n.n, c.n.err)
		}
	}
	// Nothing above touched acme's rows.
	if run, _ := s.Run(ctx, "acme", "RUN-2"); run.Status != governance.StatusRunning || run.ChainLength != 1 {
		t.Errorf("acme's open run changed: %+v", run)
	}
	if inc, _ := s.Incident(ctx, "acme", "INC-1"); inc.Status != incident.StatusOpen {
		t.Errorf("acme's incident changed: %+v", inc)
	}
	if ts, err := s.Tenants(ctx); err != nil || !cmp.Equal(ts, []string{"acme"}) {
		t.Errorf("Tenants: %v %v", ts, err)
	}
}

func second[T any](_ T, err error) error { return err }

type lengthErr struct {
	n   int
	err error
}

func length[T any](xs []T, err error) lengthErr { return lengthErr{len(xs), err} }

func TestSnapshotsAndPolicyVersions(t *testing.T) {
	s := openStore(t, dbPath(t))
	snap := newSnap(t, "acme")
	if err := s.PutSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if err := s.PutSnapshot(ctx, snap); err != nil {
		t.Fatalf("PutSnapshot again: %v", err)
	}
	got, err := s.Snapshot(ctx, "acme", snap.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil {
		t.Errorf("stored snapshot does not verify: %v", err)
	}
	if diff := cmp.Diff(snap.Policies(), got.Policies()); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	if !cmp.Equal(snap.Thresholds(), got.Thresholds()) || !got.CreatedAt().Equal(t0) || got.TenantID() != "acme" {
		t.Errorf("snapshot round trip: %v %v %s", got.Thresholds(), got.CreatedAt(), got.TenantID())
	}
	if _, err := s.Snapshot(ctx, "acme", "SNAP-000000000000"); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("unknown snapshot: %v", err)
	}

	// Concurrent publishes get consecutive versions.
	const n = 20
	var wg sync.WaitGroup
	versions := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := s.PublishPolicy(ctx, snap, governance.PolicyVersion{PublishedBy: fmt.Sprint("user", i), PublishedAt: t0.Add(time.Duration(i) * time.Second)})
			if err != nil {
				t.Error(err)
			}
			versions[i] = v.Version
		}()
	}
	wg.Wait()
	seen := map[int]bool{}
	for _, v := range versions {
		if v < 1 || v > n || seen[v] {
			t.Errorf("versions %v are not 1..%d", versions, n)
			break
		}
		seen[v] = true
	}
	hist, err := s.PolicyVersions(ctx, "acme")
	if err != nil || len(hist) != n {
		t.Fatalf("PolicyVersions: %d %v", len(hist), err)
	}
	for i, v := range hist {
		if v.Version != i+1 || v.SnapshotID != snap.ID() || v.ContentHash != snap.ContentHash() || v.TenantID != "acme" {
			t.Errorf("version %d: %+v", i+1, v)
		}
	}
	act, err := s.ActivePolicy(ctx, "acme")
	if err != nil || act != hist[n-1] {
		t.Errorf("ActivePolicy %+v %v, want %+v", act, err, hist[n-1])
	}
	if _, err := s.PublishPolicy(ctx, snap, governance.PolicyVersion{TenantID: "globex"}); err == nil {
		t.Error("PublishPolicy with a version of another tenant succeeded")
	}
}

func TestIncidentLifecycleOnlyMovesForward(t *testing.T) {
	s := openStore(t, dbPath(t))
	c := startRun(t, s, newSnap(t, "acme"), "RUN-1", governance.StatusRunning)
	_, inc := blockRun(t, s, c, "INC-1")
	res, err := inc.Transition(incident.StatusResolved, "lead", "fixed", t0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateIncident(ctx, res); err != nil {
		t.Fatal(err)
	}
	back := res
	back.Status = incident.StatusOpen
	if err := s.UpdateIncident(ctx, back); !errors.Is(err, incident.ErrInvalidTransition) {
		t.Errorf("reopening: got %v, want ErrInvalidTransition", err)
	}
	if err := s.UpdateIncident(ctx, incident.Incident{ID: "INC-none", TenantID: "acme", Status: incident.StatusResolved}); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("unknown incident: got %v, want ErrNotFound", err)
	}
	got, _ := s.Incident(ctx, "acme", "INC-1")
	if diff := cmp.Diff(res, got); diff != "" {
		t.Errorf("incident (-want +got):\n%s", diff)
	}
	list, err := s.Incidents(ctx, governance.IncidentFilter{TenantID: "acme", Status: incident.StatusResolved, From: t0, To: t0.Add(time.Hour)})
	if err != nil || len(list) != 1 {
		t.Errorf("Incidents resolved in [t0, t0+1h): %v %v", list, err)
	}
}

func TestListingsNewestFirstWithFilters(t *testing.T) {
	s := openStore(t, dbPath(t))
	snap := newSnap(t, "acme")
	// RUN-0 .. RUN-4 created a minute apart; RUN-5 at the same instant as
	// RUN-4, after it. Even runs succeed, odd ones are stopped.
	for i := range 6 {
		at := t0.Add(time.Duration(min(i, 4)) * time.Minute)
		id := fmt.Sprintf("RUN-%d", i)
		c := startRunAt(t, s, snap, id, governance.StatusRunning, at)
		appendSteps(t, s, c, 1)
		if i%2 == 0 {
			finishRun(t, s, c)
		} else {
			blockRun(t, s, c, "INC-"+id)
		}
	}
	ids2 := func(runs []governance.RunRecord, err error) []string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range runs {
			out = append(out, r.RunID)
		}
		return out
	}
	tests := []struct {
		name string
		f    governance.RunFilter
		want []string
	}{
		{"all", governance.RunFilter{}, []string{"RUN-5", "RUN-4", "RUN-3", "RUN-2", "RUN-1", "RUN-0"}},
		{"succeeded", governance.RunFilter{Status: governance.StatusSucceeded}, []string{"RUN-4", "RUN-2", "RUN-0"}},
		{"failed_policy", governance.RunFilter{Status: governance.StatusFailedPolicy}, []string{"RUN-5", "RUN-3", "RUN-1"}},
		{"from", governance.RunFilter{From: t0.Add(3 * time.Minute)}, []string{"RUN-5", "RUN-4", "RUN-3"}},
		{"to", governance.RunFilter{To: t0.Add(2 * time.Minute)}, []string{"RUN-1", "RUN-0"}},
		{"from to", governance.RunFilter{From: t0.Add(time.Minute), To: t0.Add(3 * time.Minute)}, []string{"RUN-2", "RUN-1"}},
		{"limit", governance.RunFilter{Limit: 2}, []string{"RUN-5", "RUN-4"}},
		{"status and limit", governance.RunFilter{Status: governance.StatusFailedPolicy, Limit: 1}, []string{"RUN-5"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.f.TenantID = "acme"
			if diff := cmp.Diff(tc.want, ids2(s.Runs(ctx, tc.f))); diff != "" {
				t.Errorf("Runs (-want +got):\n%s", diff)
			}
		})
	}
	// Ended runs carry their final fields.
	run, _ := s.Run(ctx, "acme", "RUN-4")
	if run.StepCount != 1 || run.ChainLength != 3 || run.TerminationReason != prevention.ReasonCompleted || run.EndedAt == nil {
		t.Errorf("finished run: %+v", run)
	}

	incs, err := s.Incidents(ctx, governance.IncidentFilter{TenantID: "acme"})
	if err != nil || len(incs) != 3 || incs[0].ID != "INC-RUN-5" || incs[2].ID != "INC-RUN-1" {
		t.Errorf("Incidents newest first: %+v %v", incs, err)
	}
	incs, err = s.Incidents(ctx, governance.IncidentFilter{TenantID: "acme", RunID: "RUN-3"})
	if err != nil || len(incs) != 1 || incs[0].ID != "INC-RUN-3" {
		t.Errorf("Incidents of RUN-3: %+v %v", incs, err)
	}
	incs, err = s.Incidents(ctx, governance.IncidentFilter{TenantID: "acme", Status: incident.StatusOpen, Limit: 2, To: t0.Add(4 * time.Minute)})
	if err != nil || len(incs) != 2 || incs[0].ID != "INC-RUN-3" {
		t.Errorf("open incidents before +4m, limit 2: %+v %v", incs, err)
	}
}

// A queued run whose first step is the blocking one starts and ends in
// the one CloseRun.
func TestCloseRunMarkRunning(t *testing.T) {
	s := openStore(t, dbPath(t))
	c := startRun(t, s, newSnap(t, "acme"), "RUN-1", governance.StatusQueued)
	step := c.next(true)
	idx := 0
	end := c.end(governance.StatusFailedPolicy, prevention.ReasonPolicyBlock, "", &idx)
	err := s.CloseRun(ctx, governance.Close{TenantID: "acme", RunID: "RUN-1", Step: &step, End: end,
		Status: governance.StatusFailedPolicy, Reason: prevention.ReasonPolicyBlock, StoppedAtStep: &idx,
		ViolationPolicyID: "tools", EndedAt: end.Record.At, MarkRunning: true})
	if err != nil {
		t.Fatal(err)
	}
	run, _ := s.Run(ctx, "acme", "RUN-1")
	if run.StartedAt == nil || !run.StartedAt.Equal(step.Record.At) || run.Status != governance.StatusFailedPolicy ||
		run.StepCount != 1 || run.IncidentID != "" {
		t.Errorf("queued run stopped at its first step: %+v", run)
	}
	if incs, _ := s.Incidents(ctx, governance.IncidentFilter{TenantID: "acme"}); len(incs) != 0 {
		t.Errorf("a close without an incident stored %d", len(incs))
	}
}
