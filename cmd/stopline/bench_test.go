package main_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/sqlite"
)

// benchPolicy governs the benchmarks' long run: budgets, a rate limit, a
// timeout and a tool allowlist.
const benchPolicy = `{"tenant_id":"acme","thresholds":{"max_tokens":100000000,"max_cost_cents":1000000,"max_steps":2000000,"per_min":100000,"max_s":100000000},
 "policies":[
  {"id":"tokens","kind":"budget","params":{"metric":"tokens","threshold":"max_tokens"}},
  {"id":"cost","kind":"budget","params":{"metric":"cost_cents","threshold":"max_cost_cents"}},
  {"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
  {"id":"pace","kind":"rate_limit","params":{"threshold":"per_min","window_seconds":60}},
  {"id":"clock","kind":"timeout","params":{"threshold":"max_s"}},
  {"id":"tools","kind":"tool_allowlist","params":{"allow":["search","calc"]}}
 ]}`

// recordBenchRun records a completed run of n steps, 250 ms apart, in a
// new SQLite file, and returns the file and the run id.
func recordBenchRun(b *testing.B, n int) (db, runID string) {
	b.Helper()
	ctx := context.Background()
	db = filepath.Join(b.TempDir(), "bench.db")
	st, err := sqlite.Open(ctx, db, sqlite.WithSynchronous(sqlite.Normal))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := governance.NewFakeClock(t0)
	r, err := governance.NewRunner(st, governance.WithClock(clock))
	if err != nil {
		b.Fatal(err)
	}
	snap, err := snapshot.Parse("policy.json", []byte(benchPolicy), t0, prevention.Builtin())
	if err != nil {
		b.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < n; i++ {
		clock.Advance(250 * time.Millisecond)
		in := governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Input: `{"q":"errors"}`, Tokens: 7, CostCents: 0.001}
		if i%2 == 1 {
			in = governance.StepInput{Type: prevention.StepLLMResponse, Model: "m-1", Input: "continue", Output: "The service logs show three errors.", Tokens: 40, CostCents: 0.002}
		}
		if _, err := run.Step(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	clock.Advance(250 * time.Millisecond)
	if _, err := run.Finish(ctx); err != nil {
		b.Fatal(err)
	}
	return db, run.ID()
}

// BenchmarkExplainCLI100k runs the built stopline binary, `stopline
// explain RUN --at INSTANT --json`, on a SQLite file holding a completed
// run of 100,000 steps: at its 1,000th step, its 50,000th, and after its
// end. It reports the wall time of the whole process per run and its peak
// resident set size (the child's rusage). STOPLINE_BENCH_BIN runs another
// build instead (an earlier commit's, to compare).
func BenchmarkExplainCLI100k(b *testing.B) {
	db, runID := recordBenchRun(b, 100_000)
	bin := bin
	if other := os.Getenv("STOPLINE_BENCH_BIN"); other != "" {
		bin = other
	}
	for _, c := range []struct {
		name string
		ms   int
	}{{"step-1000", 250_000}, {"step-50000", 12_500_000}, {"end", 25_000_500}} {
		b.Run(c.name, func(b *testing.B) {
			var rss int64
			for i := 0; i < b.N; i++ {
				cmd := exec.Command(bin, "--db", db, "explain", runID, "--at", "+"+strconv.Itoa(c.ms), "--json")
				cmd.Env = append(os.Environ(), "STOPLINE_DB=")
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("%v: %s", err, out)
				}
				if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
					rss = max(rss, ru.Maxrss) // KiB on Linux
				}
			}
			b.ReportMetric(float64(rss)/1024, "MB-maxrss")
		})
	}
}
