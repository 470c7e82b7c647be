package prevention

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/stopline/stopline/snapshot"
)

// Policy kinds that limit a tenant across all its runs, through a Ledger.
// doc.go describes their parameters and semantics.
const (
	kindTenantBudget    = "tenant_budget"
	kindTenantRateLimit = "tenant_rate_limit"
)

var tenantBudgetMetrics = []Metric{MetricCostCents, MetricTokens, MetricRuns}

func compileTenantBudget(p snapshot.Policy, th snapshot.Thresholds) (Hook, error) {
	var params struct {
		Metric        *string  `json:"metric"`
		Threshold     *string  `json:"threshold"`
		Period        *string  `json:"period"`
		WindowSeconds *float64 `json:"window_seconds"`
	}
	if err := decodeParams(p, &params); err != nil {
		return nil, err
	}
	if params.Metric == nil {
		return nil, &snapshot.FieldError{Field: "params.metric", Err: errors.New("missing (want cost_cents, tokens or runs)")}
	}
	m := Metric(*params.Metric)
	if !slices.Contains(tenantBudgetMetrics, m) {
		return nil, &snapshot.FieldError{Field: "params.metric", Err: fmt.Errorf("unknown metric %q (want cost_cents, tokens or runs)", *params.Metric)}
	}
	name, limit, err := threshold(params.Threshold, th)
	if err != nil {
		return nil, err
	}
	var w Window
	switch {
	case params.Period != nil && params.WindowSeconds != nil:
		return nil, &snapshot.FieldError{Field: "params.window_seconds", Err: errors.New("give either period or window_seconds, not both")}
	case params.Period != nil:
		w.Period = Period(*params.Period)
		if w.Period != PeriodDay && w.Period != PeriodMonth {
			return nil, &snapshot.FieldError{Field: "params.period", Err: fmt.Errorf("unknown period %q (want day or month, in UTC)", *params.Period)}
		}
	case params.WindowSeconds != nil:
		if w.Rolling, err = rollingWindow(*params.WindowSeconds); err != nil {
			return nil, err
		}
	default:
		return nil, &snapshot.FieldError{Field: "params.period", Err: errors.New("missing (want period day or month, or window_seconds for a rolling window)")}
	}
	return newTenantLimit(m, w, name, limit, ReasonBudgetExceeded), nil
}

func compileTenantRateLimit(p snapshot.Policy, th snapshot.Thresholds) (Hook, error) {
	var params struct {
		Threshold     *string  `json:"threshold"`
		WindowSeconds *float64 `json:"window_seconds"`
	}
	if err := decodeParams(p, &params); err != nil {
		return nil, err
	}
	name, limit, err := threshold(params.Threshold, th)
	if err != nil {
		return nil, err
	}
	ws := float64(defaultWindowSeconds)
	if params.WindowSeconds != nil {
		ws = *params.WindowSeconds
	}
	d, err := rollingWindow(ws)
	if err != nil {
		return nil, err
	}
	return newTenantLimit(MetricSteps, Window{Rolling: d}, name, limit, ReasonRateLimited), nil
}

// rollingWindow checks params.window_seconds.
func rollingWindow(ws float64) (time.Duration, error) { return windowOf(ws) }

// tenantLimitHook blocks a step that would take one of its tenant's
// counters past the limit. It is a ChargedHook: it counts through the
// step's Charges.
type tenantLimitHook struct {
	metric    Metric
	window    Window
	threshold string
	limit     float64 // as the snapshot states it
	units     int64   // limit in counter units, rounded down
	reason    RunTerminationReason
}

func newTenantLimit(m Metric, w Window, name string, limit float64, reason RunTerminationReason) *tenantLimitHook {
	return &tenantLimitHook{metric: m, window: w, threshold: name, limit: limit, units: toUnits(m, limit, math.Floor), reason: reason}
}

// toUnits converts a metric's value to counter units, rounded with round
// and clamped to [0, MaxInt64].
func toUnits(m Metric, v float64, round func(float64) float64) int64 {
	if m == MetricCostCents {
		v *= CostUnitsPerCent
	}
	v = round(v)
	switch {
	case !(v > 0): // NaN, zero, negative
		return 0
	case v >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(v)
}

// fromUnits converts counter units back to the metric's value.
func fromUnits(m Metric, u int64) float64 {
	if m == MetricCostCents {
		return float64(u) / CostUnitsPerCent
	}
	return float64(u)
}

// amount is what the step adds to the hook's counter.
func (h *tenantLimitHook) amount(s *Step) int64 {
	switch h.metric {
	case MetricCostCents:
		if math.IsNaN(s.CostCents) {
			return math.MaxInt64 // fails closed: over any limit
		}
		return toUnits(MetricCostCents, s.CostCents, math.Round)
	case MetricTokens:
		return max(s.Tokens, 0)
	case MetricRuns:
		if s.Index == 0 {
			return 1
		}
		return 0
	}
	return 1 // steps
}

// Evaluate fails: a tenant-wide limit needs the Ledger the runner gives
// through EvaluateCharged.
func (h *tenantLimitHook) Evaluate(context.Context, *Step) (Decision, error) {
	return Decision{}, fmt.Errorf("%w: %s %s over %s needs a store that keeps a ledger", ErrNoLedger, h.metric, h.threshold, h.window)
}

// EvaluateCharged counts the step on the tenant's counter through ch and
// blocks it when the counter would exceed the limit.
func (h *tenantLimitHook) EvaluateCharged(ctx context.Context, s *Step, ch *Charges) (Decision, error) {
	if ch == nil {
		return h.Evaluate(ctx, s)
	}
	amount := h.amount(s)
	if amount == 0 {
		return Allowed(), nil
	}
	c := Counter{TenantID: s.TenantID, Metric: h.metric, Window: h.window}
	total, ok, err := ch.Charge(ctx, c, s.At, amount, h.units)
	if err != nil {
		return Decision{}, err
	}
	if ok {
		return Allowed(), nil
	}
	observed := fromUnits(h.metric, total)
	var msg string
	if h.window.Period != "" {
		msg = fmt.Sprintf("tenant %s %s this %s (UTC, from %s) would exceed %s %s",
			h.metric, num(observed), h.window.Period, h.window.Start(s.At).Format(time.DateOnly), h.threshold, num(h.limit))
	} else {
		msg = fmt.Sprintf("tenant %s %s in the last %ss would exceed %s %s",
			h.metric, num(observed), num(h.window.Rolling.Seconds()), h.threshold, num(h.limit))
	}
	return Decision{
		Action: Block, Reason: h.reason,
		Threshold: h.threshold, Limit: h.limit, Observed: observed,
		Message: msg,
	}, nil
}

// Measure implements Measurer: the limit and the tenant's counter it
// applies to (TenantWide; the total is the ledger's).
func (h *tenantLimitHook) Measure(*Step) Measurement {
	return Measurement{Threshold: h.threshold, Limit: h.limit, Unit: string(h.metric), Window: h.window, TenantWide: true}
}
