package governance

import (
	"fmt"
	"math"
	"strconv"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// headroom fills ex.Headroom and ex.Closest for a step record: st, the
// step rebuilt from the records as the runner showed it to the policies
// (recordedSteps, as Replay rebuilds it), measured by
// every policy of the snapshot that compares a value with a limit
// (prevention.Measurer). A policy's recorded finding at the step, when it
// states a threshold, gives the values: they are what was decided on
// (and the only ones known of a limit across the tenant's runs).
func (ex *Explanation) headroom(snap *snapshot.PolicySnapshot, st recordedStep) {
	eng, err := measuringEngine(snap)
	if err != nil {
		ex.HeadroomNote = "the snapshot's policies could not be measured: " + err.Error()
		return
	}
	if st.withheld { // known only when the records come with the step's content
		ex.HeadroomNote = fmt.Sprintf("step %d was withheld: it was decided as attempted, and its record holds what was delivered; values without a recorded finding are measured on what was delivered", st.rec.StepIndex)
	}
	closest, best := "", math.Inf(-1)
	for _, m := range eng.Measure(&st.step) {
		h := headroomOf(snap, st.rec, m)
		if h.Enforcement == snapshot.EnforceBlock && h.Observed != nil {
			f := math.Inf(1)
			if h.Fraction != nil {
				f = *h.Fraction
			}
			if f > best {
				closest, best = h.PolicyID, f
			}
		}
		ex.Headroom = append(ex.Headroom, h)
	}
	ex.Closest = closest
}

// headroomOf is one policy's measurement at the step, with its recorded
// finding.
func headroomOf(snap *snapshot.PolicySnapshot, rec *trace.Record, m prevention.PolicyMeasurement) Headroom {
	p, _ := snap.Policy(m.PolicyID)
	h := Headroom{PolicyID: m.PolicyID, Kind: p.Kind, Threshold: m.Threshold, Limit: m.Limit, Unit: m.Unit,
		Enforcement: m.Enforcement.Effective(), TenantWide: m.TenantWide, Period: string(m.Window.Period)}
	if m.Window.Rolling > 0 {
		h.WindowSeconds = m.Window.Rolling.Seconds()
	}
	var observed *float64
	if !m.TenantWide {
		observed = &m.Observed
	}
	for j := range rec.Findings {
		if f := rec.Findings[j]; f.PolicyID == m.PolicyID && f.Source == prevention.SourcePolicy {
			h.Finding = &f
			if f.Threshold != "" {
				h.Limit, observed = f.Limit, &f.Observed
			}
			break
		}
	}
	if observed != nil {
		v := *observed
		h.Observed = &v
		switch {
		case h.Limit > 0:
			f := v / h.Limit
			h.Fraction = &f
		case v == 0:
			f := 1.0 // at a limit of 0: any more is past it
			h.Fraction = &f
		}
	}
	h.Text = headroomText(&h)
	return h
}

// headroomText says a headroom in words: "cost_cents 120 of 150 (80%)",
// "steps in the last 60 s: 4 of 30 (13%)", "elapsed 312 s of 600 (52%)",
// "tenant cost_cents per day (UTC): 130 of 100 (130%, as recorded)".
func headroomText(h *Headroom) string {
	of := func(v float64) string {
		s := fmt.Sprintf("%s of %s", num(v), num(h.Limit))
		if h.Fraction != nil {
			s += fmt.Sprintf(" (%s%%", strconv.FormatFloat(math.Round(*h.Fraction*100), 'f', -1, 64))
		} else {
			s += " (past a limit of 0"
		}
		if h.TenantWide {
			s += ", as recorded"
		}
		return s + ")"
	}
	if h.TenantWide {
		what := fmt.Sprintf("tenant %s in %s s", h.Unit, num(h.WindowSeconds))
		if h.Period != "" {
			what = fmt.Sprintf("tenant %s per %s (UTC)", h.Unit, h.Period)
		}
		if h.Observed == nil {
			return fmt.Sprintf("%s: limit %s; the tenant's total across its runs is not in this run's records", what, num(h.Limit))
		}
		return what + ": " + of(*h.Observed)
	}
	switch {
	case h.Unit == "seconds":
		return "elapsed " + of(*h.Observed)
	case h.WindowSeconds > 0:
		return fmt.Sprintf("%s in the last %s s: %s", h.Unit, num(h.WindowSeconds), of(*h.Observed))
	}
	return h.Unit + " " + of(*h.Observed)
}

// num formats a value as people write it, rounded to nine decimals (as
// decision messages are).
func num(f float64) string {
	if math.Abs(f) < 1e12 {
		f = math.Round(f*1e9) / 1e9
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}
