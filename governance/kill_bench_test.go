package governance_test

import (
	"context"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
)

// BenchmarkStepKillSwitch measures what the kill switch adds to a
// governed step (in memory, so that the store's cost does not hide it):
// off, a runner without WithKillSwitch; none, a runner that watches but
// no switch is pulled; other, switches pulled over another tenant, an
// agent and a run that are not this run's. Compare the three in one
// process: the step checks an in-memory view with one atomic load and,
// when switches are pulled, three map look-ups; it never queries the
// store.
func BenchmarkStepKillSwitch(b *testing.B) {
	ctx := context.Background()
	for _, mode := range []string{"off", "none", "other"} {
		b.Run(mode, func(b *testing.B) {
			st := memstore.New()
			var opts []governance.Option
			if mode != "off" {
				opts = append(opts, governance.WithKillSwitch(0))
			}
			if mode == "other" {
				for _, k := range []struct {
					tenant string
					scope  governance.KillScope
					target string
				}{{"beta", governance.KillTenant, "beta"}, {"acme", governance.KillAgent, "other-agent"}, {"acme", governance.KillRun, "other-run"}} {
					if _, err := governance.Kill(ctx, st, k.tenant, k.scope, k.target, "bench", "bench"); err != nil {
						b.Fatal(err)
					}
				}
			}
			r, err := governance.NewRunner(st, opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			run, err := r.Start(ctx, governance.StartOptions{Snapshot: approvalSnap(b, `{"tenant_id":"acme","thresholds":{"n":1e15},"policies":[{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"n"}}]}`),
				Labels: map[string]string{governance.AgentLabel: "agent"}})
			if err != nil {
				b.Fatal(err)
			}
			in := governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 10, CostCents: 0.1}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if _, err := run.Step(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
