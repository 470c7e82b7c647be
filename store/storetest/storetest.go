// Package storetest is the conformance suite every governance.Store must
// pass. A store's own test calls Run with a function that opens a fresh,
// empty store:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) governance.Store {
//			s, err := mystore.Open(...)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// The suite drives the store through a real governance.Runner and through
// the Store methods directly, and checks every behaviour the runner relies
// on: snapshots stored once and never overwritten, policy versions, the
// hash chain extended only at its head, the atomic stop (inflection,
// incident, final status in one transaction, or nothing), durability of
// what was acknowledged, tenant isolation of every read, concurrent runs
// and racing appends and closes, the export log and checkpoints, and
// Explain and VerifyRun over what the store returns.
//
// Every store must implement governance.AuditStore (rows left without
// their run's row; the columns kept beside each record), checked by the
// Audit test. RunTamper is a second suite, for a store whose tests can
// edit its database behind its back (a Tamper): every edit a writer of the
// database could make that leaves the chains intact is reported by
// verification.
//
// A store that also implements governance.LedgerStore (limits that span
// runs: tenant_budget, tenant_rate_limit) is checked for those too:
// calendar and rolling windows, concurrent charges at the edge of a limit
// (no overshoot), reserve-then-settle and reservations in flight. For a
// store without a ledger those tests skip, saying so.
//
// A store that implements governance.HoldStore and governance.KillStore
// (approval holds, kill switches) is checked for those by RunOperator,
// which Run runs: answers stored once under races, holds that outlive
// their process (Runner.Resume, RecoverRun), deadlines, cancellation,
// and kill switches over a run, an agent and a tenant.
// A store that also implements governance.OutboxStore is checked for
// its outbox: deliveries stored with a run's end in its transaction (all
// or nothing), claims that lease due deliveries of the named sinks,
// acknowledgements, failures with a retry time or dead, retries of dead
// deliveries, and concurrent claimers that never get the same delivery.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// Opener returns a new, empty store for one test. It should register its
// own cleanup with t.Cleanup.
type Opener func(t *testing.T) governance.Store

// T0 is the time the suite's clocks start at.
var T0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// Policy file used by the suite: a step limit of 3 (steps 0-2 pass, step
// 3 is blocked) and a tool allowlist.
const policyJSON = `{
  "tenant_id": "acme",
  "thresholds": {"max_steps": 3, "max_cost_cents": 100},
  "policies": [
    {"id": "step-limit", "kind": "budget", "params": {"metric": "steps", "threshold": "max_steps"}},
    {"id": "cost", "kind": "budget", "params": {"metric": "cost_cents", "threshold": "max_cost_cents"}},
    {"id": "tools", "kind": "tool_allowlist", "params": {"allow": ["search"]}}
  ]
}`

// Snapshot returns the suite's snapshot for a tenant.
func Snapshot(t testing.TB, tenant string) *snapshot.PolicySnapshot {
	t.Helper()
	s, err := snapshot.Parse("storetest.json", []byte(strings.Replace(policyJSON, `"acme"`, fmt.Sprintf("%q", tenant), 1)), T0, prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"Snapshots", testSnapshots},
		{"PolicyVersions", testPolicyVersions},
		{"CompletedRun", testCompletedRun},
		{"BlockedRunAtomicStop", testBlockedRun},
		{"QueuedRun", testQueuedRun},
		{"ChainOnlyExtendsAtHead", testChainConflicts},
		{"StopIsAllOrNothing", testStopAllOrNothing},
		{"EndedRunRefusesWrites", testEndedRun},
		{"TenantIsolation", testTenantIsolation},
		{"ListingsAndFilters", testListings},
		{"IncidentLifecycle", testIncidentLifecycle},
		{"ContentRoundTrip", testContent},
		{"ConcurrentRuns", testConcurrentRuns},
		{"ExplainAndVerify", testExplainVerify},
		{"ExportLog", testExportLog},
		{"Checkpoints", testCheckpoints},
		{"Audit", testAudit},
		{"RangedReads", testRanged},
		{"AppendRace", testAppendRace},
		{"CloseRace", testCloseRace},
		{"TenantLog", testTenantLog},
		{"TenantLogConcurrentCloses", testTenantLogRace},
		{"PublishRace", testPublishRace},
		{"LedgerCalendarWindows", testLedgerCalendar},
		{"LedgerRollingWindows", testLedgerRolling},
		{"LedgerConcurrentCharges", testLedgerConcurrent},
		{"TenantBudget", testTenantBudget},
		{"TenantRunsAndRate", testTenantRunsAndRate},
		{"ReserveSettle", testReserveSettle},
		{"ReservationInFlight", testReservationInFlight},
		{"TenantLimitModes", testTenantLimitModes},
		{"TenantBudgetRace", testTenantBudgetRace},
		{"RetentionAndShadow", testRetentionAndShadow},
		{"Operator", RunOperator},
		{"OutboxWithClose", testOutboxWithClose},
		{"OutboxAllOrNothing", testOutboxAllOrNothing},
		{"OutboxLifecycle", testOutboxLifecycle},
		{"OutboxConcurrentClaims", testOutboxConcurrentClaims},
		{"Tokens", testTokens},
		{"TokenRace", testTokenRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

type seqIDs struct {
	mu sync.Mutex
	n  map[string]int
}

func (g *seqIDs) next(kind string) string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n == nil {
		g.n = map[string]int{}
	}
	g.n[kind]++
	return fmt.Sprintf("%s-%04d", strings.ToUpper(kind[:3]), g.n[kind])
}

func newRunner(t *testing.T, st governance.Store) (*governance.Runner, *governance.FakeClock) {
	t.Helper()
	clock := governance.NewFakeClock(T0)
	ids := &seqIDs{}
	r, err := governance.NewRunner(st, governance.WithClock(clock), governance.WithIDGenerator(ids.next))
	if err != nil {
		t.Fatal(err)
	}
	return r, clock
}

func step(typ prevention.StepType, tool string) governance.StepInput {
	return governance.StepInput{Type: typ, Tool: tool, Model: "m", Input: "in", Output: "out", Tokens: 10, CostCents: 1}
}

var ctx = context.Background()

func testSnapshots(t *testing.T, open Opener) {
	st := open(t)
	snap := Snapshot(t, "acme")
	if err := st.PutSnapshot(ctx, snap); err != nil {
		t.Fatalf("PutSnapshot: %v", err)
	}
	if err := st.PutSnapshot(ctx, snap); err != nil {
		t.Fatalf("PutSnapshot again (must be a no-op): %v", err)
	}
	got, err := st.Snapshot(ctx, "acme", snap.ID())
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("stored snapshot does not verify: %v", err)
	}
	if got.ContentHash() != snap.ContentHash() || !got.CreatedAt().Equal(snap.CreatedAt()) {
		t.Errorf("snapshot round trip: got %s %v, want %s %v", got.ContentHash(), got.CreatedAt(), snap.ContentHash(), snap.CreatedAt())
	}
	if diff := cmp.Diff(snap.Policies(), got.Policies()); diff != "" {
		t.Errorf("policies changed in the store (-want +got):\n%s", diff)
	}
	// Same id, different content: refused, and the original is kept.
	forged := forgeSnapshot(t, snap)
	if err := st.PutSnapshot(ctx, forged); !errors.Is(err, governance.ErrSnapshotConflict) {
		t.Errorf("PutSnapshot with same id, other content: got %v, want ErrSnapshotConflict", err)
	}
	again, err := st.Snapshot(ctx, "acme", snap.ID())
	if err != nil || again.ContentHash() != snap.ContentHash() {
		t.Errorf("original snapshot was overwritten: %v %v", again, err)
	}
	if _, err := st.Snapshot(ctx, "acme", "SNAP-000000000000"); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("unknown snapshot: got %v, want ErrNotFound", err)
	}
}

// forgeSnapshot returns a snapshot with snap's id but other content.
func forgeSnapshot(t *testing.T, snap *snapshot.PolicySnapshot) *snapshot.PolicySnapshot {
	t.Helper()
	raw, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var w map[string]any
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	w["thresholds"].(map[string]any)["max_steps"] = 1000
	w["content_hash"] = strings.Repeat("f", 64)
	raw, _ = json.Marshal(w)
	forged := new(snapshot.PolicySnapshot)
	if err := forged.UnmarshalJSON(raw); err != nil {
		t.Fatal(err)
	}
	return forged
}

func testPolicyVersions(t *testing.T, open Opener) {
	st := open(t)
	r, clock := newRunner(t, st)
	if _, err := st.ActivePolicy(ctx, "acme"); !errors.Is(err, governance.ErrNotFound) {
		t.Fatalf("ActivePolicy before any publish: got %v, want ErrNotFound", err)
	}
	if _, err := r.Start(ctx, governance.StartOptions{TenantID: "acme"}); !errors.Is(err, governance.ErrNotFound) {
		t.Fatalf("Start without snapshot or active policy: got %v, want ErrNotFound", err)
	}
	v1, err := r.Publish(ctx, Snapshot(t, "acme"), "alice", "initial")
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute)
	run1, err := r.Start(ctx, governance.StartOptions{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	// Publish v2 (max_steps 1) while run1 is running.
	snap2, err := snapshot.Parse("v2.json", []byte(strings.Replace(policyJSON, `"max_steps": 3`, `"max_steps": 1`, 1)), clock.Now(), prevention.Builtin())
	if err != nil {
		t.Fatal(err)
	}
	v2, err := r.Publish(ctx, snap2, "bob", "tighten")
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || v2.Version != 2 || v2.SnapshotID != snap2.ID() || v2.PublishedBy != "bob" || v2.Note != "tighten" {
		t.Fatalf("versions: got %+v and %+v", v1, v2)
	}
	// run1 keeps its snapshot: steps 0..2 pass.
	for i := 0; i < 3; i++ {
		if _, err := run1.Step(ctx, step(prevention.StepLLMResponse, "")); err != nil {
			t.Fatalf("run1 step %d under its own snapshot: %v", i, err)
		}
	}
	// The next run takes v2: step 1 is blocked.
	run2, err := r.Start(ctx, governance.StartOptions{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if run2.Snapshot().ID() != snap2.ID() || run2.Record().PolicyVersion != 2 {
		t.Fatalf("run2 bound to %s (v%d), want %s (v2)", run2.Snapshot().ID(), run2.Record().PolicyVersion, snap2.ID())
	}
	run2.Step(ctx, step(prevention.StepLLMResponse, ""))
	var v *governance.Violation
	if _, err := run2.Step(ctx, step(prevention.StepLLMResponse, "")); !errors.As(err, &v) || v.StepIndex != 1 {
		t.Fatalf("run2 step 1: got %v, want violation at step 1", err)
	}
	hist, err := st.PolicyVersions(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != 2 || hist[0].Version != 1 || hist[1].Version != 2 || hist[0].PublishedBy != "alice" ||
		!hist[0].PublishedAt.Equal(T0) || hist[1].ContentHash != snap2.ContentHash() {
		t.Errorf("history: %+v", hist)
	}
	if act, _ := st.ActivePolicy(ctx, "acme"); act.Version != 2 {
		t.Errorf("active version %d, want 2", act.Version)
	}
}

func testCompletedRun(t *testing.T, open Opener) {
	st := open(t)
	r, clock := newRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, "acme"), Labels: map[string]string{"agent": "a1"}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		clock.Advance(time.Second)
		res, err := run.Step(ctx, step(prevention.StepToolCall, "search"))
		if err != nil || res.Index != i || res.Status != trace.StatusOK || !res.Recorded {
			t.Fatalf("step %d: %+v %v", i, res, err)
		}
		// Acknowledged means durable and visible.
		got, err := st.Run(ctx, "acme", run.ID())
		if err != nil || got.StepCount != i+1 || got.HeadHash != res.Hash || got.Status != governance.StatusRunning {
			t.Fatalf("after step %d the store shows %+v %v", i, got, err)
		}
	}
	clock.Advance(time.Second)
	rec, err := run.Finish(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Run(ctx, "acme", run.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != governance.StatusSucceeded || got.TerminationReason != prevention.ReasonCompleted || got.StoppedAtStep != nil ||
		got.IncidentID != "" || got.StepCount != 3 || got.TotalTokens != 30 || got.TotalCostCents != 3 ||
		got.HeadHash != rec.HeadHash || got.ChainLength != 5 || got.EndedAt == nil || !got.EndedAt.Equal(T0.Add(4*time.Second)) ||
		got.Labels["agent"] != "a1" || got.TraceID == "" {
		t.Errorf("completed run as stored: %+v", got)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Errorf("VerifyRun: %v", err)
	}
	if _, err := run.Step(ctx, step(prevention.StepLLMResponse, "")); !errors.Is(err, governance.ErrRunStopped) {
		t.Errorf("step after finish: got %v, want ErrRunStopped", err)
	}
}

func testBlockedRun(t *testing.T, open Opener) {
	st := open(t)
	r, clock := newRunner(t, st)
	snap := Snapshot(t, "acme")
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	run.Step(ctx, step(prevention.StepLLMResponse, ""))
	clock.Advance(1500 * time.Millisecond)
	_, err = run.Step(ctx, step(prevention.StepToolCall, "shell"))
	var v *governance.Violation
	if !errors.As(err, &v) {
		t.Fatalf("forbidden tool: got %v, want a *Violation", err)
	}
	if v.StepIndex != 1 || v.PolicyID() != "tools" || v.Reason() != prevention.ReasonPolicyBlock || v.IncidentID == "" {
		t.Fatalf("violation: %+v", v)
	}
	// The moment Step returned, all of it is in the store.
	got, err := st.Run(ctx, "acme", run.ID())
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != governance.StatusFailedPolicy || got.TerminationReason != prevention.ReasonPolicyBlock ||
		got.StoppedAtStep == nil || *got.StoppedAtStep != 1 || got.ViolationPolicyID != "tools" || got.IncidentID != v.IncidentID ||
		got.SnapshotID != snap.ID() || got.StepCount != 2 {
		t.Fatalf("stopped run as stored: %+v", got)
	}
	inc, err := st.Incident(ctx, "acme", v.IncidentID)
	if err != nil {
		t.Fatalf("incident not stored with the stop: %v", err)
	}
	want := incident.Incident{
		ID: v.IncidentID, TenantID: "acme", RunID: run.ID(), TraceID: got.TraceID, SnapshotID: snap.ID(), PolicyID: "tools",
		Source: prevention.SourcePolicy, StepIndex: 1, RecordHash: v.RecordHash, Reason: prevention.ReasonPolicyBlock,
		Severity: incident.SeverityCritical, Status: incident.StatusOpen, Title: inc.Title, Message: inc.Message,
		CreatedAt: T0.Add(1500 * time.Millisecond),
	}
	if diff := cmp.Diff(want, inc); diff != "" {
		t.Errorf("incident (-want +got):\n%s", diff)
	}
	recs, err := st.Records(ctx, "acme", run.ID())
	if err != nil {
		t.Fatal(err)
	}
	inf, ok := trace.InflectionOf(recs)
	if !ok || inf.StepIndex != 1 || inf.PolicyID != "tools" || inf.Hash != v.RecordHash || !inf.At.Equal(T0.Add(1500*time.Millisecond)) {
		t.Fatalf("inflection: %+v %v", inf, ok)
	}
	if last := recs[len(recs)-1]; last.Kind != trace.KindRunEnd || last.IncidentID != v.IncidentID {
		t.Errorf("chain not closed by run_end: %+v", last)
	}
	// Links both ways: incident → run → snapshot → policy; run → incident.
	if snapBack, err := st.Snapshot(ctx, "acme", inc.SnapshotID); err != nil {
		t.Errorf("incident → snapshot: %v", err)
	} else if _, ok := snapBack.Policy(inc.PolicyID); !ok {
		t.Errorf("incident → policy %q not in snapshot", inc.PolicyID)
	}
	if incs, err := st.Incidents(ctx, governance.IncidentFilter{TenantID: "acme", RunID: run.ID()}); err != nil || len(incs) != 1 || incs[0].ID != v.IncidentID {
		t.Errorf("run → incidents: %v %v", incs, err)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Errorf("VerifyRun: %v", err)
	}
	// Further steps are refused, and the violation is still findable.
	_, err = run.Step(ctx, step(prevention.StepLLMResponse, ""))
	if !errors.Is(err, governance.ErrRunStopped) || !errors.As(err, &v) {
		t.Errorf("step after stop: got %v", err)
	}
}

func testQueuedRun(t *testing.T, open Opener) {
	st := open(t)
	r, clock := newRunner(t, st)
	run, err := r.Enqueue(ctx, governance.StartOptions{Snapshot: Snapshot(t, "acme")})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Run(ctx, "acme", run.ID()); got.Status != governance.StatusQueued || got.StartedAt != nil {
		t.Fatalf("enqueued run: %+v", got)
	}
	clock.Advance(time.Minute)
	if _, err := run.Step(ctx, step(prevention.StepLLMResponse, "")); err != nil {
		t.Fatal(err)
	}
	got, _ := st.Run(ctx, "acme", run.ID())
	if got.Status != governance.StatusRunning || got.StartedAt == nil || !got.StartedAt.Equal(T0.Add(time.Minute)) {
		t.Fatalf("after first step: %+v", got)
	}
}

func sealed(t *testing.T, r trace.Record, prev string) governance.StepWrite {
	body := trace.Seal(&r, prev, nil)
	return governance.StepWrite{Record: r, Body: body}
}

func startRaw(t *testing.T, st governance.Store, tenant, runID string) (governance.RunRecord, trace.Record) {
	t.Helper()
	snap := Snapshot(t, tenant)
	if err := st.PutSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	run := governance.RunRecord{RunID: runID, TenantID: tenant, TraceID: "TRC-" + runID, SnapshotID: snap.ID(),
		Status: governance.StatusRunning, CreatedAt: T0}
	start := trace.Record{TenantID: tenant, RunID: runID, Kind: trace.KindRunStart, At: T0, SnapshotID: snap.ID(),
		SnapshotHash: snap.ContentHash(), StepIndex: -1}
	w := sealed(t, start, trace.GenesisHash)
	run.HeadHash = w.Record.Hash
	if err := st.CreateRun(ctx, run, w); err != nil {
		t.Fatal(err)
	}
	return run, w.Record
}

func stepRec(tenant, runID, snapID string, seq, idx int) trace.Record {
	d := prevention.Allowed()
	return trace.Record{TenantID: tenant, RunID: runID, Seq: seq, Kind: trace.KindStep, At: T0.Add(time.Duration(seq) * time.Second),
		SnapshotID: snapID, StepIndex: idx, StepType: prevention.StepLLMResponse, Tokens: 5, TotalTokens: int64(5 * (idx + 1)),
		Status: trace.StatusOK, Decision: &d}
}

func testChainConflicts(t *testing.T, open Opener) {
	st := open(t)
	run, start := startRaw(t, st, "acme", "RUN-chain")
	if err := st.CreateRun(ctx, run, sealed(t, start, trace.GenesisHash)); !errors.Is(err, governance.ErrRunExists) {
		t.Errorf("CreateRun twice: got %v, want ErrRunExists", err)
	}
	w0 := sealed(t, stepRec("acme", run.RunID, run.SnapshotID, 1, 0), start.Hash)
	if err := st.AppendStep(ctx, w0); err != nil {
		t.Fatal(err)
	}
	// Same seq again (a second writer racing): refused.
	dup := sealed(t, stepRec("acme", run.RunID, run.SnapshotID, 1, 0), start.Hash)
	if err := st.AppendStep(ctx, dup); !errors.Is(err, governance.ErrChainConflict) {
		t.Errorf("append at a taken seq: got %v, want ErrChainConflict", err)
	}
	// Next seq but prev_hash not the head: refused.
	bad := sealed(t, stepRec("acme", run.RunID, run.SnapshotID, 2, 1), start.Hash)
	if err := st.AppendStep(ctx, bad); !errors.Is(err, governance.ErrChainConflict) {
		t.Errorf("append not extending the head: got %v, want ErrChainConflict", err)
	}
	// A gap: refused.
	gap := sealed(t, stepRec("acme", run.RunID, run.SnapshotID, 3, 2), w0.Record.Hash)
	if err := st.AppendStep(ctx, gap); !errors.Is(err, governance.ErrChainConflict) {
		t.Errorf("append with a gap: got %v, want ErrChainConflict", err)
	}
	recs, err := st.Records(ctx, "acme", run.RunID)
	if err != nil || len(recs) != 2 {
		t.Fatalf("records after refused appends: %d %v", len(recs), err)
	}
	if _, err := trace.Verify(recs); err != nil {
		t.Errorf("chain after refused appends: %v", err)
	}
}

func testStopAllOrNothing(t *testing.T, open Opener) {
	st := open(t)
	r, _ := newRunner(t, st)
	// A first stopped run creates incident INC-0001.
	run1, err := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, "acme")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run1.Step(ctx, step(prevention.StepToolCall, "shell")); !errors.Is(err, governance.ErrPolicyViolation) {
		t.Fatal(err)
	}
	// A raw close of another run whose incident reuses that id must fail
	// as a whole: no step, no run_end, no status change.
	run, start := startRaw(t, st, "acme", "RUN-atomic")
	stepW := stepRec("acme", run.RunID, run.SnapshotID, 1, 0)
	stepW.Inflection, stepW.Status = true, trace.StatusViolation
	d := prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonPolicyBlock, PolicyID: "tools"}
	stepW.Decision = &d
	sw := sealed(t, stepW, start.Hash)
	zero := 0
	end := trace.Record{TenantID: "acme", RunID: run.RunID, Seq: 2, Kind: trace.KindRunEnd, At: T0, SnapshotID: run.SnapshotID,
		StepIndex: -1, RunStatus: "failed_policy", Reason: prevention.ReasonPolicyBlock, StoppedAtStep: &zero, ViolationPolicyID: "tools", IncidentID: "INC-0001"}
	ew := sealed(t, end, sw.Record.Hash)
	inc := incident.Incident{ID: "INC-0001", TenantID: "acme", RunID: run.RunID, SnapshotID: run.SnapshotID, PolicyID: "tools",
		Reason: prevention.ReasonPolicyBlock, Severity: incident.SeverityHigh, Status: incident.StatusOpen, CreatedAt: T0}
	err = st.CloseRun(ctx, governance.Close{TenantID: "acme", RunID: run.RunID, Step: &sw, Incident: &inc, End: ew,
		Status: governance.StatusFailedPolicy, Reason: prevention.ReasonPolicyBlock, StoppedAtStep: &zero, ViolationPolicyID: "tools",
		IncidentID: "INC-0001", EndedAt: T0})
	if err == nil {
		t.Fatal("CloseRun with a duplicate incident id succeeded")
	}
	got, err := st.Run(ctx, "acme", run.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != governance.StatusRunning || got.StoppedAtStep != nil || got.ChainLength != 1 {
		t.Errorf("failed stop left partial state: %+v", got)
	}
	if recs, _ := st.Records(ctx, "acme", run.RunID); len(recs) != 1 {
		t.Errorf("failed stop left %d records, want 1", len(recs))
	}
	// With a fresh incident id the same stop goes through.
	inc.ID, end.IncidentID = "INC-atomic", "INC-atomic"
	ew = sealed(t, end, sw.Record.Hash)
	err = st.CloseRun(ctx, governance.Close{TenantID: "acme", RunID: run.RunID, Step: &sw, Incident: &inc, End: ew,
		Status: governance.StatusFailedPolicy, Reason: prevention.ReasonPolicyBlock, StoppedAtStep: &zero, ViolationPolicyID: "tools",
		IncidentID: "INC-atomic", EndedAt: T0})
	if err != nil {
		t.Fatalf("CloseRun: %v", err)
	}
	if got, _ := st.Run(ctx, "acme", run.RunID); got.Status != governance.StatusFailedPolicy || got.ChainLength != 3 || got.HeadHash != ew.Record.Hash {
		t.Errorf("after stop: %+v", got)
	}
}

func testEndedRun(t *testing.T, open Opener) {
	st := open(t)
	run, start := startRaw(t, st, "acme", "RUN-ended")
	end := trace.Record{TenantID: "acme", RunID: run.RunID, Seq: 1, Kind: trace.KindRunEnd, At: T0, SnapshotID: run.SnapshotID,
		StepIndex: -1, RunStatus: "succeeded", Reason: prevention.ReasonCompleted}
	ew := sealed(t, end, start.Hash)
	c := governance.Close{TenantID: "acme", RunID: run.RunID, End: ew, Status: governance.StatusSucceeded, Reason: prevention.ReasonCompleted, EndedAt: T0}
	if err := st.CloseRun(ctx, c); err != nil {
		t.Fatal(err)
	}
	if err := st.CloseRun(ctx, c); !errors.Is(err, governance.ErrRunEnded) {
		t.Errorf("CloseRun twice: got %v, want ErrRunEnded", err)
	}
	late := sealed(t, stepRec("acme", run.RunID, run.SnapshotID, 2, 0), ew.Record.Hash)
	if err := st.AppendStep(ctx, late); !errors.Is(err, governance.ErrRunEnded) && !errors.Is(err, governance.ErrChainConflict) {
		t.Errorf("AppendStep after end: got %v, want ErrRunEnded", err)
	}
	if recs, _ := st.Records(ctx, "acme", run.RunID); len(recs) != 2 {
		t.Errorf("ended run has %d records, want 2", len(recs))
	}
}

func testTenantIsolation(t *testing.T, open Opener) {
	st := open(t)
	r, _ := newRunner(t, st)
	if _, err := r.Publish(ctx, Snapshot(t, "acme"), "alice", ""); err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	run.Step(ctx, step(prevention.StepLLMResponse, ""))
	_, verr := run.Step(ctx, step(prevention.StepToolCall, "shell"))
	var v *governance.Violation
	if !errors.As(verr, &v) {
		t.Fatal(verr)
	}
	snapID := run.Snapshot().ID()
	other := "globex"
	checks := []struct {
		name string
		err  error
	}{
		{"Run", second(st.Run(ctx, other, run.ID()))},
		{"Records", second(st.Records(ctx, other, run.ID()))},
		{"Contents", second(st.Contents(ctx, other, run.ID()))},
		{"Incident", second(st.Incident(ctx, other, v.IncidentID))},
		{"Snapshot", second(st.Snapshot(ctx, other, snapID))},
		{"ActivePolicy", second(st.ActivePolicy(ctx, other))},
		{"Explain", second(governance.Explain(ctx, st, other, run.ID(), T0))},
		{"VerifyRun", second(governance.VerifyRun(ctx, st, other, run.ID()))},
	}
	for _, c := range checks {
		if !errors.Is(c.err, governance.ErrNotFound) {
			t.Errorf("%s of another tenant's id: got %v, want ErrNotFound", c.name, c.err)
		}
	}
	if runs, err := st.Runs(ctx, governance.RunFilter{TenantID: other}); err != nil || len(runs) != 0 {
		t.Errorf("Runs of another tenant: %v %v", runs, err)
	}
	if incs, err := st.Incidents(ctx, governance.IncidentFilter{TenantID: other}); err != nil || len(incs) != 0 {
		t.Errorf("Incidents of another tenant: %v %v", incs, err)
	}
	if incs, err := st.Incidents(ctx, governance.IncidentFilter{TenantID: other, RunID: run.ID()}); err != nil || len(incs) != 0 {
		t.Errorf("Incidents of another tenant's run: %v %v", incs, err)
	}
	if vs, err := st.PolicyVersions(ctx, other); err != nil || len(vs) != 0 {
		t.Errorf("PolicyVersions of another tenant: %v %v", vs, err)
	}
	inc, _ := st.Incident(ctx, "acme", v.IncidentID)
	inc.TenantID = other
	if err := st.UpdateIncident(ctx, inc); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("UpdateIncident as another tenant: got %v, want ErrNotFound", err)
	}
	// The same snapshot content under another tenant is that tenant's own.
	if err := st.PutSnapshot(ctx, Snapshot(t, other)); err != nil {
		t.Errorf("same policy set for another tenant: %v", err)
	}
	tenants, err := st.Tenants(ctx)
	if err != nil || len(tenants) != 1 || tenants[0] != "acme" {
		t.Errorf("Tenants: %v %v", tenants, err)
	}
}

func second[T any](_ T, err error) error { return err }

func testListings(t *testing.T, open Opener) {
	st := open(t)
	r, clock := newRunner(t, st)
	snap := Snapshot(t, "acme")
	var ids []string
	for i := 0; i < 4; i++ {
		clock.Advance(time.Minute)
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, run.ID())
		if i%2 == 0 {
			run.Finish(ctx)
		} else {
			run.Step(ctx, step(prevention.StepToolCall, "shell"))
		}
	}
	runs, err := st.Runs(ctx, governance.RunFilter{TenantID: "acme"})
	if err != nil || len(runs) != 4 {
		t.Fatalf("Runs: %d %v", len(runs), err)
	}
	for i, want := range []string{ids[3], ids[2], ids[1], ids[0]} {
		if runs[i].RunID != want {
			t.Errorf("Runs[%d] = %s, want %s (newest first)", i, runs[i].RunID, want)
		}
	}
	if runs, _ := st.Runs(ctx, governance.RunFilter{TenantID: "acme", Status: governance.StatusFailedPolicy}); len(runs) != 2 {
		t.Errorf("Runs failed_policy: %d, want 2", len(runs))
	}
	from, to := T0.Add(2*time.Minute), T0.Add(4*time.Minute)
	if runs, _ := st.Runs(ctx, governance.RunFilter{TenantID: "acme", From: from, To: to}); len(runs) != 2 || runs[0].RunID != ids[2] {
		t.Errorf("Runs in [%v, %v): %+v", from, to, runs)
	}
	if runs, _ := st.Runs(ctx, governance.RunFilter{TenantID: "acme", Limit: 1}); len(runs) != 1 || runs[0].RunID != ids[3] {
		t.Errorf("Runs limit 1: %+v", runs)
	}
	incs, err := st.Incidents(ctx, governance.IncidentFilter{TenantID: "acme"})
	if err != nil || len(incs) != 2 || incs[0].RunID != ids[3] || incs[1].RunID != ids[1] {
		t.Errorf("Incidents newest first: %+v %v", incs, err)
	}
}

func testIncidentLifecycle(t *testing.T, open Opener) {
	st := open(t)
	r, clock := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, "acme")})
	_, err := run.Step(ctx, step(prevention.StepToolCall, "shell"))
	var v *governance.Violation
	if !errors.As(err, &v) {
		t.Fatal(err)
	}
	inc, _ := st.Incident(ctx, "acme", v.IncidentID)
	clock.Advance(time.Hour)
	acked, err := inc.Transition(incident.StatusAcknowledged, "oncall", "", clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := st.UpdateIncident(ctx, acked); err != nil {
		t.Fatal(err)
	}
	resolved, _ := acked.Transition(incident.StatusResolved, "lead", "tool removed from agent", clock.Now())
	resolved.PolicyID = "forged" // facts never change through UpdateIncident
	if err := st.UpdateIncident(ctx, resolved); err != nil {
		t.Fatal(err)
	}
	got, _ := st.Incident(ctx, "acme", v.IncidentID)
	if got.Status != incident.StatusResolved || got.ResolvedBy != "lead" || got.Resolution != "tool removed from agent" ||
		got.AcknowledgedBy != "oncall" || got.AcknowledgedAt == nil || !got.AcknowledgedAt.Equal(T0.Add(time.Hour)) || got.PolicyID != "tools" {
		t.Errorf("incident after lifecycle: %+v", got)
	}
	if open, _ := st.Incidents(ctx, governance.IncidentFilter{TenantID: "acme", Status: incident.StatusOpen}); len(open) != 0 {
		t.Errorf("open incidents after resolve: %d", len(open))
	}
}

func testContent(t *testing.T, open Opener) {
	st := open(t)
	r, _ := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, "acme")})
	in := governance.StepInput{Type: prevention.StepLLMResponse, Input: "question: 東京の天気は？", Output: "Ответ: ☀ \"quoted\"\n\ttab",
		Metadata: map[string]string{"k": "v"}}
	if _, err := run.Step(ctx, in); err != nil {
		t.Fatal(err)
	}
	run.Step(ctx, governance.StepInput{Type: prevention.StepMessage}) // no content
	cs, err := st.Contents(ctx, "acme", run.ID())
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]trace.Content{0: {Input: in.Input, Output: in.Output, Metadata: in.Metadata}}
	if diff := cmp.Diff(want, cs); diff != "" {
		t.Errorf("contents (-want +got):\n%s", diff)
	}
	if _, err := governance.VerifyRun(ctx, st, "acme", run.ID()); err != nil {
		t.Errorf("VerifyRun: %v", err)
	}
}

func testConcurrentRuns(t *testing.T, open Opener) {
	st := open(t)
	r, err := governance.NewRunner(st)
	if err != nil {
		t.Fatal(err)
	}
	snap := Snapshot(t, "acme")
	const runs, steps = 40, 20
	var wg sync.WaitGroup
	errs := make(chan error, runs)
	ids := make([]string, runs)
	for i := 0; i < runs; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = run.ID()
			for s := 0; s < steps; s++ {
				in := step(prevention.StepToolCall, "search")
				in.CostCents = 0
				if s < 3 {
					if _, err := run.Step(ctx, in); err != nil {
						errs <- fmt.Errorf("run %d step %d: %w", i, s, err)
						return
					}
					continue
				}
				// Step 3 is blocked by the step limit.
				if _, err := run.Step(ctx, in); !errors.Is(err, governance.ErrPolicyViolation) {
					errs <- fmt.Errorf("run %d step %d: got %v, want violation", i, s, err)
				}
				return
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for _, id := range ids {
		if id == "" {
			continue
		}
		n, err := governance.VerifyRun(ctx, st, "acme", id)
		if err != nil || n != 6 {
			t.Errorf("run %s: %d records, %v", id, n, err)
		}
	}
	all, _ := st.Runs(ctx, governance.RunFilter{TenantID: "acme"})
	if len(all) != runs {
		t.Errorf("%d runs stored, want %d", len(all), runs)
	}
}

func testExplainVerify(t *testing.T, open Opener) {
	st := open(t)
	r, clock := newRunner(t, st)
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: Snapshot(t, "acme")})
	for i := 0; i < 4; i++ {
		clock.Advance(time.Second)
		run.Step(ctx, step(prevention.StepLLMResponse, ""))
	}
	mid, err := governance.Explain(ctx, st, "acme", run.ID(), T0.Add(2500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if mid.State != governance.StateContinuing || mid.LastStep == nil || mid.LastStep.Index != 1 || mid.Record.Seq != 2 || !mid.Record.Verified {
		t.Errorf("explain at +2.5s: %+v", mid)
	}
	end, err := governance.Explain(ctx, st, "acme", run.ID(), T0.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if end.State != governance.StateStopped || end.Decisive == nil || end.Decisive.PolicyID != "step-limit" ||
		end.Decisive.Threshold != "max_steps" || end.Decisive.Limit != 3 || end.Decisive.Observed != 4 || end.TerminationReason != prevention.ReasonBudgetExceeded ||
		end.Record.Seq != 4 || end.Record.Kind != trace.KindStep || end.Record.ChainLength != 6 {
		t.Errorf("explain after end: %+v", end)
	}
	if _, err := governance.Explain(ctx, st, "acme", run.ID(), T0.Add(-time.Second)); !errors.Is(err, governance.ErrBeforeRun) {
		t.Errorf("explain before the run: got %v, want ErrBeforeRun", err)
	}
	rep, err := governance.VerifyStore(ctx, st, nil)
	if err != nil || rep.Runs != 1 || rep.Records != 6 || len(rep.Failures) != 0 {
		t.Errorf("VerifyStore: %+v %v", rep, err)
	}
}

func testExportLog(t *testing.T, open Opener) {
	st := open(t)
	e1 := governance.ExportRecord{TenantID: "acme", BundleID: "BND-1", BundleType: "evidence", Format: "json",
		BundleHash: strings.Repeat("a", 64), RunID: "RUN-1", IncidentID: "INC-1", ExportedBy: "auditor", Reason: "Q1 audit", CreatedAt: T0}
	e2 := e1
	e2.BundleID, e2.BundleType, e2.IncidentID, e2.KeyID, e2.CreatedAt = "BND-2", "soc2", "INC-2", "key-1", T0.Add(time.Minute)
	for _, e := range []governance.ExportRecord{e1, e2} {
		if err := st.RecordExport(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.RecordExport(ctx, e1); !errors.Is(err, governance.ErrExportExists) {
		t.Errorf("same export twice: got %v, want ErrExportExists", err)
	}
	got, err := st.Exports(ctx, governance.ExportFilter{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]governance.ExportRecord{e2, e1}, got); diff != "" {
		t.Errorf("export log newest first (-want +got):\n%s", diff)
	}
	if got, _ := st.Exports(ctx, governance.ExportFilter{TenantID: "acme", IncidentID: "INC-1"}); len(got) != 1 || got[0].BundleID != "BND-1" {
		t.Errorf("filter by incident: %+v", got)
	}
	if got, _ := st.Exports(ctx, governance.ExportFilter{TenantID: "globex"}); len(got) != 0 {
		t.Errorf("another tenant sees the export log: %+v", got)
	}
}

func testCheckpoints(t *testing.T, open Opener) {
	st := open(t)
	run, start := startRaw(t, st, "acme", "RUN-cp")
	c1 := governance.Checkpoint{TenantID: "acme", RunID: run.RunID, Size: 1, Head: start.Hash, At: T0, KeyName: "k1", Note: "note one\n"}
	c5 := c1
	c5.Size, c5.Note, c5.At = 5, "note five\n", T0.Add(time.Minute)
	for _, c := range []governance.Checkpoint{c5, c1, c1} { // c1 twice: a no-op
		if err := st.PutCheckpoint(ctx, c); err != nil {
			t.Fatal(err)
		}
	}
	forged := c1
	forged.Note = "forged\n"
	if err := st.PutCheckpoint(ctx, forged); !errors.Is(err, governance.ErrChainConflict) {
		t.Errorf("another note for the same size and key: got %v, want ErrChainConflict", err)
	}
	got, err := st.Checkpoints(ctx, "acme", run.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]governance.Checkpoint{c1, c5}, got); diff != "" {
		t.Errorf("checkpoints (-want +got):\n%s", diff)
	}
	if _, err := st.Checkpoints(ctx, "globex", run.RunID); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("checkpoints of another tenant's run: got %v, want ErrNotFound", err)
	}
	other := c1
	other.TenantID = "globex"
	if err := st.PutCheckpoint(ctx, other); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("checkpoint for another tenant's run: got %v, want ErrNotFound", err)
	}
}
