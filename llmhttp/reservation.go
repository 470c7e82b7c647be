package llmhttp

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"sync"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// Metadata keys of the check made before a request is sent, when the
// call's worst case is reserved (see the package documentation). A call
// refused there is recorded with them.
const (
	MetaEstimatedInputTokens = "stopline.estimated_input_tokens" // the request body's bytes / 2, rounded up
	MetaMaxOutputTokens      = "stopline.max_output_tokens"      // the output cap reserved, all choices together
)

// limitsTenantAmounts reports whether snap budgets its tenant's tokens or
// cost across runs: a tenant_budget policy over cost_cents or tokens, in
// any enforcement mode (a warn- or monitor-mode limit counts too). Only
// such a limit adds up what a call spends, so only then is the call's
// worst case, rather than the least it can add, what it reserves. A
// policy whose metric cannot be read counts as one (fails closed). The
// kind is matched by its name in the snapshot format: package prevention
// does not export its kinds, nor governance whether a run needs a ledger.
func limitsTenantAmounts(snap *snapshot.PolicySnapshot) bool {
	for _, p := range snap.Policies() {
		if p.Kind != "tenant_budget" {
			continue
		}
		var params struct {
			Metric string `json:"metric"`
		}
		if json.Unmarshal(p.ParamsJSON(), &params) != nil || params.Metric != string(prevention.MetricRuns) {
			return true
		}
	}
	return false
}

// worst returns a call's worst case in tokens: input tokens estimated
// from the request body (its size in bytes / 2, rounded up) and the
// output cap (the request's, else def), times the choices asked for.
func (c *call) worst(def int64) (input, output int64) {
	input = min((c.size+1)/2, maxCount)
	output = c.maxOutput
	if output <= 0 {
		output = def
	}
	output = min(output, maxCount)
	output = min(output*min(max(c.choices, 1), maxChoices), maxCount)
	return input, output
}

// highest is p with every input token at its highest input price, so
// that the cost of a worst case does not depend on how much of the
// prompt the provider reads from or writes to its cache.
func (p Price) highest() Price {
	in := max(p.Input, p.CachedInput, p.CacheWrite)
	return Price{Input: in, CachedInput: in, CacheWrite: in, Output: p.Output}
}

// before is the step evaluated and reserved before the request is sent
// (Run.Reserve). With worst false it is the least the call can add to the
// run — one input token at the model's price — so that only a budget
// already spent refuses it; with worst true it is the call's worst case,
// held on the tenant's counters until the response settles it.
func (r *recorder) before(worst bool, defMaxOutput int64) governance.StepInput {
	price, priced := r.g.cfg.prices.price(r.c.model)
	md := r.meta(MetaPhase, "before_request")
	if !priced {
		md[MetaUnpriced] = "true"
	}
	in := governance.StepInput{
		Type: prevention.StepLLMResponse, Model: r.c.model, Input: r.c.input,
		Tokens: 1, CostCents: price.costCents(usage{input: 1}), Metadata: md,
	}
	if worst {
		input, output := r.c.worst(defMaxOutput)
		in.Tokens = input + output
		in.CostCents = price.highest().costCents(usage{input: input, output: output})
		md[MetaEstimatedInputTokens] = strconv.FormatInt(input, 10)
		md[MetaMaxOutputTokens] = strconv.FormatInt(output, 10)
	}
	return in
}

// hold is a model call's reservation: made by Run.Reserve before the
// request is sent, then settled once by the call's llm_response step
// (Reservation.Step) or released (Reservation.Release) when the call
// records none. While it holds, the call's checks go through it
// (Reservation.Check, Reservation.Withhold), which leave what it holds
// out of the tenant's counters. It is safe for concurrent use.
type hold struct {
	mu  sync.Mutex
	res *governance.Reservation // nil once settled or released
}

func newHold(res *governance.Reservation) *hold { return &hold{res: res} }

func (h *hold) take() *governance.Reservation {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	res := h.res
	h.res = nil
	return res
}

// current returns the reservation, or nil once it is settled or
// released.
func (h *hold) current() *governance.Reservation {
	if h == nil {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.res
}

// step records the call's llm_response step on run, settling the
// reservation to its amounts; once the reservation is gone (released
// by a Withhold that blocked, see stream.withhold), it is a plain
// Run.Step.
func (h *hold) step(ctx context.Context, run *governance.Run, in governance.StepInput) (governance.StepResult, error) {
	if res := h.take(); res != nil {
		return res.Step(ctx, in)
	}
	return run.Step(ctx, in)
}

// release gives the reservation back: the call records no llm_response
// step, or its check is decided without it. A no-op once settled or
// released. A hold the store cannot give back stays counted until its
// window has passed, which can refuse later calls, never let one
// overshoot (governance.Reservation.Release): so its error is not the
// call's, as it is not the step's in the runner.
func (h *hold) release(ctx context.Context) {
	if res := h.take(); res != nil {
		_ = res.Release(ctx)
	}
}

// check evaluates in, the call's step as it stands while it happens (a
// stream so far), as the run's next step, through sc: one of the
// successive checks of the stream, each evaluated from where the
// previous one left off (governance.Stream). While the reservation
// holds, the tenant's counters already count the call's worst case: the
// check is the reservation's (Reservation.Stream), which leaves the
// reservation out of them, so that the call is counted once, by in.
// Otherwise it is the run's (Run.Stream).
func (h *hold) check(ctx context.Context, run *governance.Run, sc *streamChecks, in governance.StepInput) (prevention.Evaluation, error) {
	if res := h.current(); res != nil {
		ev, err := sc.of(res).Check(ctx, in)
		if !errors.Is(err, governance.ErrReservationDone) {
			return ev, err
		}
	}
	return sc.ofRun(run).Check(ctx, in)
}

// withhold is check, stopping the run on a Block with delivered recorded
// (Run.Withhold). While the reservation holds it is
// Reservation.Withhold, which on a Block also gives the reservation
// back, exactly once; a pass leaves it held.
func (h *hold) withhold(ctx context.Context, run *governance.Run, sc *streamChecks, attempted, delivered governance.StepInput) (prevention.Evaluation, error) {
	if res := h.current(); res != nil {
		ev, err := sc.of(res).Withhold(ctx, attempted, delivered)
		if !errors.Is(err, governance.ErrReservationDone) {
			return ev, err
		}
	}
	return sc.ofRun(run).Withhold(ctx, attempted, delivered)
}

// streamChecks are the governance.Streams that a streamed response's
// checks go through: its reservation's, made when first used, and the
// run's, for checks after the reservation is gone.
type streamChecks struct {
	res       *governance.Reservation
	resStream *governance.Stream
	runStream *governance.Stream
}

func (sc *streamChecks) of(res *governance.Reservation) *governance.Stream {
	if sc.res != res {
		sc.res, sc.resStream = res, res.Stream()
	}
	return sc.resStream
}

func (sc *streamChecks) ofRun(run *governance.Run) *governance.Stream {
	if sc.runStream == nil {
		sc.runStream = run.Stream()
	}
	return sc.runStream
}
