package main_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stopline/stopline/trace"
)

type replayResult struct {
	RunID         string `json:"run_id"`
	Records       int    `json:"records"`
	NotReplayable []struct {
		PolicyID string `json:"policy_id"`
		Why      string `json:"why"`
	} `json:"not_replayable"`
	Steps []struct {
		StepIndex  int    `json:"step_index"`
		Outcome    string `json:"outcome"`
		Difference string `json:"difference"`
		Stored     struct {
			Decision struct {
				Action   string `json:"action"`
				PolicyID string `json:"policy_id"`
			} `json:"decision"`
		} `json:"stored"`
		Recomputed *struct {
			Decision struct {
				Action   string `json:"action"`
				PolicyID string `json:"policy_id"`
			} `json:"decision"`
		} `json:"recomputed"`
	} `json:"steps"`
	Totals struct {
		Steps, Reproduced, Partial, Mismatch int
	} `json:"totals"`
}

// TestReplay replays runs stopped by every kind the command runs, and a
// run with warnings and monitor-mode findings: every decision is
// reproduced (exit 0).
func TestReplay(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, kind := range []string{"budget_tokens", "budget_cost", "budget_steps", "rate_limit", "timeout", "content",
		"tool_allowlist", "tool_denylist", "expression"} {
		res := c.runSteps(kind, kind)
		var rep replayResult
		c.okJSON(&rep, "replay", res.RunID)
		last := rep.Steps[len(rep.Steps)-1]
		if rep.Totals.Reproduced != res.StepsRecorded || rep.Totals.Steps != res.StepsRecorded || len(rep.NotReplayable) != 0 ||
			last.Recomputed == nil || last.Recomputed.Decision.Action != "block" || last.Recomputed.Decision.PolicyID != *res.ViolationPolicyID {
			t.Errorf("%s: %+v", kind, rep)
		}
	}
	res := c.runSteps("agent", "agent")
	golden(t, "replay", c.ok("replay", res.RunID))
	var rep replayResult
	c.okJSON(&rep, "replay", res.RunID)
	if rep.Totals.Reproduced != 8 || rep.Records != 10 || rep.RunID != res.RunID {
		t.Errorf("agent run: %+v", rep)
	}

	c.fails(2, []string{"missing RUN_ID"}, "replay")
	c.fails(1, []string{"RUN-0000000000000000", "not found"}, "replay", "RUN-0000000000000000")
}

// TestReplayForgedDecision: a decision changed in the database with the
// whole chain recomputed passes verify; replay names the step (exit 1).
// Changed without recomputing, nothing is replayed (exit 1).
func TestReplayForgedDecision(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res := c.runSteps("agent", "agent")
	// Step 4 (seq 5): the no-shell warning now cites another message.
	rewriteChain(t, c.db, res.RunID, 5, func(r *trace.Record) { r.Findings[0].Message = "nothing to see" })
	c.ok("verify", res.RunID)

	r := c.fails(1, []string{res.RunID, "step 4 not reproduced", "nothing to see", "shell commands need review"}, "replay", res.RunID)
	if !strings.Contains(r.stdout, "4     mismatch") || !strings.Contains(r.stdout, "1 of 8 decisions differ") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	r = c.run("replay", res.RunID, "--json")
	var rep replayResult
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.code != 1 {
		t.Fatalf("--json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if rep.Totals.Mismatch != 1 || rep.Steps[4].Outcome != "mismatch" || !strings.Contains(rep.Steps[4].Difference, "finding 1") {
		t.Errorf("--json: %+v", rep)
	}

	other := c.runSteps("budget_tokens", "budget_tokens")
	tamper(t, c.db, `UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '"tokens":400', '"tokens":40') AS BLOB) WHERE run_id = ? AND seq = 2`, other.RunID)
	c.fails(1, []string{other.RunID, "record 2"}, "replay", other.RunID)
}
