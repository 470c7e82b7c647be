package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

func explainCmd() *command {
	var at, tenant, cpFile, cpKey string
	return &command{
		name:     "explain",
		section:  "Runs",
		synopsis: "RUN_ID --at TIME [--tenant T] [--checkpoint-key FILE [--checkpoint FILE]] [--json]",
		summary:  "explain an instant of a run: policy in force, last decision, headroom, continuing or stopped",
		desc: `Explains a run at one instant, from the store alone: the policy snapshot and
thresholds in force, the last decision at or before that instant and the
policy and threshold that made it, how close that step came to each limit
(the headroom: "cost_cents 120 of 150 (80%)") and which policy was closest
to stopping the run, whether execution was continuing or stopped and why,
and the record of the hash chain that holds the decision. The run's snapshot
is verified, and the records from the run's start up to the instant are
recomputed from the genesis hash first: nothing is explained from altered
records (exit 1). Only those records are read, so an instant early in a long
run is explained quickly. A writer of the database who recomputes every hash
is caught only by a signed checkpoint: with --checkpoint-key PUB (the .pub of
stopline keygen --checkpoint), the records are also checked against the
smallest stored checkpoint signed by that key that covers them, or against
--checkpoint FILE, a note kept outside the database (exit 1 if they do not
match).

TIME is an RFC 3339 time (2025-03-01T12:00:01.5Z) or +MS, milliseconds after
the run's start (+1500). An instant after the run's end explains its final
state; one before the run was created is an error.

--json prints {"run_id","tenant_id","at","policy_snapshot_id","content_hash",
"policy_version","policies","thresholds","state","run_status",
"termination_reason","last_step","decisive_decision","hooks","headroom",
"closest","why","record","verification"}; state is queued, continuing or stopped; headroom
lists, for each policy with a threshold (budget, rate_limit, timeout,
tenant_budget, tenant_rate_limit), {"policy_id","kind","threshold","limit",
"observed","unit","window_seconds","period","fraction","enforcement",
"tenant_wide","finding","text"} at the last step (observed and fraction are
null for a limit across the tenant's runs whose total no recorded decision
states); closest is the id of the block-mode policy nearest its limit; record
is {"seq","kind","step_index","hash","prev_hash","chain_length","head_hash",
"verified"}; verification is {"method","records","whole_chain","checkpoint",
"note"}: method is chain (records 0 to records-1 recomputed from the genesis
hash) or checkpoint (and checked against the signed checkpoint given);
whole_chain says whether those are the whole chain, whose length and head
record then cites as recomputed (else as the run's row states them).`,
		examples: []string{
			"stopline explain RUN-3f2a9c0d1e4b5a67 --at +1500",
			"stopline explain RUN-3f2a9c0d1e4b5a67 --at 2025-03-01T12:00:01.5Z --json",
			"stopline explain RUN-3f2a9c0d1e4b5a67 --at +1500 --checkpoint-key checkpoint.key.pub",
		},
		minArgs: 1, maxArgs: 1, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&at, "at", "", "the instant: RFC 3339 or +MS after the run's start (required)")
			fs.StringVar(&tenant, "tenant", "", "the run's tenant (`T`); needed only if the id exists under several")
			fs.StringVar(&cpKey, "checkpoint-key", "", "checkpoint verifier key `FILE`: check the records against a checkpoint it signed")
			fs.StringVar(&cpFile, "checkpoint", "", "a signed checkpoint note `FILE` of the run, kept outside the database (needs --checkpoint-key)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if at == "" {
				return usagef("--at TIME is required: RFC 3339, or +MS after the run's start")
			}
			var (
				offset   time.Duration
				instant  time.Time
				relative = strings.HasPrefix(at, "+")
			)
			if relative {
				ms, err := strconv.ParseInt(at[1:], 10, 64)
				if err != nil || ms < 0 || ms > int64(time.Duration(1<<62)/time.Millisecond) {
					return usagef("--at %q: want +MS, a whole number of milliseconds after the run's start", at)
				}
				offset = time.Duration(ms) * time.Millisecond
			} else {
				t, err := time.Parse(time.RFC3339Nano, at)
				if err != nil {
					return usagef("--at %q: want an RFC 3339 time (2025-03-01T12:00:01Z) or +MS", at)
				}
				instant = t
			}
			if cpFile != "" && cpKey == "" {
				return usagef("--checkpoint FILE needs --checkpoint-key FILE to check its signature")
			}
			var opts []governance.ExplainOption
			if cpKey != "" {
				vs, err := readCheckpointVerifier(cpKey)
				if err != nil {
					return err
				}
				var notes [][]byte
				if cpFile != "" {
					n, err := os.ReadFile(cpFile)
					if err != nil {
						return fmt.Errorf("--checkpoint: %w", err)
					}
					notes = append(notes, n)
				}
				opts = append(opts, governance.ExplainCheckpoints(vs, notes...))
			}
			return withStore(ctx, e, true, func(st governance.Store) error {
				run, err := findRun(ctx, st, tenant, args[0])
				if err != nil {
					return err
				}
				if relative {
					instant = runStart(run).Add(offset)
				}
				ex, err := governance.Explain(ctx, st, run.TenantID, run.RunID, instant, opts...)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, ex)
				}
				return printExplanation(e.stdout, ex, runStart(run))
			})
		},
	}
}

func printExplanation(w io.Writer, ex *governance.Explanation, start time.Time) error {
	t := newTable(w)
	t.row("Run:", fmt.Sprintf("%s (tenant %s)", ex.RunID, ex.TenantID))
	t.row("At:", fmt.Sprintf("%s (%s after the start)", fmtTime(ex.At), fmtOffset(ex.At, start)))
	snap := ex.SnapshotID + ", " + policyCount(len(ex.Policies))
	if ex.PolicyVersion > 0 {
		snap += fmt.Sprintf(", policy version %d", ex.PolicyVersion)
	}
	t.row("Snapshot:", snap)
	t.row("Content hash:", ex.ContentHash)
	state := fmt.Sprintf("%s (run %s", ex.State, ex.RunStatus)
	if ex.TerminationReason != "" {
		state += ", " + string(ex.TerminationReason)
	}
	t.row("State:", state+")")
	if s := ex.LastStep; s != nil {
		what := string(s.Type)
		if s.Tool != "" {
			what += " " + s.Tool
		}
		t.row("Last step:", fmt.Sprintf("%d (%s) at %s: %s, %s", s.Index, what, fmtOffset(s.At, start), s.Status, s.Decision.Action))
	} else {
		t.row("Last step:", "none yet")
	}
	if d := ex.Decisive; d != nil {
		by := fmt.Sprintf("%s %s", d.Source, d.PolicyID)
		if d.Policy != nil {
			by += fmt.Sprintf(" (kind %s, enforcement %s)", d.Policy.Kind, d.Policy.Enforcement.Effective())
		}
		t.row("Decided by:", by)
		decision := d.Action.String()
		if d.Action == prevention.Block {
			decision += " (" + string(d.Reason) + ")"
			if e := d.Enforcement.Effective(); e != snapshot.EnforceBlock {
				// A warn- or monitor-mode policy: recorded, the run went on.
				decision = fmt.Sprintf("%s: would have blocked (%s), recorded only", e, d.Reason)
			}
		}
		if desc := describeDecision(d.Decision); desc != "" {
			decision += ": " + desc
		}
		t.row("Decision:", decision)
	}
	if s := ex.LastStep; s != nil {
		for i, line := range headroomLines(ex) {
			label := ""
			if i == 0 {
				label = "Headroom:"
			}
			t.row(label, line)
		}
	}
	t.row("Why:", ex.Why)
	r := ex.Record
	rec := fmt.Sprintf("seq %d of %d (%s", r.Seq, r.ChainLength, r.Kind)
	if r.StepIndex >= 0 {
		rec += fmt.Sprintf(", step %d", r.StepIndex)
	}
	t.row("Record:", rec+")")
	t.row("Record hash:", r.Hash)
	head := r.HeadHash
	if !ex.Verification.WholeChain {
		head += " (as the run's row states it)"
	}
	t.row("Head hash:", head)
	t.row("Verified:", verificationText(ex))
	return t.flush()
}

// verificationText says what Explain checked.
func verificationText(ex *governance.Explanation) string {
	v := ex.Verification
	if !ex.Record.Verified || v.Records == 0 {
		return "not verified"
	}
	s := fmt.Sprintf("records 0 to %d recomputed from the genesis hash", v.Records-1)
	if v.WholeChain {
		s = fmt.Sprintf("the whole chain (%d records) recomputed from the genesis hash", v.Records)
	}
	if c := v.Checkpoint; c != nil {
		s += fmt.Sprintf("; the first %d match a checkpoint signed by %s at %s", c.Size, c.KeyName, fmtTime(c.At))
	}
	if v.Note != "" {
		s += " (" + v.Note + ")"
	}
	return s
}

// policyCount spells a number of policies: "1 policy", "5 policies".
func policyCount(n int) string {
	if n == 1 {
		return "1 policy"
	}
	return fmt.Sprintf("%d policies", n)
}

// headroomLines says how close the last step came to each limit: a line
// naming the step and the closest policy, then one per policy.
func headroomLines(ex *governance.Explanation) []string {
	if len(ex.Headroom) == 0 {
		return []string{"no policy of the snapshot compares a value with a limit"}
	}
	first := fmt.Sprintf("at step %d", ex.LastStep.Index)
	if ex.Closest != "" {
		first += "; closest to stopping the run: " + ex.Closest
	}
	if ex.HeadroomNote != "" {
		first += " (" + ex.HeadroomNote + ")"
	}
	lines := []string{first}
	width := 0
	for _, h := range ex.Headroom {
		width = max(width, len(h.PolicyID))
	}
	for _, h := range ex.Headroom {
		line := fmt.Sprintf("  %-*s  %s", width, h.PolicyID, h.Text)
		if h.Enforcement != snapshot.EnforceBlock {
			line += ", " + string(h.Enforcement)
		}
		if f := h.Finding; f != nil {
			switch {
			case f.Action == prevention.Block && h.Enforcement == snapshot.EnforceBlock:
				line += ": blocked the step"
			case f.Action == prevention.Block:
				line += fmt.Sprintf(": would have blocked (%s), recorded only", f.Reason)
			default:
				line += ": warned"
			}
		}
		lines = append(lines, line)
	}
	return lines
}
