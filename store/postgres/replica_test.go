package postgres_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/postgres"
	"github.com/stopline/stopline/store/storetest"
	"github.com/stopline/stopline/trace"
)

// The multi-replica test runs its replicas as separate OS processes: the
// test binary runs itself again, once per replica, with replicaEnv set
// (TestReplicaProcess is then the replica). Each replica opens the same
// fresh database itself (so they also race to migrate it) and runs
// concurrent governed runs of two tenants:
//
//   - acme, under a daily cost budget shared by all runs: half of the runs
//     reserve each call's worst case before making it and settle it to the
//     actual cost after (Run.Reserve, as an LLM gateway would), half report
//     each step after the fact (Run.Step). Many runs reach the edge of the
//     budget at the same moment on different processes.
//   - globex, under a tenant-wide rate limit: all its steps are at one
//     instant, so exactly the limit's number of steps may pass.
//   - initech, the burst: every replica first starts its runs, then all
//     replicas wait for the same instant of the wall clock and reserve one
//     call's worst case each, all at once, against a budget that only some
//     of them fit in.
//
// The parent then checks, from the database alone: every step a replica
// was told was recorded is there with the same hash, every chain verifies,
// the steps admitted under the budget add up to no more than the budget
// (overshoot 0) and exactly to what the ledger counted, and the rate limit
// admitted exactly its limit.

const (
	replicaEnv    = "STOPLINE_REPLICA"     // replica number, in the child
	replicaURLEnv = "STOPLINE_REPLICA_URL" // the database, in the child
	replicaOutEnv = "STOPLINE_REPLICA_OUT" // where the child writes its report
	replicaAtEnv  = "STOPLINE_REPLICA_AT"  // unix nanoseconds of the burst

	replicas         = 4
	runsPerReplica   = 8 // concurrent acme runs in each replica
	stepsPerRun      = 12
	worstCents       = 9.0  // the worst case a gateway run reserves per call
	dailyBudgetCents = 1500 // well under replicas × runs × steps × cost
	globexRuns       = 3    // concurrent globex runs per replica
	globexSteps      = 10
	globexRateLimit  = 50 // steps per minute across globex's runs
	burstRuns        = 16 // initech runs per replica, one reservation each
	burstWorst       = 7  // cents reserved by each
	burstBudget      = 100
)

func replicaSnapshots(t testing.TB) (acme, globex *governance.StartOptions) {
	a := storetest.TenantSnapshot(t, "acme", fmt.Sprintf(`{"daily_cost": %d}`, dailyBudgetCents),
		`{"id": "daily-cost", "kind": "tenant_budget", "params": {"metric": "cost_cents", "threshold": "daily_cost", "period": "day"}}`)
	g := storetest.TenantSnapshot(t, "globex", fmt.Sprintf(`{"tenant_pace": %d}`, globexRateLimit),
		`{"id": "pace", "kind": "tenant_rate_limit", "params": {"threshold": "tenant_pace", "window_seconds": 60}}`)
	return &governance.StartOptions{Snapshot: a}, &governance.StartOptions{Snapshot: g}
}

// ackedStep is a step a replica was told was recorded.
type ackedStep struct {
	Tenant string `json:"tenant"`
	RunID  string `json:"run_id"`
	Index  int    `json:"index"`
	Hash   string `json:"hash"`
}

type replicaReport struct {
	Acked    []ackedStep   `json:"acked"`
	Burst    int           `json:"burst"` // initech reservations admitted
	Blocked  int           `json:"blocked"`
	Runs     int           `json:"runs"`
	Elapsed  time.Duration `json:"elapsed"`
	Failures []string      `json:"failures"`
}

func TestMultiReplica(t *testing.T) {
	serverURL(t)
	if os.Getenv(replicaEnv) != "" {
		t.Skip("in a replica")
	}
	t.Parallel()
	url := newDatabase(t)
	dir := t.TempDir()
	start := time.Now()
	burstAt := start.Add(3 * time.Second) // after every replica has opened and started its runs
	var wg sync.WaitGroup
	outs := make([][]byte, replicas)
	errs := make([]error, replicas)
	for i := range replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaProcess$", "-test.count=1", "-test.v")
			cmd.Env = append(os.Environ(), replicaEnv+"="+strconv.Itoa(i+1), replicaURLEnv+"="+url,
				replicaOutEnv+"="+filepath.Join(dir, fmt.Sprintf("replica-%d.json", i+1)),
				replicaAtEnv+"="+strconv.FormatInt(burstAt.UnixNano(), 10))
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	var reports []replicaReport
	for i := range replicas {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v\n%s", i+1, errs[i], outs[i])
		}
		b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("replica-%d.json", i+1)))
		if err != nil {
			t.Fatalf("replica %d wrote no report: %v\n%s", i+1, err, outs[i])
		}
		var rep replicaReport
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatal(err)
		}
		for _, f := range rep.Failures {
			t.Errorf("replica %d: %s", i+1, f)
		}
		reports = append(reports, rep)
	}

	s := openStore(t, url)
	// No lost step: everything acknowledged is stored, with its hash.
	chains := map[string][]trace.Record{}
	acked, blocked, runs := 0, 0, 0
	var busy time.Duration // the slowest replica's time running its runs
	for _, rep := range reports {
		busy = max(busy, rep.Elapsed)
		blocked += rep.Blocked
		runs += rep.Runs
		for _, a := range rep.Acked {
			acked++
			recs, ok := chains[a.RunID]
			if !ok {
				var err error
				if recs, err = s.Records(ctx, a.Tenant, a.RunID); err != nil {
					t.Fatal(err)
				}
				chains[a.RunID] = recs
			}
			found := false
			for _, r := range recs {
				if r.Kind == trace.KindStep && r.StepIndex == a.Index {
					found = r.Hash == a.Hash
					break
				}
			}
			if !found {
				t.Errorf("acknowledged step %d of run %s (%s) is not stored as acknowledged", a.Index, a.RunID, a.Hash)
			}
		}
	}
	// Every chain verifies, and every run was recorded.
	rep, err := governance.VerifyStore(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Failures {
		t.Error(f)
	}
	if want := replicas * (runsPerReplica + globexRuns + burstRuns); rep.Runs != want || runs != want {
		t.Errorf("%d runs stored, %d reported, want %d", rep.Runs, runs, want)
	}
	// The budget, from the records alone.
	admitted := func(tenant string) (steps int, cents float64, units int64) {
		all, err := s.Runs(ctx, governance.RunFilter{TenantID: tenant})
		if err != nil {
			t.Fatal(err)
		}
		for _, run := range all {
			recs, err := s.Records(ctx, tenant, run.RunID)
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Kind == trace.KindStep && r.Status != trace.StatusViolation {
					steps++
					cents += r.CostCents
					units += int64(r.CostCents*prevention.CostUnitsPerCent + 0.5)
				}
			}
		}
		return
	}
	acmeSteps, spent, spentUnits := admitted("acme")
	day := prevention.Counter{TenantID: "acme", Metric: prevention.MetricCostCents, Window: prevention.Window{Period: prevention.PeriodDay}}
	counted, err := s.Ledger().Usage(ctx, day, storetest.T0)
	if err != nil {
		t.Fatal(err)
	}
	overshoot := max(spent-dailyBudgetCents, 0)
	t.Logf("%d replica processes × %d concurrent runs (after the burst): %d steps acknowledged, %d blocked in all; "+
		"%v running them (%.0f governed steps/s); %v in all, with process start, migration and the burst's wait",
		replicas, runsPerReplica+globexRuns, acked, blocked, busy.Round(time.Millisecond),
		float64(acked+blocked-replicas*burstRuns)/busy.Seconds(), wall.Round(time.Millisecond))
	t.Logf("acme daily budget %d cents: admitted %.0f cents in %d steps, ledger counts %.0f; overshoot %.0f cents",
		dailyBudgetCents, spent, acmeSteps, float64(counted)/prevention.CostUnitsPerCent, overshoot)
	if overshoot != 0 {
		t.Errorf("tenant budget overshot by %v cents", overshoot)
	}
	if counted != spentUnits {
		t.Errorf("ledger counts %d units, the admitted steps add up to %d", counted, spentUnits)
	}
	if spent < dailyBudgetCents-worstCents*replicas*runsPerReplica {
		t.Errorf("admitted only %v of %d cents: reservations leaked", spent, dailyBudgetCents)
	}
	burst := 0
	for _, rep := range reports {
		burst += rep.Burst
	}
	burstSteps, burstSpent, _ := admitted("initech")
	t.Logf("burst: %d reservations of %d cents from %d processes at once against %d cents: %d admitted, %v cents spent; overshoot %v",
		replicas*burstRuns, burstWorst, replicas, burstBudget, burst, burstSpent, max(burstSpent-burstBudget, 0))
	if want := burstBudget / burstWorst; burst != want || burstSteps != want || burstSpent != float64(want*burstWorst) {
		t.Errorf("burst admitted %d reservations (%d steps stored, %v cents); want exactly %d", burst, burstSteps, burstSpent, want)
	}
	globexAdmitted, _, _ := admitted("globex")
	t.Logf("globex rate limit %d steps/min: admitted %d of %d attempted", globexRateLimit, globexAdmitted, replicas*globexRuns*globexSteps)
	if globexAdmitted != globexRateLimit {
		t.Errorf("tenant rate limit admitted %d steps, want exactly %d", globexAdmitted, globexRateLimit)
	}
}

// TestReplicaProcess is one replica of TestMultiReplica, in its own
// process. It does nothing unless replicaEnv is set.
func TestReplicaProcess(t *testing.T) {
	id := os.Getenv(replicaEnv)
	if id == "" {
		t.Skip("run by TestMultiReplica")
	}
	n, _ := strconv.Atoi(id)
	st, err := postgres.Open(ctx, os.Getenv(replicaURLEnv), postgres.WithMaxConns(runsPerReplica+globexRuns))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r, err := governance.NewRunner(st, governance.WithClock(governance.NewFakeClock(storetest.T0)))
	if err != nil {
		t.Fatal(err)
	}
	acme, globex := replicaSnapshots(t)
	initech := storetest.TenantSnapshot(t, "initech", fmt.Sprintf(`{"daily_cost": %d}`, burstBudget),
		`{"id": "daily-cost", "kind": "tenant_budget", "params": {"metric": "cost_cents", "threshold": "daily_cost", "period": "day"}}`)
	var (
		mu  sync.Mutex
		rep replicaReport
		wg  sync.WaitGroup
	)
	failf := func(format string, args ...any) {
		mu.Lock()
		rep.Failures = append(rep.Failures, fmt.Sprintf(format, args...))
		mu.Unlock()
	}
	ack := func(run *governance.Run, res governance.StepResult) {
		mu.Lock()
		rep.Acked = append(rep.Acked, ackedStep{Tenant: run.TenantID(), RunID: run.ID(), Index: res.Index, Hash: res.Hash})
		mu.Unlock()
	}
	stopped := func(err error) bool {
		if errors.Is(err, governance.ErrPolicyViolation) {
			mu.Lock()
			rep.Blocked++
			mu.Unlock()
			return true
		}
		return false
	}
	// The burst: runs started, then one reservation each at the same
	// instant in every replica.
	at, _ := strconv.ParseInt(os.Getenv(replicaAtEnv), 10, 64)
	var burst []*governance.Run
	for range burstRuns {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: initech})
		if err != nil {
			t.Fatal(err)
		}
		burst = append(burst, run)
	}
	rep.Runs += burstRuns
	time.Sleep(time.Until(time.Unix(0, at)))
	for _, run := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			call := governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Tokens: 100, CostCents: burstWorst}
			rsv, err := run.Reserve(ctx, call)
			if stopped(err) {
				return
			}
			if err == nil {
				var res governance.StepResult
				if res, err = rsv.Step(ctx, call); err == nil {
					ack(run, res)
					mu.Lock()
					rep.Burst++
					mu.Unlock()
					_, err = run.Finish(ctx)
				}
			}
			if err != nil {
				failf("burst run %s: %v", run.ID(), err)
			}
		}()
	}
	wg.Wait()

	start := time.Now()
	for g := range runsPerReplica + globexRuns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			opts, steps := acme, stepsPerRun
			if g >= runsPerReplica {
				opts, steps = globex, globexSteps
			}
			run, err := r.Start(ctx, *opts)
			if err != nil {
				failf("start: %v", err)
				return
			}
			mu.Lock()
			rep.Runs++
			mu.Unlock()
			gateway := g%2 == 0 && g < runsPerReplica
			for s := range steps {
				actual := governance.StepInput{Type: prevention.StepLLMResponse, Model: "m", Tokens: 100,
					CostCents: float64(3 + (n+g+s)%7)} // 3 to 9 cents: whole cents, exact in every store
				var (
					res governance.StepResult
					err error
				)
				if gateway {
					worst := actual
					worst.CostCents = worstCents
					var rsv *governance.Reservation
					if rsv, err = run.Reserve(ctx, worst); err == nil {
						res, err = rsv.Step(ctx, actual)
					}
				} else {
					res, err = run.Step(ctx, actual)
				}
				if stopped(err) {
					return
				}
				if err != nil {
					failf("run %s step %d: %v", run.ID(), s, err)
					return
				}
				ack(run, res)
			}
			if _, err := run.Finish(ctx); err != nil {
				failf("finish %s: %v", run.ID(), err)
			}
		}()
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(os.Getenv(replicaOutEnv), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// Replicas closing and checkpointing runs of one tenant at once, each with
// its own pool, append to the tenant's log one after the other: every
// close and checkpoint has exactly one leaf, and the log verifies.
func TestReplicasAppendToOneTenantLog(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	stores := []governance.Store{openStore(t, url), openStore(t, url), openStore(t, url)}
	storetest.TenantLogRace(t, stores)
}
