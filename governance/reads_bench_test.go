package governance_test

import (
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/sqlite"
)

// longRunDoc governs the long run of the read benchmarks: budgets, a rate
// limit, a timeout, a tool allowlist and a warn-mode budget that fires
// from the middle of the run on, so that records carry findings.
const longRunDoc = `{"tenant_id":"acme","thresholds":{"max_tokens":100000000,"max_cost_cents":1000000,"max_steps":2000000,
  "per_min":100000,"max_s":100000000,"warn_tokens":2000000},
 "policies":[
  {"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}},
  {"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}},
  {"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
  {"id":"pace","kind":"rate_limit","params":{"threshold":"per_min","window_seconds":60}},
  {"id":"clock","kind":"timeout","params":{"threshold":"max_s"}},
  {"id":"tools","kind":"tool_allowlist","params":{"allow":["search","calc"]}},
  {"id":"token-warn","kind":"budget","params":{"metric":"tokens","threshold":"warn_tokens"},"enforcement":"warn"}
 ]}`

// longRunStep is the interval between the long run's steps.
const longRunStep = 250 * time.Millisecond

var (
	longRuns    sync.Map // steps -> *longRun
	longRunDirs sync.Map // directories to remove when the tests end
)

// TestMain removes the long runs' files, which the benchmarks of one
// process share.
func TestMain(m *testing.M) {
	code := m.Run()
	longRunDirs.Range(func(dir, _ any) bool {
		os.RemoveAll(dir.(string))
		return true
	})
	os.Exit(code)
}

type longRun struct {
	once  sync.Once
	file  string
	runID string
	err   error
}

// recordLongRun records, once per process, a completed run of n steps in
// a SQLite file (synchronous=NORMAL) and returns the file and the run id.
// The steps alternate tool calls and LLM responses, 250 ms apart, from t0.
func recordLongRun(b *testing.B, n int) (file, runID string) {
	b.Helper()
	v, _ := longRuns.LoadOrStore(n, &longRun{})
	lr := v.(*longRun)
	lr.once.Do(func() {
		dir, err := os.MkdirTemp("", "stopline-reads-")
		if err != nil {
			lr.err = err
			return
		}
		longRunDirs.Store(dir, true)
		lr.file = filepath.Join(dir, "run-"+strconv.Itoa(n)+".db")
		st, err := sqlite.Open(ctx, lr.file, sqlite.WithSynchronous(sqlite.Normal))
		if err != nil {
			lr.err = err
			return
		}
		defer st.Close()
		r, clock := newRunner(b, st)
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(b, longRunDoc)})
		if err != nil {
			lr.err = err
			return
		}
		for i := 0; i < n; i++ {
			clock.Advance(longRunStep)
			in := governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Input: `{"q":"errors"}`, Tokens: 7, CostCents: 0.001}
			if i%2 == 1 {
				in = governance.StepInput{Type: prevention.StepLLMResponse, Model: "m-1", Input: "continue", Output: "The service logs show three errors.", Tokens: 40, CostCents: 0.002}
			}
			if _, err := run.Step(ctx, in); err != nil {
				lr.err = err
				return
			}
		}
		clock.Advance(longRunStep)
		if _, err := run.Finish(ctx); err != nil {
			lr.err = err
			return
		}
		lr.runID = run.ID()
	})
	if lr.err != nil {
		b.Fatal(lr.err)
	}
	return lr.file, lr.runID
}

func openLongRun(b *testing.B, n int) (*sqlite.Store, string) {
	b.Helper()
	file, runID := recordLongRun(b, n)
	st, err := sqlite.Open(ctx, file)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st, runID
}

// BenchmarkExplain100k explains instants of a completed run of 100,000
// steps on SQLite: after its 1,000th step, in its middle, and after its
// end (the whole chain).
func BenchmarkExplain100k(b *testing.B) {
	const n = 100_000
	st, runID := openLongRun(b, n)
	for _, c := range []struct {
		name string
		step int
	}{{"step-1000", 1000}, {"step-50000", 50_000}, {"end", n + 1}} {
		b.Run(c.name, func(b *testing.B) {
			at := t0.Add(time.Duration(c.step) * longRunStep)
			b.ReportAllocs()
			defer reportCPU(b)()
			for i := 0; i < b.N; i++ {
				if _, err := governance.Explain(ctx, st, "acme", runID, at); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVerifyRun100k verifies a completed run of 100,000 steps on
// SQLite: its chain, its row, snapshot, stored columns and step contents.
func BenchmarkVerifyRun100k(b *testing.B) {
	const n = 100_000
	st, runID := openLongRun(b, n)
	b.ReportAllocs()
	defer reportCPU(b)()
	for i := 0; i < b.N; i++ {
		got, err := governance.VerifyRun(ctx, st, "acme", runID)
		if err != nil {
			b.Fatal(err)
		}
		if got != n+2 {
			b.Fatalf("verified %d records, want %d", got, n+2)
		}
	}
}

// reportCPU starts counting the process's CPU time (user and system, all
// threads); the function it returns reports it per op as cpu-ms/op. On a
// machine shared with other work, CPU time varies less than wall time.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	b.ResetTimer()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
