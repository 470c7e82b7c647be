package prevention

import (
	"context"
	"slices"

	"github.com/stopline/stopline/snapshot"
)

// Measurer is an optional interface of a Hook whose decision compares one
// value of the step with a limit. It says, for any step, what the hook
// compares — without deciding — so that an explanation can show how close
// a step came to each limit: "cost_cents 120 of 150". The hooks of the
// built-in kinds budget, rate_limit, timeout, tenant_budget and
// tenant_rate_limit implement it; Engine.Measure gathers the measurements
// of every policy and hook that does.
//
// Measure must only compute over the step: it must not block, read
// anything else or change anything. It may be called concurrently, on any
// step, whether or not Evaluate was called on it, and must not retain the
// step.
type Measurer interface {
	Measure(step *Step) Measurement
}

// Measurement is what a policy compares with its limit at one step. A
// policy blocks when Observed is strictly greater than Limit.
type Measurement struct {
	// Threshold names the threshold in the snapshot; Limit is its value.
	Threshold string
	Limit     float64
	// Observed is the value at the step, this step included, as the
	// policy compares it. For a TenantWide measurement it is 0: the
	// tenant's total is kept in the store's Ledger, not in the step.
	Observed float64
	// Unit is what Observed counts: "tokens", "cost_cents", "steps",
	// "seconds" (a run's elapsed time), or for a TenantWide measurement
	// the Metric of its counter ("cost_cents", "tokens", "runs",
	// "steps").
	Unit string
	// Window is the span a rate or a tenant-wide limit counts over: the
	// trailing window of a rate_limit or tenant_rate_limit, the period or
	// rolling window of a tenant_budget. Zero for limits over the whole
	// run (budget, timeout).
	Window Window
	// TenantWide is set for a limit that counts all the tenant's runs
	// (tenant_budget, tenant_rate_limit): its total depends on the other
	// runs, and only the decision it recorded says what it was.
	TenantWide bool
}

// PolicyMeasurement is a Measurement of one policy or hook of an engine.
type PolicyMeasurement struct {
	PolicyID    string
	Source      Source
	Enforcement snapshot.Enforcement
	Measurement
}

// Measure returns the measurements, for the step, of every policy and
// hook of the engine that is a Measurer, in evaluation order. It decides
// nothing and waits on nothing. A Measurer that panics is left out.
func (e *Engine) Measure(step *Step) []PolicyMeasurement {
	var out []PolicyMeasurement
	for i := range e.rules {
		r := &e.rules[i]
		m, ok := r.hook.(Measurer)
		if !ok {
			continue
		}
		if ms, ok := measure(m, step); ok {
			out = append(out, PolicyMeasurement{PolicyID: r.id, Source: r.source, Enforcement: r.enforcement, Measurement: ms})
		}
	}
	return out
}

func measure(m Measurer, step *Step) (ms Measurement, ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return m.Measure(step), true
}

// The built-in kinds whose decision compares one value with a limit.
var (
	_ Measurer = (*budgetHook)(nil)
	_ Measurer = (*rateLimitHook)(nil)
	_ Measurer = (*timeoutHook)(nil)
	_ Measurer = (*tenantLimitHook)(nil)
)

// MeasuringEngine compiles snap to measure its policies (Engine.Measure):
// with the built-in kinds, and in place of each policy of another kind a
// hook that measures nothing and allows. It is for reading a recorded
// run's headroom without the program that enforced it; it must not be
// used to evaluate steps.
func MeasuringEngine(snap *snapshot.PolicySnapshot) (*Engine, error) {
	kinds := Builtin()
	var others []Kind
	for _, p := range snap.Policies() {
		if slices.Contains(kinds.names, p.Kind) || slices.ContainsFunc(others, func(k Kind) bool { return k.Name() == p.Kind }) {
			continue
		}
		others = append(others, KindFunc(p.Kind, func(snapshot.Policy, snapshot.Thresholds) (Hook, error) {
			return HookFunc(func(context.Context, *Step) (Decision, error) { return Allowed(), nil }), nil
		}))
	}
	if len(others) > 0 {
		var err error
		if kinds, err = kinds.With(others...); err != nil {
			return nil, err
		}
	}
	return kinds.Compile(snap)
}
