package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// shadowText says where a shadow snapshot would have stopped a run.
func shadowText(id string, at *int, policy *string, reason *prevention.RunTerminationReason, change governance.WhatIfChange) string {
	if at == nil {
		return fmt.Sprintf("%s would not have stopped the run (%s)", id, change)
	}
	return fmt.Sprintf("%s would have stopped the run at step %d by %s (%s) (%s)", id, *at, *policy, *reason, change)
}

// runResult is what `stopline run --json` prints.
type runResult struct {
	RunID             string                          `json:"run_id"`
	TenantID          string                          `json:"tenant_id"`
	SnapshotID        string                          `json:"snapshot_id"`
	Status            governance.RunStatus            `json:"status"`
	TerminationReason prevention.RunTerminationReason `json:"termination_reason"`
	StoppedAtStep     *int                            `json:"stopped_at_step"`
	ViolationPolicyID *string                         `json:"violation_policy_id"`
	IncidentID        *string                         `json:"incident_id"`
	StepsRecorded     int                             `json:"steps_recorded"`
	Warnings          []warning                       `json:"warnings"`
	// Retention is how the run kept its steps' content.
	Retention trace.Retention `json:"retention"`
	// Shadow compares the run's shadow snapshot (--shadow) with the
	// enforcing one; null without a shadow.
	Shadow *runShadow `json:"shadow"`
}

// runShadow is where a run's shadow snapshot would have stopped it: the
// step, the policy and the reason, null when it would not have.
type runShadow struct {
	SnapshotID      string                           `json:"snapshot_id"`
	WouldStopAtStep *int                             `json:"would_stop_at_step"`
	PolicyID        *string                          `json:"policy_id"`
	Reason          *prevention.RunTerminationReason `json:"reason"`
	Blocks          int                              `json:"blocks"`
	Change          governance.WhatIfChange          `json:"change"`
}

func shadowResult(o governance.ShadowOutcome) *runShadow {
	s := &runShadow{SnapshotID: o.SnapshotID, WouldStopAtStep: o.WouldStopAtStep, Blocks: o.Blocks, Change: o.Change}
	if o.WouldStopAtStep != nil {
		id, reason := o.PolicyID, o.Reason
		s.PolicyID, s.Reason = &id, &reason
	}
	return s
}

// warning is a finding that did not stop the run: a warn-mode policy, a
// monitor-mode would-block, or a hook's Warn.
type warning struct {
	StepIndex int `json:"step_index"`
	prevention.Decision
}

func runCmd() *command {
	var policies, steps, tenant, cpKey, shadow, retention string
	return &command{
		name:     "run",
		section:  "Runs",
		synopsis: "[--policies FILE] --steps FILE [--tenant T] [--shadow FILE] [--retention full|redacted|hashes] [--log-level LEVEL] [--json]",
		summary:  "govern a scripted run: replay JSONL steps through the real runner and store",
		desc: `Runs a governed run of scripted steps through the real runner and store, to try
a policy set on a transcript before deploying it. The run is bound to the
policy file given with --policies (stored as a snapshot), or, without it, to
the active policy version of --tenant (see stopline policy publish).

The steps file has one JSON object per line (blank lines are skipped):

  {"type":"llm_response","model":"gpt-4o","tokens":812,"cost_cents":1.2,"output":"...","at_ms":0}
  {"type":"tool_call","tool":"search","input":"{\"q\":\"...\"}","at_ms":1500}
  {"type":"tool_result","tool":"search","output":"...","at_ms":2100}

Fields: type (llm_response, tool_call, tool_result, message; required), tokens,
cost_cents, model, tool, input, output, metadata (an object of strings, seen by
expression policies as step.metadata) and at_ms: the step's time in
milliseconds after the run's start (absent: the previous step's time; the first
step defaults to 0). The run's clock is driven by at_ms, so timeout and
rate_limit policies behave as they would have in the recorded run.

The whole file is read and checked before the run starts: a bad line exits 1
with an error naming its line, and nothing is recorded. A run stopped by a
policy is a success (exit 0): the output says where and why. Steps after the
blocked one are not reported. With --checkpoint-key, a signed checkpoint of
the run's chain is stored when the run ends.

--shadow FILE evaluates a second policy file (of the same tenant) beside the
enforcing one at every step: its decisions are recorded in the chain and
never stop the run, so a stricter policy can be tried on real traffic before
it is published. The output says where the shadow would have stopped the run,
by which policy and why; stopline show compares the two at every step.

--retention says how the steps' content is kept: full (the default), redacted
(every match of the content policies masked as [redacted]) or hashes (only the
content hash). The chain binds the content's hash whatever is kept.

--json prints {"run_id","tenant_id","snapshot_id","status","termination_reason",
"stopped_at_step","violation_policy_id","incident_id","steps_recorded",
"warnings","retention","shadow"}; stopped_at_step, violation_policy_id and incident_id are null when
no policy stopped the run; warnings lists the findings that did not stop it
(warn- and monitor-mode policies), each {"step_index","action","reason",
"policy_id","source","threshold","limit","observed","message","enforcement"}.
shadow is null without --shadow, else {"snapshot_id","would_stop_at_step",
"policy_id","reason","blocks","change"}: would_stop_at_step, policy_id and
reason are null when the shadow would not have stopped the run; change is
unchanged, would_stop, stops_earlier or would_continue (as in stopline whatif).

With --log-level info or debug, what the runner does is logged on stderr
(never the steps' text). With OTEL_TRACES_EXPORTER or OTEL_METRICS_EXPORTER
(otlp, console), the run is exported as OpenTelemetry spans and metrics;
TRACEPARENT makes its span join a trace (see cmd/stopline's documentation).`,
		examples: []string{
			"stopline run --policies policies.json --steps transcript.jsonl",
			"stopline run --steps transcript.jsonl --tenant acme --json",
			"stopline run --policies policies.json --shadow stricter.json --steps transcript.jsonl",
		},
		maxArgs: 0, store: true, json: true, logs: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&policies, "policies", "", "policy `FILE` to run under; default: the tenant's active version")
			fs.StringVar(&steps, "steps", "", "steps `FILE`, JSONL (required; - for stdin)")
			fs.StringVar(&tenant, "tenant", "", "tenant `T` (required without --policies; must match the policy file's tenant)")
			fs.StringVar(&shadow, "shadow", "", "shadow policy `FILE`: evaluated and recorded at every step, never enforced")
			fs.StringVar(&retention, "retention", "", "how step content is kept: `full`, redacted or hashes (default full)")
			fs.StringVar(&cpKey, "checkpoint-key", "", "sign a checkpoint of the run's chain when it ends, with this checkpoint signer key `FILE` (stopline keygen --checkpoint)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if steps == "" {
				return usagef("--steps is required")
			}
			if policies == "" && tenant == "" {
				return usagef("give --policies FILE, or --tenant T to use the tenant's active policy version")
			}
			tel, err := startTelemetry(ctx, e, "run") // telemetry.go: --log-level, OTEL_*
			if err != nil {
				return err
			}
			defer tel.shutdown(ctx)
			opts, err := tel.runnerOptions()
			if err != nil {
				return err
			}
			ctx = tel.runContext(ctx)
			var snap *snapshot.PolicySnapshot
			if policies != "" {
				var err error
				if snap, err = loadPolicies(e, policies); err != nil {
					return err
				}
				if tenant != "" && tenant != snap.TenantID() {
					return fmt.Errorf("--tenant %q, but %s is the policy set of tenant %q", tenant, policies, snap.TenantID())
				}
			}
			var keep trace.Retention
			if retention != "" {
				if keep, err = trace.ParseRetention(retention); err != nil {
					return usagef("--retention %q: want full, redacted or hashes", retention)
				}
			}
			var shadowSnap *snapshot.PolicySnapshot
			if shadow != "" {
				if shadowSnap, err = loadPolicies(e, shadow); err != nil {
					return err
				}
				want := tenant
				if snap != nil {
					want = snap.TenantID()
				}
				if shadowSnap.TenantID() != want {
					return fmt.Errorf("--shadow %s is the policy set of tenant %q, the run's tenant is %q", shadow, shadowSnap.TenantID(), want)
				}
			}
			script, err := readSteps(e, steps)
			if err != nil {
				return err
			}
			if cpKey != "" {
				signer, err := readCheckpointSigner(cpKey)
				if err != nil {
					return err
				}
				opts = append(opts, governance.WithCheckpoints(signer, 0))
			}
			return withStore(ctx, e, false, func(st governance.Store) error {
				return runScript(ctx, e, st, opts, governance.StartOptions{
					TenantID: tenant, Snapshot: snap, Shadow: shadowSnap, Retention: keep,
					Labels: map[string]string{"steps_file": stepsLabel(steps)},
				}, script)
			})
		},
	}
}

// stepsLabel names the steps file in the run's labels.
func stepsLabel(path string) string {
	if path == "-" {
		return "stdin"
	}
	return filepath.Base(path)
}

func readSteps(e *env, path string) ([]scriptedStep, error) {
	if path == "-" {
		return parseSteps("stdin", e.stdin)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseSteps(path, f)
}

// runScript governs one run of the scripted steps, with a clock that
// reads the run's start plus each step's at_ms.
func runScript(ctx context.Context, e *env, st governance.Store, ropts []governance.Option, opts governance.StartOptions, script []scriptedStep) error {
	start := time.Now().UTC().Truncate(time.Millisecond)
	clock := governance.NewFakeClock(start)
	runner, err := governance.NewRunner(st, append(ropts, governance.WithClock(clock), governance.WithKinds(commandKinds))...)
	if err != nil {
		return err
	}
	warnings := []warning{}
	prog := newProgress(e, "steps run:")
	var theRun *governance.Run
	rec, err := runner.Run(ctx, opts, func(ctx context.Context, run *governance.Run) error {
		theRun = run
		for i, s := range script {
			clock.Set(start.Add(s.at))
			res, err := run.Step(ctx, s.in)
			for _, f := range res.Evaluation.Findings {
				if f.Action == prevention.Block && f.Enforcement == snapshot.EnforceBlock {
					continue // the decision that stopped the run, not a warning
				}
				warnings = append(warnings, warning{StepIndex: res.Index, Decision: f})
			}
			if err != nil {
				return err
			}
			prog.update(i + 1)
		}
		return nil
	})
	prog.done()
	if rec.RunID == "" {
		return err // the run could not start; nothing was recorded
	}
	// Stopped by a policy (and recorded) is a success; a failed check, a
	// failed write or an interruption is not.
	var v *governance.Violation
	stopped := errors.As(err, &v) && !errors.Is(err, governance.ErrRecordFailed)
	if err != nil && !stopped {
		err = fmt.Errorf("run %s ended %s (%s): %w", rec.RunID, rec.Status, rec.TerminationReason, err)
	} else {
		err = nil
	}
	res := runResult{
		RunID: rec.RunID, TenantID: rec.TenantID, SnapshotID: rec.SnapshotID,
		Status: rec.Status, TerminationReason: rec.TerminationReason,
		StoppedAtStep: rec.StoppedAtStep, StepsRecorded: rec.StepCount, Warnings: warnings,
		Retention: trace.RetentionFull,
	}
	if theRun != nil {
		res.Retention = theRun.Retention()
		if o, ok := theRun.Shadow(); ok {
			res.Shadow = shadowResult(o)
		}
	}
	if rec.ViolationPolicyID != "" {
		res.ViolationPolicyID = &rec.ViolationPolicyID
	}
	if rec.IncidentID != "" {
		res.IncidentID = &rec.IncidentID
	}
	var werr error
	if e.jsonOut {
		werr = writeJSON(e.stdout, res)
	} else {
		werr = printRunResult(e.stdout, rec, res, len(script), v)
	}
	return errors.Join(err, werr)
}

func printRunResult(w io.Writer, rec governance.RunRecord, res runResult, inFile int, v *governance.Violation) error {
	t := newTable(w)
	t.row("Run:", rec.RunID)
	t.row("Tenant:", rec.TenantID)
	snap := rec.SnapshotID
	if rec.PolicyVersion > 0 {
		snap += fmt.Sprintf(" (policy version %d)", rec.PolicyVersion)
	}
	t.row("Snapshot:", snap)
	t.row("Status:", fmt.Sprintf("%s (%s)", rec.Status, rec.TerminationReason))
	if v != nil {
		t.row("Stopped at:", fmt.Sprintf("step %d by %s %s", v.StepIndex, v.Decision.Source, v.PolicyID()))
		if d := describeDecision(v.Decision); d != "" {
			t.row("Why:", d)
		}
		t.row("Incident:", rec.IncidentID)
	}
	t.row("Steps:", fmt.Sprintf("%d recorded of %d in the file, %d tokens, %s cents", rec.StepCount, inFile, rec.TotalTokens, fmtNum(rec.TotalCostCents)))
	if res.Retention != trace.RetentionFull {
		t.row("Content:", "kept "+string(res.Retention))
	}
	if sh := res.Shadow; sh != nil {
		t.row("Shadow:", shadowText(sh.SnapshotID, sh.WouldStopAtStep, sh.PolicyID, sh.Reason, sh.Change))
	}
	t.row("Warnings:", strconv.Itoa(len(res.Warnings)))
	for _, wn := range res.Warnings {
		t.row("", fmt.Sprintf("step %d: %s %s (%s): %s", wn.StepIndex, wn.Source, wn.PolicyID, wn.Enforcement, orDash(describeDecision(wn.Decision))))
	}
	return t.flush()
}
