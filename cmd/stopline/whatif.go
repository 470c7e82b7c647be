package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/stopline/stopline/governance"
)

func whatifCmd() *command {
	var policies, tenant, since, until, status string
	return &command{
		name:     "whatif",
		section:  "Policies",
		synopsis: "--policies FILE [--tenant T] [--since TIME] [--until TIME] [--status S] [--json]",
		summary:  "try a policy file on recorded runs: which it would stop, earlier, or let go on",
		desc: `Evaluates a candidate policy file on the recorded runs of its tenant, step by
step as the runner would have (recorded times, amounts and stored text), and
reports per run what would have changed. Nothing is written. Each run is
verified first; one that does not verify is not evaluated (exit 1, one line on
stderr per such run; the others are reported).

Changes: unchanged (stopped at the same step, or at none); would_stop (the run
was not stopped at a step — it completed, was cancelled, or is still going —
and the candidate stops it: at which step, by which policy, with which
reason); would_continue (the candidate lets the step the run was stopped at
pass); stops_earlier; stops_later (never seen from records: a run's records
end at its stop). For would_stop and stops_earlier, "saved" is what the run
recorded after the candidate's stop (steps, tokens, cents); for would_continue
the steps past the recorded stop were never taken, so their cost is unknown and
said so. Runs the candidate cannot evaluate exactly are flagged: Go hooks
(their recorded decisions are used), limits across the tenant's runs (their
totals depend on other runs), text stored cut, withheld steps. A run that kept
its content redacted or as hashes only (stopline run --retention), where the
candidate has a policy that reads text, is content_not_kept: its outcome
depends on text that was not kept, and no spend is counted for it.

--since and --until select runs created in [since, until) (RFC 3339 or
YYYY-MM-DD, UTC); --status selects by status.

--json prints {"tenant_id","candidate_snapshot_id","candidate_content_hash",
"runs","totals"}: each run {"run_id","policy_snapshot_id","created_at",
"change","recorded","candidate","saved","cost_note","flags","error"}, recorded
and candidate being {"status","stopped_at_step","policy_id","reason",
"message"} (candidate status "continues" for would_continue), saved
{"steps","tokens","cost_cents"}, flags [{"policy_id","source","why","detail"}];
totals {"runs","unchanged","would_stop","would_continue","stops_earlier",
"stops_later","not_evaluated","content_not_kept","flagged","saved",
"cost_unknown"}.`,
		examples: []string{
			"stopline whatif --policies stricter.json",
			"stopline whatif --policies stricter.json --since 2025-03-01 --until 2025-04-01 --status succeeded --json",
		},
		maxArgs: 0, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&policies, "policies", "", "the candidate policy `FILE` (required; - for stdin)")
			fs.StringVar(&tenant, "tenant", "", "tenant `T` (default and must be: the policy file's tenant)")
			fs.StringVar(&since, "since", "", "only runs created at or after `TIME` (RFC 3339 or YYYY-MM-DD, UTC)")
			fs.StringVar(&until, "until", "", "only runs created before `TIME` (RFC 3339 or YYYY-MM-DD, UTC)")
			fs.StringVar(&status, "status", "", "only runs with status `S`: queued, running, succeeded, failed, failed_policy or cancelled")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if policies == "" {
				return usagef("--policies FILE is required: the candidate policy set")
			}
			var f governance.RunFilter
			var err error
			if since != "" {
				if f.From, err = parsePeriodTime(since); err != nil {
					return usagef("--since %q: want RFC 3339 or YYYY-MM-DD", since)
				}
			}
			if until != "" {
				if f.To, err = parsePeriodTime(until); err != nil {
					return usagef("--until %q: want RFC 3339 or YYYY-MM-DD", until)
				}
			}
			if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
				return usagef("--since %s is not before --until %s", since, until)
			}
			if status != "" {
				if f.Status, err = governance.ParseRunStatus(status); err != nil {
					return usagef("--status %q: want queued, running, succeeded, failed, failed_policy or cancelled", status)
				}
			}
			snap, err := loadPolicies(e, policies)
			if err != nil {
				return err
			}
			if tenant != "" && tenant != snap.TenantID() {
				return fmt.Errorf("--tenant %q, but %s is the policy set of tenant %q", tenant, policies, snap.TenantID())
			}
			return withStore(ctx, e, true, func(st governance.Store) error {
				runner, err := governance.NewRunner(st, governance.WithKinds(commandKinds))
				if err != nil {
					return err
				}
				rep, err := runner.WhatIf(ctx, snap, f)
				if err != nil {
					return err
				}
				if e.jsonOut {
					err = writeJSON(e.stdout, rep)
				} else {
					err = printWhatIf(e.stdout, rep, policies)
				}
				if err != nil || rep.Totals.NotEvaluated == 0 {
					return err
				}
				for _, r := range rep.Runs {
					if r.Change == governance.WhatIfNotEvaluated {
						fmt.Fprintf(e.stderr, "stopline whatif: run %s not evaluated: %s\n", r.RunID, oneLine(r.Error))
					}
				}
				return errSilent
			})
		},
	}
}

func printWhatIf(w io.Writer, rep *governance.WhatIfReport, file string) error {
	t := newTable(w)
	if file == "-" {
		file = "stdin"
	} else {
		file = filepath.Base(file)
	}
	t.row("Candidate:", fmt.Sprintf("%s (%s), tenant %s", rep.CandidateID, file, rep.TenantID))
	tot := rep.Totals
	runs := fmt.Sprintf("%d: %d unchanged, %d would stop, %d would continue, %d stop earlier, %d stop later, %d not evaluated",
		tot.Runs, tot.Unchanged, tot.WouldStop, tot.WouldContinue, tot.StopsEarlier, tot.StopsLater, tot.NotEvaluated)
	if tot.ContentNotKept > 0 {
		runs += fmt.Sprintf(", %d content not kept", tot.ContentNotKept)
	}
	t.row("Runs:", runs)
	if tot.ContentNotKept > 0 {
		t.row("Not kept:", fmt.Sprintf("%s kept content redacted or as hashes: the candidate's policies that read text cannot be evaluated on them", plural(tot.ContentNotKept, "run")))
	}
	if tot.WouldStop+tot.StopsEarlier > 0 {
		t.row("Saved:", fmt.Sprintf("%s recorded after the candidate's stops", costText(tot.Saved)))
	}
	if tot.CostUnknown > 0 {
		t.row("Allowed:", fmt.Sprintf("%s would go on past the step they were stopped at: what they would then have spent was never recorded", plural(tot.CostUnknown, "run")))
	}
	if tot.Flagged > 0 {
		t.row("Flagged:", fmt.Sprintf("%s could not be evaluated exactly (FLAGS below; --json says why)", plural(tot.Flagged, "run")))
	}
	if err := t.flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	t = newTable(w)
	t.row("RUN", "CHANGE", "RECORDED", "CANDIDATE", "SAVED", "FLAGS")
	for _, r := range rep.Runs {
		saved := "-"
		if s := r.Saved; s != nil {
			saved = costText(*s)
		} else if r.CostNote != "" {
			saved = "unknown"
		}
		var flags []string
		for _, f := range r.Flags {
			if f.PolicyID != "" {
				flags = append(flags, f.PolicyID+" ("+string(f.Why)+")")
			} else {
				flags = append(flags, string(f.Why))
			}
		}
		candidate := outcomeText(r.Candidate)
		if r.Change == governance.WhatIfNotEvaluated {
			candidate, saved = "not evaluated: "+oneLine(r.Error), "-"
		}
		t.row(r.RunID, string(r.Change), outcomeText(r.Recorded), candidate, saved, orDash(strings.Join(flags, ", ")))
	}
	if len(rep.Runs) == 0 {
		t.row("(no runs)")
	}
	return t.flush()
}

// outcomeText says how a run ended, or would have: "step 2 by tokens
// (budget_exceeded)", "succeeded", "continues".
func outcomeText(o governance.WhatIfOutcome) string {
	if o.StoppedAtStep == nil {
		if o.Reason != "" && string(o.Reason) != "completed" {
			return fmt.Sprintf("%s (%s)", o.Status, o.Reason)
		}
		return o.Status
	}
	return fmt.Sprintf("step %d by %s (%s)", *o.StoppedAtStep, o.PolicyID, o.Reason)
}

// costText says recorded spend: "6 steps, 4800 tokens, 96 cents".
func costText(c governance.WhatIfCost) string {
	cents := "cents"
	if c.CostCents == 1 {
		cents = "cent"
	}
	return fmt.Sprintf("%s, %s, %s %s", plural(c.Steps, "step"), plural(int(c.Tokens), "token"), fmtNum(c.CostCents), cents)
}
