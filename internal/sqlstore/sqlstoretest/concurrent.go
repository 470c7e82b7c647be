package sqlstoretest

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
)

// Writer is a store measured by ConcurrentRuns.
type Writer struct {
	// Name prefixes the baseline's metrics.
	Name  string
	Store governance.Store
	// Commits, if not nil, counts the store's write transactions.
	Commits func() int64
}

// phase is what one writer did in one phase of ConcurrentRuns.
type phase struct {
	steps   int
	elapsed time.Duration
	lat     []time.Duration
	commits int64
}

// stepsPerPhase is how many steps each phase takes in all (at least 40
// per run), so that each percentile is read from enough steps.
const stepsPerPhase = 1000

// runPhase starts n runs of TwentyPolicies on w, then steps them from n
// goroutines at once, each run stepsPerRun steps, timing each step and
// the whole; then it finishes the runs.
func runPhase(b *testing.B, w Writer, n int) phase {
	ctx := context.Background()
	r, err := governance.NewRunner(w.Store)
	if err != nil {
		b.Fatal(err)
	}
	snap := TwentyPolicies(b)
	runs := make([]*governance.Run, n)
	for i := range runs {
		if runs[i], err = r.Start(ctx, governance.StartOptions{Snapshot: snap}); err != nil {
			b.Fatal(err)
		}
	}
	per := max(40, stepsPerPhase/n)
	lat := make([][]time.Duration, n)
	var c0 int64
	if w.Commits != nil {
		c0 = w.Commits()
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i, run := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, per)
			for range per {
				t0 := time.Now()
				if _, err := run.Step(ctx, BenchStep); err != nil {
					b.Error(err)
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	p := phase{steps: n * per, elapsed: time.Since(start)}
	if w.Commits != nil {
		p.commits = w.Commits() - c0
	}
	for _, l := range lat {
		p.lat = append(p.lat, l...)
	}
	for _, run := range runs {
		if _, err := run.Finish(ctx); err != nil {
			b.Fatal(err)
		}
	}
	return p
}

// ConcurrentRuns governs n runs at once, each stepping from a goroutine
// of its own through governance.Runner (TwentyPolicies, BenchStep), on w
// and on baseline in turn, in each iteration (alternating which goes
// first), and on w with one run, for the latency of a run alone. It
// reports, over all iterations:
//
//	steps/s              on w
//	<baseline>-steps/s   on baseline
//	x-<baseline>         their ratio
//	x-1run               w's steps/s over one run's on w
//	p50-µs, p99-µs       step latency on w
//	<baseline>-p99-µs    step latency on baseline
//	p99-x-1run           w's p99 over one run's p99 on w
//	commits/step         w's write transactions per step (with Commits)
func ConcurrentRuns(b *testing.B, n int, w, baseline Writer) {
	var got, base, one phase
	add := func(to *phase, p phase) {
		to.steps += p.steps
		to.elapsed += p.elapsed
		to.lat = append(to.lat, p.lat...)
		to.commits += p.commits
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			add(&got, runPhase(b, w, n))
			add(&base, runPhase(b, baseline, n))
		} else {
			add(&base, runPhase(b, baseline, n))
			add(&got, runPhase(b, w, n))
		}
		add(&one, runPhase(b, w, 1))
	}
	b.StopTimer()
	rate := func(p phase) float64 { return float64(p.steps) / p.elapsed.Seconds() }
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	b.ReportMetric(rate(got), "steps/s")
	b.ReportMetric(rate(base), baseline.Name+"-steps/s")
	b.ReportMetric(rate(got)/rate(base), "x-"+baseline.Name)
	b.ReportMetric(rate(got)/rate(one), "x-1run")
	p99, oneP99 := Percentile(got.lat, 99), Percentile(one.lat, 99)
	b.ReportMetric(us(Percentile(got.lat, 50)), "p50-µs")
	b.ReportMetric(us(p99), "p99-µs")
	b.ReportMetric(us(Percentile(base.lat, 99)), baseline.Name+"-p99-µs")
	b.ReportMetric(float64(p99)/float64(oneP99), "p99-x-1run")
	if w.Commits != nil {
		b.ReportMetric(float64(got.commits)/float64(got.steps), "commits/step")
	}
}
