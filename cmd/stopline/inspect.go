package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

func runsCmd() *command {
	var tenant, status string
	return &command{
		name:     "runs",
		section:  "Runs",
		synopsis: "[--tenant T] [--status S] [--json]",
		summary:  "list runs, newest first",
		desc: `Lists runs, newest first: status and termination reason, steps, tokens, cost,
the step a policy stopped the run at and the policy.

--json prints an array of runs as stored: {"run_id","tenant_id","trace_id",
"policy_snapshot_id","policy_version","status","termination_reason",
"stopped_at_step","violation_policy_id","incident_id","message","labels",
"created_at","started_at","ended_at","step_count","total_tokens",
"total_cost_cents","head_hash","chain_length"}.`,
		examples: []string{
			"stopline runs",
			"stopline runs --tenant acme --status failed_policy --json",
		},
		maxArgs: 0, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "only this tenant (`T`); default: every tenant")
			fs.StringVar(&status, "status", "", "only runs with status `S`: queued, running, succeeded, failed, failed_policy or cancelled")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			var st governance.RunStatus
			if status != "" {
				var err error
				if st, err = governance.ParseRunStatus(status); err != nil {
					return usagef("--status %q: want queued, running, succeeded, failed, failed_policy or cancelled", status)
				}
			}
			return withStore(ctx, e, true, func(s governance.Store) error {
				tenants, err := tenantsFor(ctx, s, tenant)
				if err != nil {
					return err
				}
				runs := []governance.RunRecord{}
				for _, t := range tenants {
					rs, err := s.Runs(ctx, governance.RunFilter{TenantID: t, Status: st})
					if err != nil {
						return err
					}
					runs = append(runs, rs...)
				}
				// Newest first across tenants, as the store orders each.
				sort.SliceStable(runs, func(i, j int) bool { return runs[i].CreatedAt.After(runs[j].CreatedAt) })
				if e.jsonOut {
					return writeJSON(e.stdout, runs)
				}
				if len(runs) == 0 {
					fmt.Fprintf(e.stdout, "No runs%s.\n", ofTenant(tenant))
					return nil
				}
				t := newTable(e.stdout)
				t.row("RUN", "TENANT", "STATUS", "REASON", "STEPS", "TOKENS", "COST", "STOPPED AT", "POLICY", "CREATED")
				for _, r := range runs {
					t.row(r.RunID, r.TenantID, string(r.Status), orDash(string(r.TerminationReason)), strconv.Itoa(r.StepCount),
						strconv.FormatInt(r.TotalTokens, 10), fmtNum(r.TotalCostCents), fmtStep(r.StoppedAtStep),
						orDash(r.ViolationPolicyID), fmtTime(r.CreatedAt))
				}
				return t.flush()
			})
		},
	}
}

// showRecord is a record of the chain with the content of its step.
type showRecord struct {
	trace.Record
	Content *trace.Content `json:"content,omitempty"`
}

type showResult struct {
	Run        governance.RunRecord     `json:"run"`
	Snapshot   *snapshot.PolicySnapshot `json:"snapshot"`
	Inflection *trace.Inflection        `json:"inflection"`
	Records    []showRecord             `json:"records"`
	// Retention is how the run kept its steps' content.
	Retention trace.Retention `json:"retention"`
	// Shadow compares the run's shadow snapshot with the enforcing one;
	// null when the run has none.
	Shadow *governance.ShadowOutcome `json:"shadow"`
}

func showCmd() *command {
	var tenant string
	return &command{
		name:     "show",
		section:  "Runs",
		synopsis: "RUN_ID [--tenant T] [--json]",
		summary:  "show a run, its snapshot and every step with its decision, inflection marked",
		desc: `Shows a run: its status and why it ended, the policy snapshot it was bound to,
and every step with its time after the run's start, its decision and the
policy and threshold behind it. The step where a policy stopped the run (the
inflection point) is marked. Nothing is verified here; see stopline verify.

A run with a shadow snapshot (stopline run --shadow) shows where the shadow
would have stopped it, by which policy and why, beside what the enforcing
snapshot did, and each step's shadow decision.

--json prints {"run","snapshot","inflection","records","retention","shadow"}:
the run as stored, the
snapshot (snapshot_id, content_hash, policies, thresholds, ...), the inflection
point ({"step_index","timestamp","policy_id","reason","seq","hash"} or null),
and the whole hash chain, each record with its decision, hashes and the step's
stored content ("content": {"input","output","metadata"}), how the content
was kept (full, redacted or hashes), and the shadow comparison or null:
{"policy_snapshot_id","content_hash","would_stop_at_step","policy_id",
"reason","message","steps","blocks","differs","enforcing_stopped_at_step",
"enforcing_policy_id","enforcing_reason","change"}.`,
		examples: []string{
			"stopline show RUN-3f2a9c0d1e4b5a67",
			"stopline show RUN-3f2a9c0d1e4b5a67 --json | jq '.records[] | select(.inflection)'",
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
				snap, err := st.Snapshot(ctx, run.TenantID, run.SnapshotID)
				if err != nil {
					return fmt.Errorf("snapshot %s of run %s: %w", run.SnapshotID, run.RunID, err)
				}
				recs, err := st.Records(ctx, run.TenantID, run.RunID)
				if err != nil {
					return err
				}
				contents, err := st.Contents(ctx, run.TenantID, run.RunID)
				if err != nil {
					return err
				}
				res := showResult{Run: run, Snapshot: snap, Records: make([]showRecord, len(recs))}
				if inf, ok := trace.InflectionOf(recs); ok {
					res.Inflection = &inf
				}
				res.Retention = trace.RetentionFull
				if len(recs) > 0 {
					res.Retention = recs[0].Retention.Effective()
				}
				if o, ok := governance.ShadowOf(recs); ok {
					res.Shadow = &o
				}
				for i, r := range recs {
					res.Records[i].Record = r
					if c, ok := contents[r.StepIndex]; ok && r.Kind == trace.KindStep {
						res.Records[i].Content = &c
					}
				}
				if e.jsonOut {
					return writeJSON(e.stdout, res)
				}
				return printShow(e.stdout, res)
			})
		},
	}
}

// runStart is when a run started (when it was created, if it never did).
func runStart(r governance.RunRecord) time.Time {
	if r.StartedAt != nil {
		return *r.StartedAt
	}
	return r.CreatedAt
}

func printShow(w io.Writer, res showResult) error {
	run := res.Run
	start := runStart(run)
	t := newTable(w)
	t.row("Run:", run.RunID)
	t.row("Tenant:", run.TenantID)
	snap := fmt.Sprintf("%s (%s", run.SnapshotID, countOf(res.Snapshot.PolicyCount(), "policy", "policies"))
	if run.PolicyVersion > 0 {
		snap += fmt.Sprintf(", policy version %d", run.PolicyVersion)
	}
	t.row("Snapshot:", snap+")")
	status := string(run.Status)
	if run.TerminationReason != "" {
		status += " (" + string(run.TerminationReason) + ")"
	}
	t.row("Status:", status)
	if run.StoppedAtStep != nil {
		t.row("Stopped at:", fmt.Sprintf("step %d by %s", *run.StoppedAtStep, run.ViolationPolicyID))
	}
	if run.IncidentID != "" {
		t.row("Incident:", run.IncidentID)
	}
	if run.Message != "" {
		t.row("Message:", run.Message)
	}
	if res.Retention != trace.RetentionFull && res.Retention != "" {
		t.row("Content:", "kept "+string(res.Retention))
	}
	if sh := res.Shadow; sh != nil {
		var policy *string
		var reason *prevention.RunTerminationReason
		if sh.WouldStopAtStep != nil {
			policy, reason = &sh.PolicyID, &sh.Reason
		}
		t.row("Shadow:", shadowText(sh.SnapshotID, sh.WouldStopAtStep, policy, reason, sh.Change))
		t.row("", fmt.Sprintf("%d of %d steps blocked by the shadow, %d decided otherwise than enforced", sh.Blocks, sh.Steps, sh.Differs))
	}
	t.row("Started:", fmtTime(start))
	if run.EndedAt != nil {
		t.row("Ended:", fmt.Sprintf("%s (%s)", fmtTime(*run.EndedAt), fmtOffset(*run.EndedAt, start)))
	}
	t.row("Totals:", fmt.Sprintf("%d steps, %d tokens, %s cents", run.StepCount, run.TotalTokens, fmtNum(run.TotalCostCents)))
	t.row("Chain:", fmt.Sprintf("%d records, head %s", run.ChainLength, run.HeadHash))
	if len(run.Labels) > 0 {
		keys := make([]string, 0, len(run.Labels))
		for k := range run.Labels {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			keys[i] = k + "=" + run.Labels[k]
		}
		t.row("Labels:", strings.Join(keys, " "))
	}
	if err := t.flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	steps := 0
	t = newTable(w)
	head := []string{"STEP", "AT", "TYPE", "TOOL/MODEL", "TOKENS", "COST", "STATUS", "DECISION", "POLICY", "DETAIL"}
	if res.Shadow != nil {
		head = append(head, "SHADOW")
	}
	t.row(head...)
	for _, r := range res.Records {
		if r.Kind != trace.KindStep {
			continue
		}
		steps++
		what := r.Tool
		if what == "" {
			what = r.Model
		}
		action, policy, detail := "", "", ""
		if r.Decision != nil {
			action = r.Decision.Action.String()
			policy, detail = r.Decision.PolicyID, describeDecision(*r.Decision)
		}
		if policy == "" && len(r.Findings) > 0 {
			f := r.Findings[0]
			policy = f.PolicyID
			detail = fmt.Sprintf("%s: %s", f.Enforcement, orDash(describeDecision(f)))
			if len(r.Findings) > 1 {
				detail += fmt.Sprintf(" (+%d more)", len(r.Findings)-1)
			}
		}
		mark := ""
		if r.Inflection {
			mark = "<- inflection point"
		}
		cells := []string{strconv.Itoa(r.StepIndex), fmtOffset(r.At, start), string(r.StepType), orDash(what),
			strconv.FormatInt(r.Tokens, 10), fmtNum(r.CostCents), string(r.Status), action,
			orDash(policy), orDash(detail)}
		if res.Shadow != nil {
			shadow := "-"
			if d := r.ShadowDecision; d != nil {
				shadow = d.Action.String()
				if d.PolicyID != "" {
					shadow += " by " + d.PolicyID
				}
			}
			cells = append(cells, shadow)
		}
		t.row(append(cells, mark)...)
	}
	if steps == 0 {
		t.row("(no steps)")
	}
	return t.flush()
}

func incidentsCmd() *command {
	var tenant string
	return &command{
		name:     "incidents",
		section:  "Runs",
		synopsis: "[--tenant T] [--json]",
		summary:  "list incidents, newest first",
		desc: `Lists the incidents created when a policy stopped a run, newest first: the run
and step, the policy and reason, severity and lifecycle status.

--json prints an array of {"incident_id","tenant_id","run_id","trace_id",
"policy_snapshot_id","policy_id","source","step_index","record_hash","reason",
"threshold","limit","observed","severity","status","title","message",
"created_at", ...}.`,
		examples: []string{
			"stopline incidents --tenant acme",
			"stopline incidents --json | jq -r '.[].incident_id'",
		},
		maxArgs: 0, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "only this tenant (`T`); default: every tenant")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			return withStore(ctx, e, true, func(st governance.Store) error {
				tenants, err := tenantsFor(ctx, st, tenant)
				if err != nil {
					return err
				}
				incs := []incident.Incident{}
				for _, t := range tenants {
					is, err := st.Incidents(ctx, governance.IncidentFilter{TenantID: t})
					if err != nil {
						return err
					}
					incs = append(incs, is...)
				}
				slices.SortStableFunc(incs, func(a, b incident.Incident) int { return cmp.Compare(b.CreatedAt.UnixNano(), a.CreatedAt.UnixNano()) })
				if e.jsonOut {
					return writeJSON(e.stdout, incs)
				}
				if len(incs) == 0 {
					fmt.Fprintf(e.stdout, "No incidents%s.\n", ofTenant(tenant))
					return nil
				}
				t := newTable(e.stdout)
				t.row("INCIDENT", "TENANT", "RUN", "STEP", "POLICY", "REASON", "SEVERITY", "STATUS", "CREATED")
				for _, i := range incs {
					t.row(i.ID, i.TenantID, i.RunID, strconv.Itoa(i.StepIndex), i.PolicyID, string(i.Reason),
						string(i.Severity), string(i.Status), fmtTime(i.CreatedAt))
				}
				return t.flush()
			})
		},
	}
}
