package governance

import (
	"strings"

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
	var (
		steps   []recordedStep
		times   = make([]int64, 0, len(records))
		created = records[0].At
		started = created
		// A run that was queued started with its first step, later than
		// it was created; the run row says so, the chain says when.
		queued = run.StartedAt != nil && !run.StartedAt.Equal(created)
	)
	for i := range records {
		r := &records[i]
		if r.Kind != trace.KindStep {
			continue
		}
		rs := recordedStep{rec: r}
		st := &rs.step
		*st = prevention.Step{
			RunID: r.RunID, TenantID: r.TenantID, SnapshotID: r.SnapshotID,
			Index: r.StepIndex, Type: r.StepType, At: r.At, RunStartedAt: created,
			Model: r.Model, Tool: r.Tool, Tokens: r.Tokens, CostCents: r.CostCents,
			TotalTokens: r.TotalTokens, TotalCostCents: r.TotalCostCents,
		}
		if len(steps) == 0 && queued {
			started = r.At
		}
		st.RunStartedAt = started
		if c, ok := contents[r.StepIndex]; ok {
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
		st.SetStepTimes(times[:len(times):len(times)])
		times = append(times, r.At.UnixNano())
		steps = append(steps, rs)
	}
	return steps
}

// hooksOf returns the ids of the Go hooks that decided anything in the
// records, each with the enforcement its decisions were recorded under
// ("" when only a failure of it was), in the order the runner ran them as
// far as the records show it: a hook recorded before another within a
// step ran before it; otherwise, in the order they first decided.
func hooksOf(records []trace.Record) (ids []string, enforcement map[string]snapshot.Enforcement) {
	enforcement = map[string]snapshot.Enforcement{}
	after := map[string][]string{} // hook id -> hooks recorded after it within a step
	indegree := map[string]int{}
	edge := map[[2]string]bool{}
	for i := range records {
		var prev string
		see := func(d *prevention.Decision) {
			if d == nil || d.Source != prevention.SourceHook || d.PolicyID == "" || d.PolicyID == prev {
				return
			}
			e, seen := enforcement[d.PolicyID]
			if !seen {
				ids = append(ids, d.PolicyID)
			}
			if e == "" {
				enforcement[d.PolicyID] = d.Enforcement
			}
			if prev != "" && !edge[[2]string{prev, d.PolicyID}] {
				edge[[2]string{prev, d.PolicyID}] = true
				after[prev] = append(after[prev], d.PolicyID)
				indegree[d.PolicyID]++
			}
			prev = d.PolicyID
		}
		for j := range records[i].Findings {
			see(&records[i].Findings[j])
		}
		if len(records[i].Findings) == 0 {
			see(records[i].Decision)
		}
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
		for _, b := range after[next] {
			indegree[b]--
		}
	}
	return ordered, enforcement
}
