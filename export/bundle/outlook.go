package bundle

import (
	"fmt"
	"math"
	"reflect"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// Outlook is what an evidence bundle says of a run beyond its decisions:
// how close each step came to each limit (StepHeadroom), and, for a run
// with a shadow snapshot, where that snapshot would have stopped it
// (Shadow). Both are derived from the run's chain, snapshot and run
// summary; Verify derives them again and compares (OutlookOf). A bundle
// made before they existed has neither, and verifies.
type Outlook struct {
	StepHeadroom []StepHeadroom    `json:"step_headroom,omitempty"`
	Shadow       *ShadowComparison `json:"shadow,omitempty"`
}

// StepHeadroom is the headroom of one step: for each policy of the
// snapshot that compares a value with a limit (budget, rate_limit,
// timeout, tenant_budget, tenant_rate_limit), the value it observed at
// the step against its limit, and which block-mode policy came closest to
// stopping the run there.
type StepHeadroom struct {
	StepIndex int              `json:"step_index"`
	Closest   string           `json:"closest,omitempty"`
	Policies  []PolicyHeadroom `json:"policies"`
}

// PolicyHeadroom is one policy's measurement at a step: the step rebuilt
// from its record as the runner showed it to its policies, measured by
// the policy's kind; where the step's record holds the policy's finding,
// the finding's limit and observed value (the only values known of a limit
// across the tenant's runs, whose Observed is otherwise null). Fraction is
// Observed over Limit (1 at a limit of 0 with nothing observed; null past
// a limit of 0).
type PolicyHeadroom struct {
	PolicyID      string               `json:"policy_id"`
	Threshold     string               `json:"threshold"`
	Unit          string               `json:"unit"`
	Limit         float64              `json:"limit"`
	Observed      *float64             `json:"observed"`
	Fraction      *float64             `json:"fraction"`
	Enforcement   snapshot.Enforcement `json:"enforcement"`
	WindowSeconds float64              `json:"window_seconds,omitempty"`
	Period        string               `json:"period,omitempty"`
	TenantWide    bool                 `json:"tenant_wide,omitempty"`
}

// ShadowComparison compares a run's shadow snapshot with the enforcing
// one, from the shadow decisions its chain records: the shadow snapshot
// itself (its hash is the one the run_start record binds), the first
// step it blocked (null when none) with its policy, reason and message,
// how many steps it evaluated, blocked and decided otherwise than the
// enforcing snapshot, the step the enforcing snapshot stopped the run at
// (null when none), and the change: unchanged, would_stop,
// stops_earlier or would_continue (as a what-if says it).
type ShadowComparison struct {
	Snapshot               *snapshot.PolicySnapshot        `json:"snapshot"`
	WouldStopAtStep        *int                            `json:"would_stop_at_step"`
	PolicyID               string                          `json:"policy_id,omitempty"`
	Reason                 prevention.RunTerminationReason `json:"reason,omitempty"`
	Message                string                          `json:"message,omitempty"`
	Steps                  int                             `json:"steps"`
	Blocks                 int                             `json:"blocks"`
	Differs                int                             `json:"differs"`
	EnforcingStoppedAtStep *int                            `json:"enforcing_stopped_at_step"`
	Change                 string                          `json:"change"`
}

// OutlookOf derives a run's outlook from its chain records (in order,
// verified), its snapshot, its shadow snapshot (nil when the run has
// none; the one its run_start record binds) and its run summary (for
// when the run started). It is what the exporter puts in a bundle and
// what Verify compares a bundle's outlook with.
func OutlookOf(snap, shadow *snapshot.PolicySnapshot, run *RunSummary, records []trace.Record) (Outlook, error) {
	s, err := newOutlookScan(snap, run)
	if err != nil {
		return Outlook{}, err
	}
	for i := range records {
		s.add(&records[i])
	}
	return s.outlook(shadow)
}

// outlookScan is OutlookOf one record at a time.
type outlookScan struct {
	snap   *snapshot.PolicySnapshot
	eng    *prevention.Engine
	run    *RunSummary
	out    Outlook
	first  *trace.Record
	times  []int64
	start  time.Time
	queued bool
	shadow ShadowComparison
}

func newOutlookScan(snap *snapshot.PolicySnapshot, run *RunSummary) (*outlookScan, error) {
	eng, err := prevention.MeasuringEngine(snap)
	if err != nil {
		return nil, err
	}
	return &outlookScan{snap: snap, eng: eng, run: run, out: Outlook{StepHeadroom: []StepHeadroom{}}}, nil
}

func (s *outlookScan) add(r *trace.Record) {
	switch r.Kind {
	case trace.KindRunStart:
		first := *r
		s.first, s.start = &first, r.At
		// A run that was queued started with its first step, later than
		// it was created.
		s.queued = s.run.StartedAt != nil && !s.run.StartedAt.Equal(r.At)
	case trace.KindStep:
		if len(s.times) == 0 && s.queued {
			s.start = r.At
		}
		s.out.StepHeadroom = append(s.out.StepHeadroom, s.headroom(r))
		s.times = append(s.times, r.At.UnixNano())
		s.shadowAdd(r)
	}
}

// headroom measures step record r, as the runner showed it to its
// policies, as governance's Explain does.
func (s *outlookScan) headroom(r *trace.Record) StepHeadroom {
	st := prevention.Step{
		RunID: r.RunID, TenantID: r.TenantID, SnapshotID: r.SnapshotID, Index: r.StepIndex, Type: r.StepType,
		At: r.At, RunStartedAt: s.start, Model: r.Model, Tool: r.Tool, Tokens: r.Tokens, CostCents: r.CostCents,
		TotalTokens: r.TotalTokens, TotalCostCents: r.TotalCostCents,
	}
	st.SetStepTimes(s.times[:len(s.times):len(s.times)])
	sh := StepHeadroom{StepIndex: r.StepIndex, Policies: []PolicyHeadroom{}}
	best := math.Inf(-1)
	for _, m := range s.eng.Measure(&st) {
		h := PolicyHeadroom{PolicyID: m.PolicyID, Threshold: m.Threshold, Unit: m.Unit, Limit: m.Limit,
			Enforcement: m.Enforcement.Effective(), TenantWide: m.TenantWide, Period: string(m.Window.Period)}
		if m.Window.Rolling > 0 {
			h.WindowSeconds = m.Window.Rolling.Seconds()
		}
		var observed *float64
		if !m.TenantWide {
			v := m.Observed
			observed = &v
		}
		for _, f := range r.Findings {
			if f.PolicyID == m.PolicyID && f.Source == prevention.SourcePolicy {
				if f.Threshold != "" {
					v := f.Observed
					h.Limit, observed = f.Limit, &v
				}
				break
			}
		}
		if observed != nil {
			h.Observed = observed
			switch {
			case h.Limit > 0:
				f := *observed / h.Limit
				h.Fraction = &f
			case *observed == 0:
				f := 1.0
				h.Fraction = &f
			}
			if h.Enforcement == snapshot.EnforceBlock {
				f := math.Inf(1)
				if h.Fraction != nil {
					f = *h.Fraction
				}
				if f > best {
					sh.Closest, best = h.PolicyID, f
				}
			}
		}
		sh.Policies = append(sh.Policies, h)
	}
	return sh
}

func (s *outlookScan) shadowAdd(r *trace.Record) {
	c := &s.shadow
	if r.Inflection {
		at := r.StepIndex
		c.EnforcingStoppedAtStep = &at
	}
	d := r.ShadowDecision
	if d == nil {
		return
	}
	c.Steps++
	var enforcing prevention.Action
	if r.Decision != nil {
		enforcing = r.Decision.Action
	}
	if d.Action != enforcing {
		c.Differs++
	}
	if d.Action != prevention.Block {
		return
	}
	c.Blocks++
	if c.WouldStopAtStep == nil {
		at := r.StepIndex
		c.WouldStopAtStep = &at
		c.PolicyID, c.Reason, c.Message = d.PolicyID, d.Reason, d.Message
	}
}

// outlook returns the outlook of the records added, with the shadow
// snapshot the run_start record binds (an error when shadow is not it).
func (s *outlookScan) outlook(shadow *snapshot.PolicySnapshot) (Outlook, error) {
	out := s.out
	id, hash := "", ""
	if s.first != nil {
		id, hash = s.first.ShadowSnapshotID, s.first.ShadowSnapshotHash
	}
	switch {
	case id == "" && shadow == nil:
		return out, nil
	case id == "":
		return out, fmt.Errorf("a shadow snapshot %s, for a run without one", shadow.ID())
	case shadow == nil:
		return out, fmt.Errorf("the run's shadow snapshot %s is not given", id)
	case shadow.ID() != id || shadow.ContentHash() != hash:
		return out, fmt.Errorf("shadow snapshot %s (hash %s), the run_start record binds %s (hash %s)", shadow.ID(), shadow.ContentHash(), id, hash)
	}
	c := s.shadow
	c.Snapshot = shadow
	sh, en := c.WouldStopAtStep, c.EnforcingStoppedAtStep
	switch {
	case sh == nil && en == nil:
		c.Change = "unchanged"
	case sh == nil:
		c.Change = "would_continue"
	case en == nil:
		c.Change = "would_stop"
	case *sh < *en:
		c.Change = "stops_earlier"
	case *sh == *en:
		c.Change = "unchanged"
	default:
		c.Change = "stops_later"
	}
	out.Shadow = &c
	return out, nil
}

// checkOutlook checks a bundle's outlook against the one its chain,
// snapshot and run give: the headroom, when the bundle has it, exactly;
// the shadow comparison, which a run with a shadow snapshot must have and
// one without must not, exactly, its snapshot verified and bound by the
// run_start record.
func checkOutlook(c *checks, b *Evidence, want func(shadow *snapshot.PolicySnapshot) (Outlook, error)) {
	var shadow *snapshot.PolicySnapshot
	if b.Shadow != nil {
		shadow = b.Shadow.Snapshot
		if shadow == nil {
			c.add(ErrMalformed, "shadow comparison without its snapshot")
			return
		}
		if err := shadow.Verify(); err != nil {
			c.add(ErrSnapshot, "shadow snapshot %s: %v", shadow.ID(), err)
			return
		}
	}
	got, err := want(shadow)
	if err != nil {
		c.add(ErrInconsistent, "%v", err)
		return
	}
	if b.StepHeadroom != nil && !reflect.DeepEqual(b.StepHeadroom, got.StepHeadroom) {
		c.add(ErrInconsistent, "step headroom %s, the chain and snapshot give %s", jsonText(b.StepHeadroom), jsonText(got.StepHeadroom))
	}
	if got.Shadow != nil && !reflect.DeepEqual(*b.Shadow, *got.Shadow) {
		g, w := *b.Shadow, *got.Shadow
		g.Snapshot, w.Snapshot = nil, nil
		c.add(ErrInconsistent, "shadow comparison %s, the chain gives %s", jsonText(g), jsonText(w))
	}
}
