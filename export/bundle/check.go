package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// checks collects every failure of a bundle's checks: a bundle that fails
// several ways says so, the way a compiler reports every error.
type checks struct {
	fails []error
}

func (c *checks) add(sentinel error, format string, args ...any) {
	c.fails = append(c.fails, fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...)))
}

func (c *checks) err() error {
	if len(c.fails) == 0 {
		return nil
	}
	return &VerificationError{Failures: c.fails}
}

// Check runs, on a bundle in memory, every check of Verify that concerns
// what the bundle holds: the snapshot against its hash, the chain
// recomputed (each record the canonical encoding of what its hash
// covers), the steps against the chain, the bundle's facts against the
// chain, and the form of the checkpoint it carries. A bundle in memory
// has no hash or signature to check. The error is a *VerificationError.
// The exporter checks every bundle it builds with it, so that nothing is
// exported from records that do not verify.
func Check(b Bundle) error {
	if b == nil {
		return errors.New("bundle: Check: nil bundle")
	}
	var c checks
	checkContent(&c, b)
	return c.err()
}

// checkContent checks what a bundle holds, without the database: the
// snapshot against its hash, the chain against its hashes and the
// snapshot, the steps against the chain, and the bundle's facts against
// the chain.
func checkContent(c *checks, b Bundle) {
	p, h := b.provenance(), b.header()
	snapOK := checkSnapshot(c, p, h)
	recs := checkChain(c, p)
	if recs == nil {
		return
	}
	first := recs[0]
	if snapOK && (first.SnapshotID != p.Snapshot.ID() || first.SnapshotHash != p.Snapshot.ContentHash()) {
		c.add(ErrSnapshot, "the run's chain is bound to snapshot %s (hash %s), the bundle holds %s (hash %s)",
			first.SnapshotID, first.SnapshotHash, p.Snapshot.ID(), p.Snapshot.ContentHash())
	}
	if first.TenantID != h.TenantID || first.RunID != h.RunID {
		c.add(ErrInconsistent, "bundle is about run %s of tenant %q, chain is run %s of tenant %q", h.RunID, h.TenantID, first.RunID, first.TenantID)
	}
	if p.Checkpoint != "" {
		if err := carriedCheckpoint(p, h); err != nil {
			c.fails = append(c.fails, err)
		}
	}
	if p.TenantLog != nil {
		if err := checkTenantLog(p, h, len(p.Chain), func(i int) string { return p.Chain[i].Hash }); err != nil {
			c.fails = append(c.fails, err)
		}
	}
	switch b := b.(type) {
	case *Evidence:
		checkEvidence(c, b, recs)
	case *SOC2:
		checkEvidence(c, &b.Evidence, recs)
		checkSOC2(c, b)
	case *ExecutiveDebrief:
		checkDebrief(c, b, recs)
	}
}

func checkSnapshot(c *checks, p *Provenance, h *Header) bool {
	if p.Snapshot == nil {
		c.add(ErrSnapshot, "bundle holds no policy snapshot")
		return false
	}
	ok := true
	if err := p.Snapshot.Verify(); err != nil {
		c.fails = append(c.fails, fmt.Errorf("%w: %w", ErrSnapshot, err))
		ok = false
	}
	if p.PolicySnapshotID != p.Snapshot.ID() {
		c.add(ErrSnapshot, "policy_snapshot_id %s but the bundle holds snapshot %s", p.PolicySnapshotID, p.Snapshot.ID())
		ok = false
	}
	if p.Snapshot.TenantID() != h.TenantID {
		c.add(ErrSnapshot, "snapshot %s belongs to tenant %q, bundle to %q", p.Snapshot.ID(), p.Snapshot.TenantID(), h.TenantID)
		ok = false
	}
	return ok
}

// checkChain decodes and recomputes the chain; it returns the records when
// the chain is sound, nil when not.
func checkChain(c *checks, p *Provenance) []trace.Record {
	if len(p.Chain) == 0 {
		c.add(ErrRecordMissing, "bundle holds no chain records")
		return nil
	}
	recs := make([]trace.Record, len(p.Chain))
	var buf []byte
	for i, cr := range p.Chain {
		r, err := trace.DecodeRecord(cr.Record, cr.PrevHash, cr.Hash)
		if err != nil {
			c.fails = append(c.fails, fmt.Errorf("%w: chain record %d: %w", ErrRecordChanged, i, err))
			return nil
		}
		recs[i] = r
		// The hash covers the record as decoded, re-encoded: the body
		// must be that encoding, so that what a reader of the body
		// sees (a key in another case, a duplicated key, another
		// spelling) is what the hash covers.
		buf = trace.Encode(buf[:0], &r)
		if bytes.Equal(cr.Record, buf) {
			continue // as exported
		}
		if canon, err := snapshot.Canonical(cr.Record); err != nil || !bytes.Equal(canon, buf) {
			c.add(ErrAmbiguous, "chain record %d is not the canonical encoding of the record its hash covers", i)
		}
	}
	if err := chainFailure(recs); err != nil {
		c.fails = append(c.fails, err)
		return nil
	}
	last := recs[len(recs)-1]
	switch {
	case len(recs) < p.ChainLength:
		c.add(ErrRecordMissing, "chain holds %d records, the bundle states %d (head %s)", len(recs), p.ChainLength, p.HeadHash)
		return nil
	case len(recs) != p.ChainLength || last.Hash != p.HeadHash:
		c.add(ErrInconsistent, "chain of %d records ends in %s, the bundle states %d records ending in %s", len(recs), last.Hash, p.ChainLength, p.HeadHash)
	}
	return recs
}

// chainFailure says how a chain is broken, telling records out of order
// and records missing from records changed.
func chainFailure(recs []trace.Record) error {
	for i := range recs {
		if recs[i].Seq == i {
			continue
		}
		seqs := make([]int, len(recs))
		increasing := true
		for j := range recs {
			seqs[j] = recs[j].Seq
			if j > 0 && recs[j].Seq <= recs[j-1].Seq {
				increasing = false
			}
		}
		slices.Sort(seqs)
		permutation := true
		for j, s := range seqs {
			if s != j {
				permutation = false
				break
			}
		}
		switch {
		case permutation:
			return fmt.Errorf("%w: position %d holds record %d", ErrRecordsReordered, i, recs[i].Seq)
		case increasing:
			return fmt.Errorf("%w: record %d is missing (position %d holds record %d)", ErrRecordMissing, i, i, recs[i].Seq)
		}
		return fmt.Errorf("%w: position %d holds record %d", ErrChain, i, recs[i].Seq)
	}
	if _, err := trace.Verify(recs); err != nil {
		return fmt.Errorf("%w: %w", ErrRecordChanged, err)
	}
	return nil
}

func checkEvidence(c *checks, b *Evidence, recs []trace.Record) {
	checkSteps(c, b.Steps, recs)
	checkEvidenceFacts(c, b, factsOf(recs))
	// The outlook is checked against the snapshot the chain binds; a
	// bundle holding another is already refused (ErrSnapshot).
	if s := b.Snapshot; s != nil && len(recs) > 0 && recs[0].SnapshotID == s.ID() && recs[0].SnapshotHash == s.ContentHash() && s.Verify() == nil {
		checkOutlook(c, b, func(shadow *snapshot.PolicySnapshot) (Outlook, error) {
			return OutlookOf(b.Snapshot, shadow, &b.Run, recs)
		})
	}
}

// chainFacts is what a bundle's facts are checked against, of a sound
// chain: its first and last records, its inflection point, and the
// totals of its last record that carries them.
type chainFacts struct {
	first, last trace.Record
	inf         trace.Inflection
	stopped     bool
	tokens      int64
	cost        float64
	n           int
}

func factsOf(recs []trace.Record) *chainFacts {
	var f chainFacts
	for i := range recs {
		f.add(&recs[i])
	}
	return &f
}

// add reads the next record of the chain.
func (f *chainFacts) add(r *trace.Record) {
	if f.n == 0 {
		f.first = *r
	}
	f.n++
	f.last = *r
	if r.Kind == trace.KindStep || r.Kind == trace.KindRunEnd {
		f.tokens, f.cost = r.TotalTokens, r.TotalCostCents
	}
	if r.Kind == trace.KindStep && r.Inflection && !f.stopped {
		f.inf, f.stopped = trace.InflectionOf([]trace.Record{*r})
	}
}

// totals is TotalsOf the chain.
func (f *chainFacts) totals(start time.Time) Totals {
	t := Totals{Tokens: f.tokens, CostCents: f.cost}
	if f.n == 0 {
		return Totals{}
	}
	if d := f.last.At.Sub(start); d > 0 {
		t.DurationSeconds = d.Seconds()
	}
	return t
}

// checkEvidenceFacts checks an evidence bundle's facts against its chain's.
func checkEvidenceFacts(c *checks, b *Evidence, f *chainFacts) {
	h, first, last := &b.Header, &f.first, &f.last
	inf, stopped := f.inf, f.stopped
	switch {
	case stopped && (b.ViolationStepIndex == nil || *b.ViolationStepIndex != inf.StepIndex || b.ViolatedPolicyID != inf.PolicyID):
		c.add(ErrInconsistent, "violation at step %s by %q, chain has the inflection point at step %d by %q",
			intPtr(b.ViolationStepIndex), b.ViolatedPolicyID, inf.StepIndex, inf.PolicyID)
	case !stopped && (b.ViolationStepIndex != nil || b.ViolatedPolicyID != ""):
		c.add(ErrInconsistent, "violation at step %s by %q, chain has no inflection point", intPtr(b.ViolationStepIndex), b.ViolatedPolicyID)
	}
	run := &b.Run
	if !validStatus(run.Status) {
		c.add(ErrMalformed, "run status %q", run.Status)
	}
	if !run.CreatedAt.Equal(first.At) {
		c.add(ErrInconsistent, "run created at %s, run_start record at %s", rfc3339(run.CreatedAt), rfc3339(first.At))
	}
	if run.StartedAt != nil && run.StartedAt.Before(run.CreatedAt) {
		c.add(ErrInconsistent, "run started at %s, before it was created at %s", rfc3339(*run.StartedAt), rfc3339(run.CreatedAt))
	}
	if last.Kind == trace.KindRunEnd {
		if run.Status != last.RunStatus || run.TerminationReason != last.Reason ||
			intPtr(run.StoppedAtStep) != intPtr(last.StoppedAtStep) || run.ViolationPolicyID != last.ViolationPolicyID ||
			run.EndedAt == nil || !run.EndedAt.Equal(last.At) {
			c.add(ErrInconsistent, "run (%s, %s, stopped at %s, policy %q, ended %s) disagrees with its run_end record (%s, %s, stopped at %s, policy %q, at %s)",
				run.Status, run.TerminationReason, intPtr(run.StoppedAtStep), run.ViolationPolicyID, timePtr(run.EndedAt),
				last.RunStatus, last.Reason, intPtr(last.StoppedAtStep), last.ViolationPolicyID, rfc3339(last.At))
		}
		if last.IncidentID != h.IncidentID {
			c.add(ErrInconsistent, "bundle names incident %q, the run_end record %q", h.IncidentID, last.IncidentID)
		}
	} else if ended(run.Status) || run.EndedAt != nil {
		c.add(ErrRecordMissing, "run is %s but its chain has no run_end record", run.Status)
	}
	switch inc := b.Incident; {
	case inc == nil && h.IncidentID != "":
		c.add(ErrInconsistent, "bundle names incident %s but does not hold it", h.IncidentID)
	case inc != nil:
		if inc.ID != h.IncidentID || inc.TenantID != h.TenantID || inc.RunID != h.RunID || inc.SnapshotID != first.SnapshotID {
			c.add(ErrInconsistent, "incident %s (run %s, tenant %q, snapshot %s) is not this bundle's", inc.ID, inc.RunID, inc.TenantID, inc.SnapshotID)
		}
		if !stopped || inc.StepIndex != inf.StepIndex || inc.PolicyID != inf.PolicyID || inc.RecordHash != inf.Hash || inc.Reason != inf.Reason {
			c.add(ErrInconsistent, "incident %s (step %d, policy %q, record %s) does not match the chain's inflection point", inc.ID, inc.StepIndex, inc.PolicyID, inc.RecordHash)
		}
	}
	if want := f.totals(runStart(run)); b.Totals != want {
		c.add(ErrInconsistent, "totals %+v, the chain gives %+v", b.Totals, want)
	}
}

// checkSteps checks that the bundle's steps are exactly the chain's steps
// and that included content matches its hash.
func checkSteps(c *checks, steps []TraceStepEvidence, recs []trace.Record) {
	n := 0
	for i := range recs {
		if recs[i].Kind == trace.KindStep {
			n++
		}
	}
	if len(steps) != n {
		c.fails = append(c.fails, &StepMismatchError{StepIndex: -1, Field: "steps", Bundle: strconv.Itoa(len(steps)), Chain: strconv.Itoa(n)})
	}
	k := 0
	for i := range recs {
		r := &recs[i]
		if r.Kind != trace.KindStep {
			continue
		}
		if k >= len(steps) {
			break
		}
		got := &steps[k]
		k++
		want := StepOf(r)
		if field, bv, cv := diffStep(got, &want); field != "" {
			c.fails = append(c.fails, &StepMismatchError{StepIndex: r.StepIndex, Field: field, Bundle: bv, Chain: cv})
			continue
		}
		if got.Content != nil {
			if h := trace.ContentHashOf(*got.Content); h != got.ContentHash {
				c.add(ErrContent, "step %d: content hashes to %q, the record binds %q", got.StepIndex, h, got.ContentHash)
			}
		}
	}
}

// diffStep returns the first field in which a differs from b (ignoring
// content, which is checked against its hash), with both values.
func diffStep(a, b *TraceStepEvidence) (field, av, bv string) {
	s, i, f := func(x string) string { return strconv.Quote(x) }, strconv.Itoa, func(x float64) string { return strconv.FormatFloat(x, 'g', -1, 64) }
	i64 := func(x int64) string { return strconv.FormatInt(x, 10) }
	switch {
	case a.StepIndex != b.StepIndex:
		return "step_index", i(a.StepIndex), i(b.StepIndex)
	case a.Seq != b.Seq:
		return "seq", i(a.Seq), i(b.Seq)
	case !a.Timestamp.Equal(b.Timestamp):
		return "timestamp", rfc3339(a.Timestamp), rfc3339(b.Timestamp)
	case a.StepType != b.StepType:
		return "step_type", s(string(a.StepType)), s(string(b.StepType))
	case a.Model != b.Model:
		return "model", s(a.Model), s(b.Model)
	case a.Tool != b.Tool:
		return "tool", s(a.Tool), s(b.Tool)
	case a.Tokens != b.Tokens:
		return "tokens", i64(a.Tokens), i64(b.Tokens)
	case a.CostCents != b.CostCents:
		return "cost_cents", f(a.CostCents), f(b.CostCents)
	case a.TotalTokens != b.TotalTokens:
		return "total_tokens", i64(a.TotalTokens), i64(b.TotalTokens)
	case a.TotalCost != b.TotalCost:
		return "total_cost_cents", f(a.TotalCost), f(b.TotalCost)
	case a.Status != b.Status:
		return "status", s(string(a.Status)), s(string(b.Status))
	case a.IsInflection != b.IsInflection:
		return "is_inflection", strconv.FormatBool(a.IsInflection), strconv.FormatBool(b.IsInflection)
	case a.ContentHash != b.ContentHash:
		return "content_hash", s(a.ContentHash), s(b.ContentHash)
	case !decisionEqual(&a.Decision, &b.Decision):
		return "decision", jsonText(a.Decision), jsonText(b.Decision)
	case !slices.EqualFunc(a.Findings, b.Findings, func(x, y StepDecision) bool { return decisionEqual(&x, &y) }):
		return "findings", jsonText(a.Findings), jsonText(b.Findings)
	case a.RecordHash != b.RecordHash:
		return "record_hash", s(a.RecordHash), s(b.RecordHash)
	case a.PrevHash != b.PrevHash:
		return "prev_hash", s(a.PrevHash), s(b.PrevHash)
	}
	return "", "", ""
}

func decisionEqual(a, b *StepDecision) bool {
	return a.Action == b.Action && a.PolicyID == b.PolicyID && a.Source == b.Source && a.Reason == b.Reason &&
		a.Threshold == b.Threshold && floatPtrEqual(a.Limit, b.Limit) && floatPtrEqual(a.Observed, b.Observed) &&
		a.Message == b.Message && a.Enforcement == b.Enforcement
}

func floatPtrEqual(a, b *float64) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%+v", v)
	}
	return string(b)
}

func intPtr(p *int) string {
	if p == nil {
		return "none"
	}
	return strconv.Itoa(*p)
}

func timePtr(p *time.Time) string {
	if p == nil {
		return "never"
	}
	return rfc3339(*p)
}

func checkSOC2(c *checks, b *SOC2) {
	start, end := b.CompliancePeriodStart, b.CompliancePeriodEnd
	if !start.Before(end) {
		c.add(ErrInconsistent, "compliance period [%s, %s) is empty", rfc3339(start), rfc3339(end))
	}
	in := func(t time.Time) bool { return !t.Before(start) && t.Before(end) }
	if b.Incident == nil {
		c.add(ErrInconsistent, "SOC2 bundle holds no incident")
	} else if !in(b.Incident.CreatedAt) {
		c.add(ErrInconsistent, "incident %s created at %s, outside the compliance period", b.Incident.ID, rfc3339(b.Incident.CreatedAt))
	}
	for i, r := range b.Population {
		if !validStatus(r.Status) {
			c.add(ErrMalformed, "population run %s: status %q", r.RunID, r.Status)
		}
		if !in(r.CreatedAt) {
			c.add(ErrInconsistent, "population run %s created at %s, outside the compliance period", r.RunID, rfc3339(r.CreatedAt))
		}
		if i > 0 && b.Population[i-1].RunID == r.RunID {
			c.add(ErrInconsistent, "population lists run %s twice", r.RunID)
		}
	}
	for _, inc := range b.Incidents {
		if !in(inc.CreatedAt) {
			c.add(ErrInconsistent, "incident %s created at %s, outside the compliance period", inc.ID, rfc3339(inc.CreatedAt))
		}
	}
	if want := SummaryOf(b.Population, b.Incidents); !summaryEqual(b.PopulationSummary, want) {
		c.add(ErrInconsistent, "population summary %+v, the population gives %+v", b.PopulationSummary, want)
	}
}

func summaryEqual(a, b PopulationSummary) bool {
	eq := func(x, y map[string]int) bool {
		if len(x) != len(y) {
			return false
		}
		for k, v := range x {
			if y[k] != v {
				return false
			}
		}
		return true
	}
	return a.Runs == b.Runs && a.StoppedByPolicy == b.StoppedByPolicy && a.Incidents == b.Incidents &&
		a.Snapshots == b.Snapshots && eq(a.ByStatus, b.ByStatus) && eq(a.BySeverity, b.BySeverity)
}

func checkDebrief(c *checks, b *ExecutiveDebrief, recs []trace.Record) {
	first, last := &recs[0], &recs[len(recs)-1]
	inf, ok := trace.InflectionOf(recs)
	if !ok {
		c.add(ErrInconsistent, "debrief of incident %s, but the chain has no inflection point", b.IncidentID)
		return
	}
	rec := &recs[inf.Seq]
	if b.ViolationStepIndex != inf.StepIndex || b.ViolatedPolicyID != inf.PolicyID || !b.ViolationTime.Equal(inf.At) || b.StepsTaken != inf.StepIndex+1 {
		c.add(ErrInconsistent, "violation at step %d by %q at %s (%d steps), chain has it at step %d by %q at %s",
			b.ViolationStepIndex, b.ViolatedPolicyID, rfc3339(b.ViolationTime), b.StepsTaken, inf.StepIndex, inf.PolicyID, rfc3339(inf.At))
	}
	if b.CostIncurredCents != rec.TotalCostCents {
		c.add(ErrInconsistent, "cost incurred %s cents, chain gives %s up to and including step %d", number(b.CostIncurredCents), number(rec.TotalCostCents), inf.StepIndex)
	}
	if b.RunStartedAt.Before(first.At) || b.RunStartedAt.After(inf.At) {
		c.add(ErrInconsistent, "run started at %s, outside [%s, %s] of its chain", rfc3339(b.RunStartedAt), rfc3339(first.At), rfc3339(inf.At))
	}
	if want := inf.At.Sub(b.RunStartedAt).Seconds(); b.TimeToDetectSeconds != want {
		c.add(ErrInconsistent, "time to detect %s s, chain gives %s s", number(b.TimeToDetectSeconds), number(want))
	}
	if last.Kind == trace.KindRunEnd && last.IncidentID != b.IncidentID {
		c.add(ErrInconsistent, "debrief names incident %q, the run_end record %q", b.IncidentID, last.IncidentID)
	}
}
