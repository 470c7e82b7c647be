package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// GapReason says why part of a recorded run cannot be evaluated again
// exactly as it was first evaluated.
type GapReason string

// Gap reasons.
const (
	// GapHook: a Go hook (Source "hook") that the evaluating program does
	// not run. Its decisions are taken from the records.
	GapHook GapReason = "hook"
	// GapUnknownKind: a policy of a kind the evaluating program lacks.
	// Its decisions are taken from the records.
	GapUnknownKind GapReason = "unknown_kind"
	// GapTenantWide: a limit across all the tenant's runs (tenant_budget,
	// tenant_rate_limit, a ChargedHook). Its total depends on the other
	// runs' spend, which this run's records do not hold: it is evaluated
	// with the totals its recorded decisions state and, where they state
	// none, with this run's own usage, a lower bound.
	GapTenantWide GapReason = "tenant_wide"
	// GapTruncated: the step's input or output was stored cut
	// ("stopline.truncated"); the policies and hooks that read text read
	// it whole, and are evaluated again on the stored part.
	GapTruncated GapReason = "truncated"
	// GapWithheld: the step was decided as it was attempted and the record
	// holds only what of it was delivered ("stopline.withheld": Withhold,
	// Reserve, a stream llmhttp cut): the attempted text and amounts that
	// were decided on are not all stored.
	GapWithheld GapReason = "withheld"
	// GapContentNotKept: the run keeps its steps' content as hashes only,
	// or redacted (and a redaction masked part of the step's): the
	// policies and hooks that read text are evaluated again on what was
	// kept, not on what the step said.
	GapContentNotKept GapReason = "content_not_kept"
	// GapApproval: the step was held for a person's approval; the answer
	// (approved, denied, expired, cancelled) is an input, not something
	// policies decide, and is taken from the record.
	GapApproval GapReason = "approval"
	// GapOperator: an operator stopped the run at the step with the kill
	// switch; that decision is an input and is taken from the record.
	GapOperator GapReason = "operator"
)

// ReplayGap is a part of a recorded run that cannot be evaluated again
// exactly: a policy or hook (PolicyID, Source) or, with GapWithheld, a
// whole step. Detail says it in words.
type ReplayGap struct {
	PolicyID string            `json:"policy_id,omitempty"`
	Source   prevention.Source `json:"source,omitempty"`
	Why      GapReason         `json:"why"`
	Detail   string            `json:"detail,omitempty"`
}

// reevaluator evaluates the steps of recorded runs again with one engine:
// a snapshot compiled with the program's kinds and Go hooks, where the
// policies of kinds the program lacks and the hooks it does not run
// answer what the records say they decided. Replay uses the run's own
// snapshot; WhatIf a candidate. It is safe for concurrent use: what it
// needs of the step being evaluated travels in the context.
type reevaluator struct {
	engine      *prevention.Engine
	stepTimeout time.Duration
	// gaps are the run-wide ones: policies and hooks taken from the
	// records, limits across runs.
	gaps []ReplayGap
	// textReaders are the policies and hooks that are evaluated again and
	// may read a step's input or output.
	textReaders []string
}

// newReevaluator compiles snap with kinds and hooks. The policies of
// kinds that kinds lacks, and the hooks of recordedHooks (ids in the
// order they ran, and the enforcement they decided under: hooksOf) that
// hooks does not hold, answer from the records.
func newReevaluator(kinds *prevention.Kinds, snap *snapshot.PolicySnapshot, hooks []prevention.NamedHook, recordedHooks []string, hookEnforcement map[string]snapshot.Enforcement, stepTimeout time.Duration) (*reevaluator, error) {
	ev := &reevaluator{stepTimeout: stepTimeout}
	have := kinds.Names()
	var placeholders []prevention.Kind
	for _, p := range snap.Policies() {
		if slices.Contains(have, p.Kind) {
			if readsText(p) {
				ev.textReaders = append(ev.textReaders, p.ID)
			}
			continue
		}
		ev.gaps = append(ev.gaps, ReplayGap{PolicyID: p.ID, Source: prevention.SourcePolicy, Why: GapUnknownKind,
			Detail: fmt.Sprintf("kind %q is not among this program's kinds: its decisions are taken from the records", p.Kind)})
		if !slices.ContainsFunc(placeholders, func(k prevention.Kind) bool { return k.Name() == p.Kind }) {
			placeholders = append(placeholders, prevention.KindFunc(p.Kind, func(p snapshot.Policy, _ snapshot.Thresholds) (prevention.Hook, error) {
				return recordedHook{id: p.ID}, nil
			}))
		}
	}
	if len(placeholders) > 0 {
		var err error
		if kinds, err = kinds.With(placeholders...); err != nil {
			return nil, err
		}
	}
	all := slices.Clone(hooks)
	for _, h := range hooks {
		ev.textReaders = append(ev.textReaders, h.ID)
		if _, charged := h.Hook.(prevention.ChargedHook); charged {
			ev.gaps = append(ev.gaps, ReplayGap{PolicyID: h.ID, Source: prevention.SourceHook, Why: GapTenantWide,
				Detail: "a Go hook that limits the tenant across its runs: its totals depend on the other runs"})
		}
	}
	for _, id := range recordedHooks {
		if slices.ContainsFunc(hooks, func(h prevention.NamedHook) bool { return h.ID == id }) {
			continue
		}
		if _, isPolicy := snap.Policy(id); isPolicy {
			ev.gaps = append(ev.gaps, ReplayGap{PolicyID: id, Source: prevention.SourceHook, Why: GapHook,
				Detail: "a Go hook this program does not run, whose id is also a policy's: it is left out"})
			continue
		}
		all = append(all, prevention.NamedHook{ID: id, Hook: recordedHook{id: id}, Enforcement: hookEnforcement[id]})
		ev.gaps = append(ev.gaps, ReplayGap{PolicyID: id, Source: prevention.SourceHook, Why: GapHook,
			Detail: "a Go hook this program does not run: its decisions are taken from the records"})
	}
	eng, err := kinds.Compile(snap, all...)
	if err != nil {
		return nil, err
	}
	ev.engine = eng
	for _, m := range eng.Measure(&prevention.Step{}) {
		if m.TenantWide {
			ev.gaps = append(ev.gaps, ReplayGap{PolicyID: m.PolicyID, Source: m.Source, Why: GapTenantWide,
				Detail: fmt.Sprintf("limits the tenant's %s across all its runs: its total depends on the other runs' spend, which this run's records do not hold; evaluated with the totals its recorded decisions state, else with this run's own usage", m.Unit)})
		}
	}
	return ev, nil
}

// readsText reports whether a policy may read a step's input or output:
// a content policy over either, and a policy of any kind that is not
// built in. The other built-in kinds read amounts, times and names.
func readsText(p snapshot.Policy) bool {
	switch p.Kind {
	case "budget", "rate_limit", "timeout", "tool_allowlist", "tool_denylist", "tenant_budget", "tenant_rate_limit":
		return false
	case "content":
		var params struct {
			Fields []string `json:"fields"`
		}
		// Leniently: only the fields matter here, and the kind checked
		// the rest when the snapshot was compiled.
		if err := json.Unmarshal(p.ParamsJSON(), &params); err != nil || params.Fields == nil {
			return true // the default field is output
		}
		return slices.Contains(params.Fields, "input") || slices.Contains(params.Fields, "output")
	}
	return true
}

// gapsOf returns the policies and hooks of this step whose outcome is not
// evaluated again exactly: the run-wide gaps, and for a step stored cut,
// every policy and hook evaluated again that reads text.
func (ev *reevaluator) gapsOf(st *recordedStep) []ReplayGap {
	var out []ReplayGap
	for _, g := range ev.gaps {
		out = append(out, ReplayGap{PolicyID: g.PolicyID, Source: g.Source, Why: g.Why})
	}
	if st.notKept {
		for _, id := range ev.textReaders {
			out = append(out, ReplayGap{PolicyID: id, Why: GapContentNotKept,
				Detail: "the step's content was not kept in full: this reads what was kept"})
		}
	}
	if d := st.rec.Decision; d != nil && d.Source == prevention.SourceOperator {
		out = append(out, ReplayGap{PolicyID: d.PolicyID, Source: d.Source, Why: GapOperator,
			Detail: fmt.Sprintf("step %d was stopped by the kill switch %s: an operator's action is an input, taken from the record", st.rec.StepIndex, d.PolicyID)})
	}
	if a := st.rec.Approval; a != nil {
		hf := heldBy(st.rec.Findings)
		detail := fmt.Sprintf("step %d was held for approval and %s", st.rec.StepIndex, a.Answer)
		if a.By != "" {
			detail += " by " + a.By
		}
		out = append(out, ReplayGap{PolicyID: hf.PolicyID, Source: hf.Source, Why: GapApproval,
			Detail: detail + ": a person's answer is an input, taken from the record"})
	}
	if len(st.truncated) > 0 {
		for _, id := range ev.textReaders {
			out = append(out, ReplayGap{PolicyID: id, Why: GapTruncated,
				Detail: fmt.Sprintf("the step's %s was stored cut at the runner's content limit; this reads it whole", strings.Join(st.truncated, " and "))})
		}
	}
	return out
}

// readsTextOn reports whether id is evaluated again on a step stored cut.
func (ev *reevaluator) readsTextOn(st *recordedStep, id string) bool {
	return len(st.truncated) > 0 && slices.Contains(ev.textReaders, id)
}

// evaluate evaluates the step again as the runner did: with the step
// timeout when the engine may wait, the recorded decisions of what
// answers from the records, and counters of limits across runs charged
// through led. A failed check becomes the system_failure decision the
// runner records. counters maps the recorded snapshot's tenant-wide
// policies to their counters, to read the totals their recorded
// decisions state.
func (ev *reevaluator) evaluate(ctx context.Context, st *recordedStep, led *replayLedger, counters map[string]prevention.Counter) prevention.Evaluation {
	if d := st.rec.Decision; d != nil && d.Source == prevention.SourceOperator {
		// [kill switch] An operator's stop is an input: as recorded.
		return storedEvaluation(st.rec)
	}
	res := ev.evaluatePolicies(ctx, st, led, counters)
	if res.Decision.Action == prevention.HoldForApproval {
		if a := st.rec.Approval; a != nil {
			// [holds] The person's recorded answer decides, as it did.
			res, _ = decideHeld(res.Findings, heldBy(res.Findings), holdOf(a), nil)
		}
	}
	return res
}

// holdOf is the answered hold an approval records.
func holdOf(a *trace.Approval) Hold {
	at := a.AnsweredAt
	return Hold{ID: a.HoldID, RequestedAt: a.RequestedAt, Deadline: a.Deadline, Status: HoldStatus(a.Answer),
		AnsweredBy: a.By, AnswerReason: a.Reason, AnsweredAt: &at}
}

// evaluatePolicies is evaluate without the inputs a person gave.
func (ev *reevaluator) evaluatePolicies(ctx context.Context, st *recordedStep, led *replayLedger, counters map[string]prevention.Counter) prevention.Evaluation {
	sc := &stepRecord{rec: st.rec}
	if d := st.rec.Decision; d != nil && isFailure(*d) {
		if _, tenantWide := counters[d.PolicyID]; tenantWide {
			sc.failure = d
		}
	}
	for _, f := range st.rec.Findings {
		c, ok := counters[f.PolicyID]
		if !ok || f.Threshold == "" {
			continue
		}
		if sc.totals == nil {
			sc.totals = map[prevention.Counter]int64{}
		}
		sc.totals[c] = max(sc.totals[c], toCounterUnits(c.Metric, f.Observed))
	}
	ctx = context.WithValue(ctx, stepRecordKey{}, sc)

	step := st.step // the engine may keep memos on its copy
	var ch *prevention.Charges
	if ev.engine.UsesLedger() {
		ch = prevention.NewCharges(led)
	}
	var (
		res prevention.Evaluation
		err error
	)
	if ev.engine.MayBlock() {
		hctx, cancel := context.WithTimeout(ctx, ev.stepTimeout)
		res, err = ev.engine.EvaluateCharged(hctx, &step, ch)
		cancel()
	} else {
		res, err = ev.engine.EvaluateCharged(ctx, &step, ch)
	}
	// What the run counted: an allowed step's amounts, nothing of a
	// blocked one — as recorded, whatever the evaluation says now.
	if ch != nil {
		if st.rec.Inflection || st.withheld {
			_ = ch.Release(ctx)
		} else {
			_ = ch.Commit(ctx)
		}
	}
	if err != nil {
		var rf *recordedFailure
		if errors.As(err, &rf) {
			d := rf.decision
			return prevention.Evaluation{Decision: d, Findings: []prevention.Decision{d}}
		}
		d := prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonSystemFailure, Message: prevention.RecordableText(err.Error())}
		var he *prevention.HookError
		if errors.As(err, &he) {
			d.PolicyID, d.Source = he.PolicyID, he.Source
		}
		return prevention.Evaluation{Decision: d, Findings: []prevention.Decision{d}}
	}
	return res
}

// isFailure reports whether d is the decision the runner records when a
// check failed: a Block for system_failure that no policy's enforcement
// made.
func isFailure(d prevention.Decision) bool {
	return d.Action == prevention.Block && d.Reason == prevention.ReasonSystemFailure && d.Enforcement == ""
}

// toCounterUnits converts a value a tenant-wide decision states into the
// units of its counter (millionths of a cent for cost).
func toCounterUnits(m prevention.Metric, v float64) int64 {
	if m == prevention.MetricCostCents {
		v *= prevention.CostUnitsPerCent
	}
	v = math.Round(v)
	switch {
	case !(v > 0):
		return 0
	case v >= math.MaxInt64:
		return math.MaxInt64
	}
	return int64(v)
}

// tenantCounters maps the tenant-wide policies of an engine to the
// tenant's counters they read.
func tenantCounters(eng *prevention.Engine, tenantID string) map[string]prevention.Counter {
	var out map[string]prevention.Counter
	for _, m := range eng.Measure(&prevention.Step{}) {
		if m.TenantWide {
			if out == nil {
				out = map[string]prevention.Counter{}
			}
			out[m.PolicyID] = prevention.Counter{TenantID: tenantID, Metric: prevention.Metric(m.Unit), Window: m.Window}
		}
	}
	return out
}

// stepRecord is what a re-evaluation needs of the recorded step, in its
// context: the record (for what answers from the records), the totals of
// the tenant's counters its decisions state, and a recorded failure of a
// limit across runs.
type stepRecord struct {
	rec     *trace.Record
	totals  map[prevention.Counter]int64
	failure *prevention.Decision
}

type stepRecordKey struct{}

func stepRecordOf(ctx context.Context) *stepRecord {
	sc, _ := ctx.Value(stepRecordKey{}).(*stepRecord)
	return sc
}

// recordedFailure carries a failed check's recorded decision through the
// engine, to be recorded again as it was.
type recordedFailure struct{ decision prevention.Decision }

func (e *recordedFailure) Error() string { return e.decision.Message }

// recordedHook answers what the records say the policy or hook of its id
// decided at the step being evaluated again: its finding, its recorded
// failure, or Allow.
type recordedHook struct{ id string }

func (h recordedHook) Evaluate(ctx context.Context, _ *prevention.Step) (prevention.Decision, error) {
	sc := stepRecordOf(ctx)
	if sc == nil {
		return prevention.Allowed(), nil
	}
	if d := sc.rec.Decision; d != nil && d.PolicyID == h.id && isFailure(*d) {
		return prevention.Decision{}, &recordedFailure{decision: *d}
	}
	for _, f := range sc.rec.Findings {
		if f.PolicyID == h.id {
			return prevention.Decision{Action: f.Action, Reason: f.Reason, Threshold: f.Threshold, Limit: f.Limit,
				Observed: f.Observed, Message: f.Message}, nil
		}
	}
	return prevention.Allowed(), nil
}

// replayLedger is the ledger a run's limits across runs are evaluated
// again with. It holds this run's own amounts, counted as the run counted
// them (every allowed step's, none of a blocked one's), and reads the
// tenant's total on a counter as the larger of that and the total the
// step's recorded decisions state. It writes nothing anywhere. It serves
// one run, one step at a time.
type replayLedger struct {
	holds []prevention.Hold
	next  int64
}

var _ prevention.Ledger = (*replayLedger)(nil)

func (l *replayLedger) usage(c prevention.Counter, at time.Time) int64 {
	var sum int64
	lo, hi, _ := c.Window.RollingBounds(at)
	for _, h := range l.holds {
		if h.Counter != c {
			continue
		}
		if c.Window.Period != "" {
			if !c.Window.Start(h.At).Equal(c.Window.Start(at)) {
				continue
			}
		} else if t := h.At.UnixNano(); t <= lo || t >= hi {
			continue
		}
		sum = addUnits(sum, h.Amount)
	}
	return sum
}

func addUnits(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Reserve implements prevention.Ledger.
func (l *replayLedger) Reserve(ctx context.Context, c prevention.Counter, at time.Time, amount, limit int64) (prevention.Hold, int64, bool, error) {
	total := addUnits(l.usage(c, at), amount)
	if sc := stepRecordOf(ctx); sc != nil {
		if sc.failure != nil {
			return prevention.Hold{}, 0, false, &recordedFailure{decision: *sc.failure}
		}
		if t, ok := sc.totals[c]; ok && t > total {
			total = t
		}
	}
	if total > limit {
		return prevention.Hold{}, total, false, nil
	}
	l.next++
	h := prevention.Hold{Counter: c, At: at, Amount: amount, ID: l.next}
	l.holds = append(l.holds, h)
	return h, total, true, nil
}

// Resize implements prevention.Ledger. Recorded steps carry no
// reservation, so nothing resizes.
func (l *replayLedger) Resize(ctx context.Context, h prevention.Hold, at time.Time, amount, limit int64) (prevention.Hold, int64, bool, error) {
	return h, 0, false, errors.New("governance: replay ledger: resize")
}

// Release implements prevention.Ledger.
func (l *replayLedger) Release(ctx context.Context, h prevention.Hold) error {
	l.holds = slices.DeleteFunc(l.holds, func(x prevention.Hold) bool { return x.ID == h.ID })
	return nil
}

// Usage implements prevention.Ledger.
func (l *replayLedger) Usage(ctx context.Context, c prevention.Counter, at time.Time) (int64, error) {
	return l.usage(c, at), nil
}

// sameEvaluation compares a recorded step with an evaluation of it: the
// decision, every finding, the status and the inflection flag. It returns
// "" when they agree, else what differs first and the ids of the
// policies or hooks concerned.
func sameEvaluation(rec *trace.Record, got prevention.Evaluation) (diff string, ids []string) {
	var stored prevention.Decision
	if rec.Decision != nil {
		stored = *rec.Decision
	}
	n := max(len(rec.Findings), len(got.Findings))
	for i := 0; i < n; i++ {
		var a, b *prevention.Decision
		if i < len(rec.Findings) {
			a = &rec.Findings[i]
			ids = append(ids, a.PolicyID)
		}
		if i < len(got.Findings) {
			b = &got.Findings[i]
			ids = append(ids, b.PolicyID)
		}
		if a == nil || b == nil || *a != *b {
			return fmt.Sprintf("finding %d: stored %s, recomputed %s", i+1, findingText(a), findingText(b)), ids
		}
		ids = ids[:0]
	}
	if stored != got.Decision {
		return fmt.Sprintf("decision: stored %s, recomputed %s", decisionText(stored), decisionText(got.Decision)), []string{stored.PolicyID, got.Decision.PolicyID}
	}
	if want := trace.StatusOf(got); rec.Status != want {
		return fmt.Sprintf("status: stored %s, recomputed %s", rec.Status, want), nil
	}
	if block := got.Decision.Action == prevention.Block; rec.Inflection != block {
		return fmt.Sprintf("inflection: stored %v, recomputed %v", rec.Inflection, block), nil
	}
	return "", nil
}

func findingText(d *prevention.Decision) string {
	if d == nil {
		return "none"
	}
	return decisionText(*d)
}

// decisionText is a decision as the runner's Violation says it, with the
// enforcement of a finding that did not stop the run.
func decisionText(d prevention.Decision) string {
	s := d.String()
	if d.Action != prevention.Allow && d.Enforcement != "" && d.Enforcement != snapshot.EnforceBlock {
		s = string(d.Enforcement) + " " + s
	}
	return s
}
