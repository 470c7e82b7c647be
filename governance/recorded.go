package governance

import (
	"strings"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// metadataTruncated is the metadata key the runner sets on the stored
// content of a step whose input or output it cut ("input", "output" or
// "input,output"): policies saw the whole text, the record holds the cut.
const metadataTruncated = "stopline.truncated"

// recordedRun is a run as its store holds it — its row, snapshot, chain
// and step contents — read and verified before anything is explained or
// evaluated from it.
type recordedRun struct {
	run      RunRecord
	snap     *snapshot.PolicySnapshot
	shadow   *snapshot.PolicySnapshot // the shadow snapshot, if the run has one
	records  []trace.Record
	head     string                // the hash of the chain's last record
	contents map[int]trace.Content // by step index; nil when not read
}

// recordedStep is one step of a recorded run rebuilt as the runner showed
// it to the run's policies, from the records alone.
type recordedStep struct {
	rec *trace.Record
	// step is what the policies saw, as far as the records hold it.
	step prevention.Step
	// truncated names the fields ("input", "output") the runner stored
	// cut: the policies read them whole.
	truncated []string
	// withheld: the decision was made on the step as it was attempted;
	// the record holds only what of it was delivered (Run.Withhold,
	// Run.Reserve, a stream cut by llmhttp).
	withheld bool
	// notKept: the step had content, of which the run kept only its hash
	// (retention hashes) or a redaction that masked part of it (retention
	// redacted): the policies that read text read what was kept.
	notKept bool
}

// recordedSteps rebuilds every step record of a run (records in chain
// order) as the runner evaluated it: the step's index, type, time, model,
// tool, amounts and run totals are the record's; its input, output and
// metadata come from contents (empty when contents is nil or holds
// nothing for the step), with the keys the runner adds when it stores a
// step (stopline.truncated, stopline.withheld) taken out, since the
// policies did not see them; the times of the run's earlier steps are
// those of the earlier step records, as the runner kept them.
//
// The run's start is what the runner measured from: the run's creation
// (its run_start record) for every step of a run that was started, and
// for the first step of a queued run; from the second step of a queued
// run on, its first step's time (a run is taken as queued when its row's
// StartedAt is not its creation).
func recordedSteps(run *RunRecord, records []trace.Record, contents map[int]trace.Content) []recordedStep {
	if len(records) == 0 {
		return nil
	}
	var steps []recordedStep
	b := newStepRebuilder(run, &records[0], len(records))
	for i := range records {
		r := &records[i]
		if r.Kind != trace.KindStep {
			continue
		}
		var cp *trace.Content
		if c, ok := contents[r.StepIndex]; ok {
			cp = &c
		}
		steps = append(steps, b.next(r, cp))
	}
	return steps
}

// stepRebuilder rebuilds a run's step records one at a time, in chain
// order, as recordedSteps describes: it keeps what a step is rebuilt
// from besides its own record, the times of the steps before it and when
// the run started.
type stepRebuilder struct {
	created, started time.Time
	queued           bool
	times            []int64
	retention        trace.Retention // as the run_start record states it
}

// newStepRebuilder starts rebuilding the steps of run, whose run_start
// record is start; n, if known, is about how many steps there are.
func newStepRebuilder(run *RunRecord, start *trace.Record, n int) *stepRebuilder {
	created := start.At
	return &stepRebuilder{
		created: created, started: created, times: make([]int64, 0, n), retention: start.Retention,
		// A run that was queued started with its first step, later than
		// it was created; the run row says so, the chain says when.
		queued: run.StartedAt != nil && !run.StartedAt.Equal(created),
	}
}

// skip counts step record r without rebuilding it.
func (b *stepRebuilder) skip(r *trace.Record) {
	if len(b.times) == 0 && b.queued {
		b.started = r.At
	}
	b.times = append(b.times, r.At.UnixNano())
}

// next rebuilds step record r, the step after those counted so far, with
// its stored content c (nil when none or not read), and counts it.
func (b *stepRebuilder) next(r *trace.Record, c *trace.Content) recordedStep {
	rs := recordedStep{rec: r}
	switch b.retention {
	case trace.RetentionHashes:
		rs.notKept = r.ContentHash != ""
	case trace.RetentionRedacted:
		rs.notKept = r.KeptContentHash != ""
	}
	st := &rs.step
	*st = prevention.Step{
		RunID: r.RunID, TenantID: r.TenantID, SnapshotID: r.SnapshotID,
		Index: r.StepIndex, Type: r.StepType, At: r.At, RunStartedAt: b.created,
		Model: r.Model, Tool: r.Tool, Tokens: r.Tokens, CostCents: r.CostCents,
		TotalTokens: r.TotalTokens, TotalCostCents: r.TotalCostCents,
	}
	if len(b.times) == 0 && b.queued {
		b.started = r.At
	}
	st.RunStartedAt = b.started
	if c != nil {
		st.Input, st.Output = c.Input, c.Output
		if len(c.Metadata) > 0 {
			md := make(map[string]string, len(c.Metadata))
			for k, v := range c.Metadata {
				switch k {
				case metadataTruncated:
					rs.truncated = strings.Split(v, ",")
				case MetadataWithheld:
					rs.withheld = v == "true"
				default:
					md[k] = v
				}
			}
			if len(md) > 0 {
				st.Metadata = md
			}
		}
	}
	// The slice is read, not copied, and only ever appended to: each
	// step sees the times before its own.
	st.SetStepTimes(b.times[:len(b.times):len(b.times)])
	b.times = append(b.times, r.At.UnixNano())
	return rs
}

// hooksOf returns the ids of the Go hooks that decided anything in the
// records, each with the enforcement its decisions were recorded under
// ("" when only a failure of it was), in the order the runner ran them as
// far as the records show it: a hook recorded before another within a
// step ran before it; otherwise, in the order they first decided.
func hooksOf(records []trace.Record) (ids []string, enforcement map[string]snapshot.Enforcement) {
	var h hookOrder
	for i := range records {
		h.add(&records[i])
	}
	return h.order()
}

// hookOrder is hooksOf one record at a time.
type hookOrder struct {
	ids         []string
	enforcement map[string]snapshot.Enforcement
	after       map[string][]string // hook id -> hooks recorded after it within a step
	indegree    map[string]int
	edge        map[[2]string]bool
}

// add reads the hooks' decisions of the next record.
func (h *hookOrder) add(r *trace.Record) {
	if h.enforcement == nil {
		h.enforcement, h.after, h.indegree, h.edge = map[string]snapshot.Enforcement{}, map[string][]string{}, map[string]int{}, map[[2]string]bool{}
	}
	var prev string
	see := func(d *prevention.Decision) {
		if d == nil || d.Source != prevention.SourceHook || d.PolicyID == "" || d.PolicyID == prev {
			return
		}
		e, seen := h.enforcement[d.PolicyID]
		if !seen {
			h.ids = append(h.ids, d.PolicyID)
		}
		if e == "" {
			h.enforcement[d.PolicyID] = d.Enforcement
		}
		if prev != "" && !h.edge[[2]string{prev, d.PolicyID}] {
			h.edge[[2]string{prev, d.PolicyID}] = true
			h.after[prev] = append(h.after[prev], d.PolicyID)
			h.indegree[d.PolicyID]++
		}
		prev = d.PolicyID
	}
	for j := range r.Findings {
		see(&r.Findings[j])
	}
	if len(r.Findings) == 0 {
		see(r.Decision)
	}
}

// order returns the hooks in the order hooksOf describes, and the
// enforcement each was recorded under.
func (h *hookOrder) order() (ids []string, enforcement map[string]snapshot.Enforcement) {
	if h.enforcement == nil {
		return nil, map[string]snapshot.Enforcement{}
	}
	ids = h.ids
	indegree := make(map[string]int, len(h.indegree))
	for k, v := range h.indegree {
		indegree[k] = v
	}
	// Kahn's order, the first to decide first among those free to go.
	ordered := make([]string, 0, len(ids))
	done := map[string]bool{}
	for len(ordered) < len(ids) {
		next := ""
		for _, id := range ids {
			if !done[id] && indegree[id] == 0 {
				next = id
				break
			}
		}
		if next == "" { // records that disagree on the order: first decided first
			for _, id := range ids {
				if !done[id] {
					next = id
					break
				}
			}
		}
		done[next] = true
		ordered = append(ordered, next)
		for _, b := range h.after[next] {
			indegree[b]--
		}
	}
	return ordered, h.enforcement
}
