package prevention_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// TestMeasure checks what each threshold kind measures at each step of the
// script, and that a policy measures over its limit exactly at the steps
// its Evaluate blocks.
func TestMeasure(t *testing.T) {
	th := snapshot.Thresholds{"max_tokens": 35, "max_cost_cents": 150, "max_steps": 3, "max_s": 600, "per_min": 3, "day_cents": 1000, "tenant_rate": 100}
	warn := policy("steps", "budget", `{"metric":"steps","threshold":"max_steps"}`)
	warn.Enforcement = snapshot.EnforceWarn
	e := compile(t, th,
		policy("tokens", "budget", `{"metric":"tokens","threshold":"max_tokens"}`),
		policy("cost", "budget", `{"metric":"cost_cents","threshold":"max_cost_cents"}`),
		warn,
		policy("no-ssn", "content", `{"patterns":["\\d{3}-\\d{2}-\\d{4}"]}`), // measures nothing
		policy("pace", "rate_limit", `{"threshold":"per_min","window_seconds":60}`),
		policy("clock", "timeout", `{"threshold":"max_s"}`),
		policy("spend", "tenant_budget", `{"metric":"cost_cents","threshold":"day_cents","period":"day"}`),
		policy("tenant-pace", "tenant_rate_limit", `{"threshold":"tenant_rate","window_seconds":30}`),
	)
	var (
		times  []int64
		tokens int64
		cost   float64
	)
	for i, sp := range script {
		tokens += sp.tokens
		cost += sp.cost
		st := &prevention.Step{TenantID: "acme", Index: i, Type: sp.typ, At: t0.Add(sp.at), RunStartedAt: t0,
			Tool: sp.tool, Output: sp.output, Tokens: sp.tokens, CostCents: sp.cost, TotalTokens: tokens, TotalCostCents: cost}
		st.SetStepTimes(times)
		times = append(times, st.At.UnixNano())

		got := e.Measure(st)
		m := func(id, unit string, limit, observed float64, w prevention.Window, enf snapshot.Enforcement) prevention.PolicyMeasurement {
			return prevention.PolicyMeasurement{PolicyID: id, Source: prevention.SourcePolicy, Enforcement: enf,
				Measurement: prevention.Measurement{Threshold: map[string]string{"tokens": "max_tokens", "cost": "max_cost_cents", "steps": "max_steps", "pace": "per_min", "clock": "max_s"}[id],
					Limit: limit, Observed: observed, Unit: unit, Window: w}}
		}
		want := []prevention.PolicyMeasurement{
			m("tokens", "tokens", 35, float64(tokens), prevention.Window{}, snapshot.EnforceBlock),
			m("cost", "cost_cents", 150, cost, prevention.Window{}, snapshot.EnforceBlock),
			m("steps", "steps", 3, float64(i+1), prevention.Window{}, snapshot.EnforceWarn),
			m("pace", "steps", 3, float64(st.StepsInWindow(time.Minute)), prevention.Window{Rolling: time.Minute}, snapshot.EnforceBlock),
			m("clock", "seconds", 600, sp.at.Seconds(), prevention.Window{}, snapshot.EnforceBlock),
			{PolicyID: "spend", Source: prevention.SourcePolicy, Enforcement: snapshot.EnforceBlock, Measurement: prevention.Measurement{
				Threshold: "day_cents", Limit: 1000, Unit: "cost_cents", Window: prevention.Window{Period: prevention.PeriodDay}, TenantWide: true}},
			{PolicyID: "tenant-pace", Source: prevention.SourcePolicy, Enforcement: snapshot.EnforceBlock, Measurement: prevention.Measurement{
				Threshold: "tenant_rate", Limit: 100, Unit: "steps", Window: prevention.Window{Rolling: 30 * time.Second}, TenantWide: true}},
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("step %d: Measure (-want +got):\n%s", i, diff)
		}

		// Over the limit exactly where the policy alone blocks.
		for _, pm := range got {
			if pm.TenantWide {
				continue
			}
			p, _ := e.Snapshot().Policy(pm.PolicyID)
			p.Enforcement = ""
			ev, err := compile(t, th, p).Evaluate(context.Background(), st)
			if err != nil {
				t.Fatal(err)
			}
			if blocked := ev.Decision.Action == prevention.Block; blocked != (pm.Observed > pm.Limit) {
				t.Errorf("step %d, %s: measured %v of %v, but blocked=%v", i, pm.PolicyID, pm.Observed, pm.Limit, blocked)
			} else if blocked && (ev.Decision.Observed != pm.Observed || ev.Decision.Limit != pm.Limit || ev.Decision.Threshold != pm.Threshold) {
				t.Errorf("step %d, %s: decision %v, measurement %+v", i, pm.PolicyID, ev.Decision, pm.Measurement)
			}
		}
	}
}

type panicMeasurer struct{}

func (panicMeasurer) Evaluate(context.Context, *prevention.Step) (prevention.Decision, error) {
	return prevention.Allowed(), nil
}
func (panicMeasurer) Measure(*prevention.Step) prevention.Measurement { panic("no") }

type hookMeasurer struct{ panicMeasurer }

func (hookMeasurer) Measure(s *prevention.Step) prevention.Measurement {
	return prevention.Measurement{Threshold: "calls", Limit: 10, Observed: float64(s.Index), Unit: "calls"}
}

// TestMeasureHooks: a Go hook that is a Measurer is measured under its id
// with Source hook; one whose Measure panics is left out.
func TestMeasureHooks(t *testing.T) {
	e, err := kinds.Compile(newSnapshot(t, nil, policy("tokens", "budget", `{"metric":"tokens","threshold":"max_tokens"}`)),
		prevention.NamedHook{ID: "bad", Hook: panicMeasurer{}},
		prevention.NamedHook{ID: "calls", Hook: hookMeasurer{}, Enforcement: snapshot.EnforceMonitor})
	if err != nil {
		t.Fatal(err)
	}
	got := e.Measure(&prevention.Step{Index: 4, TotalTokens: 7})
	if len(got) != 2 || got[0].PolicyID != "tokens" || got[0].Observed != 7 ||
		got[1].PolicyID != "calls" || got[1].Source != prevention.SourceHook || got[1].Enforcement != snapshot.EnforceMonitor || got[1].Observed != 4 {
		t.Errorf("Measure: %+v", got)
	}
}
