package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/sqlite"
	"github.com/stopline/stopline/trace"
)

var (
	ctx = context.Background()
	t0  = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
)

// dbPath is a fresh database file name in t's temporary directory.
func dbPath(t testing.TB) string { return filepath.Join(t.TempDir(), "stopline.db") }

// openStore opens path and closes it when t ends.
func openStore(t testing.TB, path string, opts ...sqlite.Option) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(ctx, path, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// rawDB is a second, plain database/sql handle on the file, for poking at
// it with SQL the Store would never run.
func rawDB(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000&_foreign_keys=1")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { db.Close() })
	return db
}

// newSnap returns a real snapshot of tenant. The expression policy has a
// '<' and a '&', which JSON encoders like to escape.
func newSnap(t testing.TB, tenant string) *snapshot.PolicySnapshot {
	t.Helper()
	s, err := snapshot.New(tenant, []snapshot.Policy{
		{ID: "step-limit", Kind: "budget", Params: json.RawMessage(`{"metric": "steps", "threshold": "max_steps"}`)},
		{ID: "tools", Kind: "tool_allowlist", Params: json.RawMessage(`{"allow": ["search"]}`)},
		{ID: "small", Kind: "expression", Params: json.RawMessage(`{"expr": "step.tokens < 5 && step.tool != 'x'"}`), Enforcement: snapshot.EnforceWarn},
	}, snapshot.Thresholds{"max_steps": 3, "max_cost_cents": 150.5}, t0)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// chain builds the records of one run with real hashes. Each builder
// returns the next record of the chain and advances the chain as if it
// had been stored.
type chain struct {
	tenant, run string
	snap        *snapshot.PolicySnapshot
	prev        string
	seq, step   int
	tokens      int64
	cost        float64
	at          time.Time
	model       string // the steps' model name; long ones make bigger records
}

func newChain(snap *snapshot.PolicySnapshot, runID string) *chain {
	return &chain{tenant: snap.TenantID(), run: runID, snap: snap, prev: trace.GenesisHash, at: t0}
}

func (c *chain) seal(r trace.Record) governance.StepWrite {
	body := trace.Seal(&r, c.prev, nil)
	c.prev = r.Hash
	c.seq++
	return governance.StepWrite{Record: r, Body: body}
}

func (c *chain) start() governance.StepWrite {
	return c.seal(trace.Record{TenantID: c.tenant, RunID: c.run, Seq: c.seq, Kind: trace.KindRunStart, At: c.at,
		SnapshotID: c.snap.ID(), SnapshotHash: c.snap.ContentHash(), StepIndex: -1})
}

// next returns the next step; a blocking one is the inflection point.
func (c *chain) next(block bool) governance.StepWrite {
	c.at = c.at.Add(time.Second)
	c.tokens += 10
	c.cost += 1.5
	d := prevention.Allowed()
	status := trace.StatusOK
	if block {
		d = prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonPolicyBlock, PolicyID: "tools", Source: prevention.SourcePolicy}
		status = trace.StatusViolation
	}
	content := trace.Content{Input: "in", Output: "out " + c.run, Metadata: map[string]string{"i": string(rune('a' + c.step%26))}}
	r := trace.Record{TenantID: c.tenant, RunID: c.run, Seq: c.seq, Kind: trace.KindStep, At: c.at, SnapshotID: c.snap.ID(),
		StepIndex: c.step, StepType: prevention.StepToolCall, Model: c.model, Tool: "search", Tokens: 10, CostCents: 1.5,
		TotalTokens: c.tokens, TotalCostCents: c.cost, ContentHash: trace.ContentHashOf(content), Status: status,
		Inflection: block, Decision: &d}
	c.step++
	w := c.seal(r)
	w.Content = &content
	return w
}

// end returns the run_end record.
func (c *chain) end(status governance.RunStatus, reason prevention.RunTerminationReason, incidentID string, stoppedAt *int) governance.StepWrite {
	c.at = c.at.Add(time.Second)
	r := trace.Record{TenantID: c.tenant, RunID: c.run, Seq: c.seq, Kind: trace.KindRunEnd, At: c.at, SnapshotID: c.snap.ID(),
		StepIndex: -1, RunStatus: string(status), Reason: reason, StoppedAtStep: stoppedAt, IncidentID: incidentID,
		TotalTokens: c.tokens, TotalCostCents: c.cost}
	if incidentID != "" {
		r.ViolationPolicyID = "tools"
	}
	return c.seal(r)
}

// startRun stores the snapshot and a new run of it, with status, and
// returns its chain.
func startRun(t testing.TB, s governance.Store, snap *snapshot.PolicySnapshot, runID string, status governance.RunStatus) *chain {
	t.Helper()
	return startRunAt(t, s, snap, runID, status, t0)
}

// startRunAt is startRun with the run created at at.
func startRunAt(t testing.TB, s governance.Store, snap *snapshot.PolicySnapshot, runID string, status governance.RunStatus, at time.Time) *chain {
	t.Helper()
	if err := s.PutSnapshot(ctx, snap); err != nil {
		t.Fatal(err)
	}
	c := newChain(snap, runID)
	c.at = at
	run := governance.RunRecord{RunID: runID, TenantID: snap.TenantID(), TraceID: "TRC-" + runID, SnapshotID: snap.ID(),
		Status: status, CreatedAt: c.at, Labels: map[string]string{"agent": "a1"}}
	if status == governance.StatusRunning {
		run.StartedAt = &c.at
	}
	if err := s.CreateRun(ctx, run, c.start()); err != nil {
		t.Fatalf("CreateRun %s: %v", runID, err)
	}
	return c
}

// appendSteps appends n allowed steps.
func appendSteps(t testing.TB, s governance.Store, c *chain, n int) {
	t.Helper()
	for range n {
		if err := s.AppendStep(ctx, c.next(false)); err != nil {
			t.Fatalf("AppendStep: %v", err)
		}
	}
}

// blockRun closes the run with a blocking step, its incident, and run_end.
func blockRun(t testing.TB, s governance.Store, c *chain, incidentID string) (governance.Close, incident.Incident) {
	t.Helper()
	step := c.next(true)
	idx := step.Record.StepIndex
	inc := incident.Incident{ID: incidentID, TenantID: c.tenant, RunID: c.run, TraceID: "TRC-" + c.run, SnapshotID: c.snap.ID(),
		PolicyID: "tools", Source: prevention.SourcePolicy, StepIndex: idx, RecordHash: step.Record.Hash,
		Reason: prevention.ReasonPolicyBlock, Severity: incident.SeverityHigh,
		Status: incident.StatusOpen, Title: incident.TitleFor(*step.Record.Decision, idx), CreatedAt: step.Record.At}
	// The incident states the blocking decision's facts, as the runner's do.
	d := step.Record.Decision
	inc.Threshold, inc.Limit, inc.Observed, inc.Message = d.Threshold, d.Limit, d.Observed, d.Message
	end := c.end(governance.StatusFailedPolicy, prevention.ReasonPolicyBlock, incidentID, &idx)
	cl := governance.Close{TenantID: c.tenant, RunID: c.run, Step: &step, Incident: &inc, End: end,
		Status: governance.StatusFailedPolicy, Reason: prevention.ReasonPolicyBlock, StoppedAtStep: &idx,
		ViolationPolicyID: "tools", IncidentID: incidentID, Message: "stopped", EndedAt: end.Record.At}
	if err := s.CloseRun(ctx, cl); err != nil {
		t.Fatalf("CloseRun: %v", err)
	}
	return cl, inc
}

// finishRun closes the run as completed.
func finishRun(t testing.TB, s governance.Store, c *chain) governance.Close {
	t.Helper()
	end := c.end(governance.StatusSucceeded, prevention.ReasonCompleted, "", nil)
	cl := governance.Close{TenantID: c.tenant, RunID: c.run, End: end, Status: governance.StatusSucceeded,
		Reason: prevention.ReasonCompleted, EndedAt: end.Record.At}
	if err := s.CloseRun(ctx, cl); err != nil {
		t.Fatalf("CloseRun: %v", err)
	}
	return cl
}

// count returns the result of a COUNT(*) query on the raw handle.
func count(t testing.TB, db *sql.DB, query string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}
