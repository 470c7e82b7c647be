package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

func replayCmd() *command {
	var tenant string
	return &command{
		name:     "replay",
		section:  "Evidence and integrity",
		synopsis: "RUN_ID [--tenant T] [--json]",
		summary:  "re-evaluate a recorded run's steps and compare every decision with the one stored",
		desc: `Verifies a run (as stopline verify does), then evaluates each of its steps
again against the run's recorded policy snapshot, with the recorded time,
amounts and stored text, and compares the decision and every finding with
the ones stored. A chain proves records were not changed unless someone
recomputed it; replay proves the stored decisions are the ones the snapshot
gives.

Each step is reproduced, partial (the decision is reproduced, but part of it
could not be evaluated again exactly), mismatch, or not_replayable. What
cannot be evaluated again exactly is listed, never skipped: Go hooks (this
command runs none: their recorded decisions are used), policies of kinds this
command lacks (rego, cedar: likewise), limits across the tenant's runs
(tenant_budget, tenant_rate_limit: their totals depend on other runs; the
totals their recorded decisions state are used, else this run's own usage),
steps whose text was stored cut (not_replayable when a policy that reads text
decides otherwise on what was stored), withheld steps (decided on what was
attempted, of which the record holds what was delivered: not_replayable), and
steps of a run that kept content redacted or as hashes only (content_not_kept:
the policies that read text cannot be evaluated again on what the step said;
never reported reproduced).

A run with a shadow snapshot has its shadow decisions evaluated again too,
each step's in its "shadow" member; a shadow decision that differs from the
one stored is a mismatch like any other.

Exit 0 when no decision differs (partial, not_replayable and content_not_kept steps are
reported, not failures); exit 1 when one does, with one line on stderr per
step naming it, the stored and the recomputed decision; exit 1 too when the
run does not verify (nothing is replayed from altered records).

--json prints {"tenant_id","run_id","policy_snapshot_id","content_hash",
"run_status","retention","records","not_replayable","steps","totals",
"shadow_snapshot_id","shadow_totals"}: not_replayable lists
{"policy_id","source","why","detail"} (why is hook, unknown_kind, tenant_wide,
truncated, withheld or content_not_kept); each step is {"step_index","seq",
"outcome","stored","recomputed","difference","gaps","shadow"}, stored and
recomputed being {"decision","findings"} (recomputed null when not
evaluated), shadow {"outcome","stored","recomputed","difference","gaps"} on a
run with a shadow snapshot; totals and shadow_totals are {"steps",
"reproduced","partial","mismatch","not_replayable","content_not_kept"}.`,
		examples: []string{
			"stopline replay RUN-3f2a9c0d1e4b5a67",
			"stopline replay RUN-3f2a9c0d1e4b5a67 --json | jq '.steps[] | select(.outcome == \"mismatch\")'",
		},
		minArgs: 1, maxArgs: 1, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "the run's tenant (`T`); needed only if the id exists under several")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			return withStore(ctx, e, true, func(st governance.Store) error {
				run, err := findRun(ctx, st, tenant, args[0])
				if err != nil {
					return err
				}
				runner, err := governance.NewRunner(st, governance.WithKinds(commandKinds))
				if err != nil {
					return err
				}
				rep, err := runner.Replay(ctx, run.TenantID, run.RunID)
				if err != nil {
					return err
				}
				if e.jsonOut {
					err = writeJSON(e.stdout, rep)
				} else {
					err = printReplay(e.stdout, rep)
				}
				if err != nil {
					return err
				}
				if rep.Reproduced() {
					return nil
				}
				for _, s := range rep.Mismatches() {
					diff := s.Difference
					if s.Shadow != nil && s.Shadow.Outcome == governance.ReplayMismatch {
						diff = strings.TrimPrefix(diff+"; ", "; ") + "shadow " + s.Shadow.Difference
					}
					fmt.Fprintf(e.stderr, "stopline replay: run %s: step %d not reproduced: %s\n", rep.RunID, s.StepIndex, oneLine(diff))
				}
				return errSilent
			})
		},
	}
}

func printReplay(w io.Writer, rep *governance.ReplayReport) error {
	t := newTable(w)
	t.row("Run:", fmt.Sprintf("%s (tenant %s), %s", rep.RunID, rep.TenantID, rep.RunStatus))
	t.row("Snapshot:", rep.SnapshotID)
	t.row("Chain:", fmt.Sprintf("%d records, verified", rep.Records))
	tot := rep.Totals
	t.row("Steps:", replayTotalsText(tot))
	if rep.ShadowTotals != nil {
		t.row("Shadow:", rep.ShadowSnapshotID+": "+replayTotalsText(*rep.ShadowTotals))
	}
	if len(rep.NotReplayable) == 0 {
		t.row("Not replayable:", "none: every policy and hook in force was evaluated again")
	}
	for i, g := range rep.NotReplayable {
		label := ""
		if i == 0 {
			label = "Not replayable:"
		}
		what := string(g.Why)
		if g.PolicyID != "" {
			what = fmt.Sprintf("%s %s (%s)", g.Source, g.PolicyID, g.Why)
		}
		t.row(label, what+": "+g.Detail)
	}
	result := "every recorded decision was reproduced"
	shadowMismatch := 0
	if rep.ShadowTotals != nil {
		shadowMismatch = rep.ShadowTotals.Mismatch
	}
	switch {
	case tot.Mismatch > 0 || shadowMismatch > 0:
		result = fmt.Sprintf("%d of %d decisions differ from the ones recorded", tot.Mismatch, tot.Steps)
		if shadowMismatch > 0 {
			result += fmt.Sprintf(", and %d shadow decisions", shadowMismatch)
		}
	case tot.ContentNotKept > 0:
		result = "no recorded decision differs; the policies that read text could not be evaluated again where the content was not kept"
	case tot.Partial+tot.NotReplayable > 0:
		result = "no recorded decision differs; what could not be evaluated again exactly is listed"
	}
	t.row("Result:", result)
	if err := t.flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	t = newTable(w)
	head := []string{"STEP", "OUTCOME", "DECISION", "DETAIL"}
	if rep.ShadowTotals != nil {
		head = []string{"STEP", "OUTCOME", "DECISION", "SHADOW", "DETAIL"}
	}
	t.row(head...)
	for _, s := range rep.Steps {
		detail := s.Difference
		if detail == "" {
			var ids []string
			for _, g := range s.Gaps {
				if g.PolicyID != "" {
					ids = append(ids, g.PolicyID+" ("+string(g.Why)+")")
				} else {
					ids = append(ids, string(g.Why))
				}
			}
			if len(ids) > 0 {
				detail = "not evaluated exactly: " + strings.Join(ids, ", ")
			}
		}
		if s.Shadow == nil {
			t.row(strconv.Itoa(s.StepIndex), string(s.Outcome), evaluationText(s.Stored), orDash(detail))
			continue
		}
		if s.Shadow.Difference != "" {
			detail = strings.TrimPrefix(detail+"; ", "; ") + "shadow " + s.Shadow.Difference
		}
		t.row(strconv.Itoa(s.StepIndex), string(s.Outcome), evaluationText(s.Stored),
			fmt.Sprintf("%s: %s", s.Shadow.Outcome, evaluationText(s.Shadow.Stored)), orDash(detail))
	}
	if len(rep.Steps) == 0 {
		t.row("(no steps)")
	}
	return t.flush()
}

func replayTotalsText(tot governance.ReplayTotals) string {
	s := fmt.Sprintf("%d: %d reproduced, %d partial, %d mismatch, %d not replayable",
		tot.Steps, tot.Reproduced, tot.Partial, tot.Mismatch, tot.NotReplayable)
	if tot.ContentNotKept > 0 {
		s += fmt.Sprintf(", %d content not kept", tot.ContentNotKept)
	}
	return s
}

// evaluationText says a step's evaluation in a few words: "allow",
// "warn (2 findings)", "block by tools (policy_block)".
func evaluationText(ev prevention.Evaluation) string {
	d := ev.Decision
	switch d.Action {
	case prevention.Allow:
		if n := len(ev.Findings); n > 0 {
			return fmt.Sprintf("allow (%s)", plural(n, "monitor finding"))
		}
		return "allow"
	case prevention.Warn:
		return fmt.Sprintf("warn (%s)", plural(len(ev.Findings), "finding"))
	}
	return fmt.Sprintf("block by %s (%s)", d.PolicyID, d.Reason)
}
