package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunStopsAtStep runs a steps file under each built-in policy kind and
// checks that the run stops at the expected step, with the kind's reason,
// the policy's id and an incident, and that the inflection point is that
// step.
func TestRunStopsAtStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind   string // testdata/policies/KIND.json and testdata/steps/KIND.jsonl
		step   int
		reason string
		policy string
	}{
		// 400+400+400 > 1000 at step 2.
		{"budget_tokens", 2, "budget_exceeded", "token-budget"},
		// 5+5 = 10 is at the limit, allowed; 10.5 > 10 at step 2.
		{"budget_cost", 2, "budget_exceeded", "cost-budget"},
		// max_steps 3: steps 0-2 pass, step 3 is blocked.
		{"budget_steps", 3, "budget_exceeded", "step-limit"},
		// 3 a minute: steps 1-3 at 70-72 s are 3 in the window; step 4 at 73 s is the 4th.
		{"rate_limit", 4, "rate_limited", "pace"},
		// 10 s: step 2 at exactly 10 s passes; step 3 at 10.001 s is blocked.
		{"timeout", 3, "timeout", "wall-clock"},
		// An SSN in the output of step 2.
		{"content", 2, "policy_block", "no-ssn"},
		// A call of a tool not on the list at step 3.
		{"tool_allowlist", 3, "policy_block", "tools"},
		// The denied tool's result at step 1 is not a call; its call at step 2 is.
		{"tool_denylist", 2, "policy_block", "no-shell"},
		// A CEL expression on type, tool and metadata: only step 3 matches all.
		{"expression", 3, "policy_block", "no-prod-writes"},
	}
	for _, tt := range tests {
		t.Run(tt.kind, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t)
			res := c.runSteps(tt.kind, tt.kind)
			if res.Status != "failed_policy" || res.TerminationReason != tt.reason {
				t.Errorf("status %s (%s), want failed_policy (%s)", res.Status, res.TerminationReason, tt.reason)
			}
			if res.StoppedAtStep == nil || *res.StoppedAtStep != tt.step {
				t.Errorf("stopped_at_step %v, want %d", deref(res.StoppedAtStep), tt.step)
			}
			if res.ViolationPolicyID == nil || *res.ViolationPolicyID != tt.policy {
				t.Errorf("violation_policy_id %v, want %s", deref(res.ViolationPolicyID), tt.policy)
			}
			if res.IncidentID == nil || !strings.HasPrefix(*res.IncidentID, "INC-") {
				t.Errorf("incident_id %v, want an INC- id", deref(res.IncidentID))
			}
			if res.StepsRecorded != tt.step+1 {
				t.Errorf("steps_recorded %d, want %d", res.StepsRecorded, tt.step+1)
			}
			if res.TenantID != "acme" || !strings.HasPrefix(res.SnapshotID, "SNAP-") || !strings.HasPrefix(res.RunID, "RUN-") {
				t.Errorf("run %s of tenant %s, snapshot %s", res.RunID, res.TenantID, res.SnapshotID)
			}

			var show struct {
				Inflection *struct {
					StepIndex int    `json:"step_index"`
					PolicyID  string `json:"policy_id"`
				} `json:"inflection"`
			}
			c.okJSON(&show, "show", res.RunID)
			if show.Inflection == nil || show.Inflection.StepIndex != tt.step || show.Inflection.PolicyID != tt.policy {
				t.Errorf("show: inflection %+v, want step %d by %s", show.Inflection, tt.step, tt.policy)
			}
			c.ok("verify", res.RunID)
		})
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestRunCompletes(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.ok("run", "--policies", policyFile("agent"), "--steps", stepsFile("completes"), "--json")
	// Null, not absent, when no policy stopped the run.
	for _, field := range []string{`"stopped_at_step": null`, `"violation_policy_id": null`, `"incident_id": null`, `"warnings": []`} {
		if !strings.Contains(out, field) {
			t.Errorf("output lacks %s:\n%s", field, out)
		}
	}
	res := c.runSteps("agent", "completes")
	if res.Status != "succeeded" || res.TerminationReason != "completed" || res.StepsRecorded != 4 {
		t.Errorf("got %s (%s) after %d steps, want succeeded (completed) after 4", res.Status, res.TerminationReason, res.StepsRecorded)
	}
}

// TestRunGolden checks the human-readable output of a run with warnings,
// monitor-mode findings and a stop, and of show, runs and incidents.
func TestRunGolden(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.ok("run", "--policies", policyFile("agent"), "--steps", stepsFile("agent"))
	golden(t, "run", out)

	var runs []runResult
	c.okJSON(&runs, "runs")
	if len(runs) != 1 {
		t.Fatalf("runs: %d, want 1", len(runs))
	}
	id := runs[0].RunID
	golden(t, "show", c.ok("show", id))
	c.ok("run", "--policies", policyFile("agent"), "--steps", stepsFile("completes"))
	golden(t, "runs", c.ok("runs"))
	golden(t, "incidents", c.ok("incidents"))
}

func TestRunWarnings(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res := c.runSteps("agent", "agent")
	if res.StoppedAtStep == nil || *res.StoppedAtStep != 7 || res.TerminationReason != "budget_exceeded" {
		t.Fatalf("stopped at %v (%s), want 7 (budget_exceeded)", deref(res.StoppedAtStep), res.TerminationReason)
	}
	type w struct{ step, policy, enforcement string }
	var got []w
	for _, x := range res.Warnings {
		got = append(got, w{string(x["step_index"].(json.Number)), x["policy_id"].(string), x["enforcement"].(string)})
	}
	want := []w{{"4", "no-shell", "warn"}, {"5", "step-limit", "monitor"}, {"6", "step-limit", "monitor"}}
	if len(got) != len(want) {
		t.Fatalf("warnings %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("warning %d: %v, want %v", i, got[i], want[i])
		}
	}
}

// TestMalformedStepsFile checks that a bad line is an error naming the
// line, and that nothing is recorded: no run, no snapshot.
func TestMalformedStepsFile(t *testing.T) {
	t.Parallel()
	good := `{"type":"llm_response","tokens":10,"at_ms":0}` + "\n"
	tests := []struct {
		name  string
		steps string
		want  []string
	}{
		{"unknown field", good + good + `{"type":"message","tokns":5}` + "\n", []string{"line 3", `unknown field "tokns"`}},
		{"malformed JSON", good + `{"type":"message",` + "\n" + good, []string{"line 2", "malformed JSON"}},
		{"unknown type", good + "\n" + `{"type":"thought"}` + "\n", []string{"line 3", `type "thought"`}},
		{"missing type", `{"tokens":3}` + "\n", []string{"line 1", `"type" is missing`}},
		{"negative tokens", good + `{"type":"llm_response","tokens":-1}`, []string{"line 2", "tokens -1 is negative"}},
		{"tokens not a number", good + `{"type":"llm_response","tokens":"many"}`, []string{"line 2", "tokens: want a whole number"}},
		{"time goes back", good + `{"type":"message","at_ms":500}` + "\n" + `{"type":"message","at_ms":400}`, []string{"line 3", "at_ms 400 is before"}},
		{"two values", good + good + good + `{"type":"message"} {"type":"message"}`, []string{"line 4", "more than one JSON value"}},
		{"not an object", `["llm_response"]`, []string{"line 1", "want a JSON object"}},
		{"empty", "\n\n", []string{"no steps"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t)
			c.runSteps("budget_tokens", "budget_tokens") // one run before
			path := filepath.Join(c.dir, "bad.jsonl")
			if err := os.WriteFile(path, []byte(tt.steps), 0o644); err != nil {
				t.Fatal(err)
			}
			r := c.fails(1, append(tt.want, "bad.jsonl"), "run", "--policies", policyFile("agent"), "--steps", path)
			if r.stdout != "" {
				t.Errorf("stdout %q, want nothing", r.stdout)
			}
			var runs []runResult
			c.okJSON(&runs, "runs")
			if len(runs) != 1 {
				t.Errorf("%d runs after a bad steps file, want the 1 from before", len(runs))
			}
			// The agent policy set was not stored either: a run under the
			// tenant's active version finds none.
			c.fails(1, []string{"no active policy"}, "run", "--tenant", "acme", "--steps", stepsFile("completes"))
		})
	}
}

func TestRunStepsFromStdin(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	steps, err := os.ReadFile(stepsFile("budget_steps"))
	if err != nil {
		t.Fatal(err)
	}
	r := c.runStdin(string(steps), "run", "--steps", "-", "--policies", policyFile("budget_steps"), "--json")
	if r.code != 0 || !strings.Contains(r.stdout, `"stopped_at_step": 3`) {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", r.code, r.stdout, r.stderr)
	}
	r = c.runStdin(`{"type":"bogus"}`, "run", "--steps", "-", "--policies", policyFile("budget_steps"))
	checkFailure(t, r, 1, []string{"stdin: line 1"}, nil)
}

func TestRunInvalidPolicyFile(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.fails(1, []string{"invalid_kind.json", `"mystery"`, "kind"}, "run", "--policies", policyFile("invalid_kind"), "--steps", stepsFile("completes"))
	c.fails(1, []string{"--tenant", `"acme"`}, "run", "--policies", policyFile("agent"), "--tenant", "other", "--steps", stepsFile("completes"))
	if _, err := os.Stat(c.db); err == nil {
		t.Errorf("a run refused before it started created the database")
	}
}

// TestDatabaseSelection checks --db, $STOPLINE_DB and ./stopline.db.
func TestDatabaseSelection(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.db = ""
	c.ok("run", "--policies", policyFile("budget_steps"), "--steps", stepsFile("budget_steps"))
	if _, err := os.Stat(filepath.Join(c.dir, "stopline.db")); err != nil {
		t.Errorf("default database: %v", err)
	}
	env := filepath.Join(c.dir, "env.db")
	c.env = []string{"STOPLINE_DB=" + env}
	c.ok("run", "--policies", policyFile("budget_steps"), "--steps", stepsFile("budget_steps"))
	if _, err := os.Stat(env); err != nil {
		t.Errorf("$STOPLINE_DB: %v", err)
	}
	// --db wins over $STOPLINE_DB, before or after the command.
	flagDB := filepath.Join(c.dir, "flag.db")
	c.ok("--db", flagDB, "run", "--policies", policyFile("budget_steps"), "--steps", stepsFile("budget_steps"))
	c.ok("runs", "--db", flagDB)
	var runs []runResult
	c.okJSON(&runs, "runs")
	if len(runs) != 1 {
		t.Errorf("%d runs in $STOPLINE_DB, want 1", len(runs))
	}
	// A command that only reads does not create a database.
	c.fails(1, []string{"no database at", "missing.db"}, "runs", "--db", filepath.Join(c.dir, "missing.db"))
	// Postgres is selected by URL; the password never shows.
	r := c.fails(1, []string{"postgres://"}, "runs", "--db", "postgres://user:s3cret@localhost/stopline")
	if strings.Contains(r.stderr, "s3cret") {
		t.Errorf("the password is in the error: %s", r.stderr)
	}
}
