package governance_test

import (
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore/sqlstoretest"
	"github.com/stopline/stopline/store/memstore"
	"github.com/stopline/stopline/trace"
)

// BenchmarkStepShadowRetention is one governed step on memstore (no
// disk: the runner's own cost) with the 20 policies of the store
// benchmarks, in turn in each iteration: plain; with the same snapshot
// as a shadow; kept redacted; kept as hashes. It reports each one's
// ns/op and its ratio to the plain step measured beside it:
//
//	go test -run '^$' -bench StepShadowRetention -benchtime 20000x ./governance/
func BenchmarkStepShadowRetention(b *testing.B) {
	snap := sqlstoretest.TwentyPolicies(b)
	start := func(opts governance.StartOptions) *governance.Run {
		r, err := governance.NewRunner(memstore.New())
		if err != nil {
			b.Fatal(err)
		}
		opts.Snapshot = snap
		run, err := r.Start(ctx, opts)
		if err != nil {
			b.Fatal(err)
		}
		return run
	}
	runs := []*governance.Run{
		start(governance.StartOptions{}),
		start(governance.StartOptions{Shadow: snap}),
		start(governance.StartOptions{Retention: trace.RetentionRedacted}),
		start(governance.StartOptions{Retention: trace.RetentionHashes}),
	}
	names := []string{"plain", "shadow", "redacted", "hashes"}
	var took [4]time.Duration
	in := sqlstoretest.BenchStep
	b.ResetTimer()
	for range b.N {
		for i, run := range runs {
			t0 := time.Now()
			if _, err := run.Step(ctx, in); err != nil {
				b.Fatal(err)
			}
			took[i] += time.Since(t0)
		}
	}
	for i, name := range names {
		b.ReportMetric(float64(took[i].Nanoseconds())/float64(b.N), name+"-ns/op")
		if i > 0 {
			b.ReportMetric(float64(took[i])/float64(took[0]), name+"/plain")
		}
	}
}
