package main_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type whatIfOutcome struct {
	Status        string `json:"status"`
	StoppedAtStep *int   `json:"stopped_at_step"`
	PolicyID      string `json:"policy_id"`
	Reason        string `json:"reason"`
}

type whatIfResult struct {
	TenantID    string `json:"tenant_id"`
	CandidateID string `json:"candidate_snapshot_id"`
	Runs        []struct {
		RunID     string        `json:"run_id"`
		Change    string        `json:"change"`
		Recorded  whatIfOutcome `json:"recorded"`
		Candidate whatIfOutcome `json:"candidate"`
		Saved     *struct {
			Steps     int     `json:"steps"`
			Tokens    int64   `json:"tokens"`
			CostCents float64 `json:"cost_cents"`
		} `json:"saved"`
		CostNote string `json:"cost_note"`
		Error    string `json:"error"`
	} `json:"runs"`
	Totals whatIfTotals `json:"totals"`
}

type whatIfTotals struct {
	Runs          int `json:"runs"`
	Unchanged     int `json:"unchanged"`
	WouldStop     int `json:"would_stop"`
	WouldContinue int `json:"would_continue"`
	StopsEarlier  int `json:"stops_earlier"`
	StopsLater    int `json:"stops_later"`
	NotEvaluated  int `json:"not_evaluated"`
	Flagged       int `json:"flagged"`
	CostUnknown   int `json:"cost_unknown"`
	Saved         struct {
		Steps     int     `json:"steps"`
		Tokens    int64   `json:"tokens"`
		CostCents float64 `json:"cost_cents"`
	} `json:"saved"`
}

// whatIfRow is a run's outcome in short: change, recorded and candidate
// stop ("step/policy" or status), saved "steps/tokens/cents".
type whatIfRow struct{ Change, Recorded, Candidate, Saved string }

func (r whatIfResult) rows(names map[string]string) map[string]whatIfRow {
	stop := func(o whatIfOutcome) string {
		if o.StoppedAtStep == nil {
			return o.Status
		}
		return strings.Join([]string{itoa(*o.StoppedAtStep), o.PolicyID, o.Reason}, "/")
	}
	out := map[string]whatIfRow{}
	for _, run := range r.Runs {
		row := whatIfRow{Change: run.Change, Recorded: stop(run.Recorded), Candidate: stop(run.Candidate)}
		if s := run.Saved; s != nil {
			b, _ := json.Marshal(s)
			row.Saved = string(b)
		} else if run.CostNote != "" {
			row.Saved = "unknown"
		}
		out[names[run.RunID]] = row
	}
	return out
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

// TestWhatIf records four runs and tries a stricter and a looser policy
// file on them: per run, the change, where and why the candidate stops
// it, what that saves; the totals; the filters.
func TestWhatIf(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	names := map[string]string{}
	add := func(name, policies, steps string) string {
		res := c.runSteps(policies, steps)
		names[res.RunID] = name
		return res.RunID
	}
	add("agent", "agent", "agent")                            // stopped at 7 by token-budget
	completes := add("completes", "agent", "completes")       // succeeded, 200 tokens
	shell := add("shell", "tool_allowlist", "tool_allowlist") // stopped at 3 by tools
	tokens := add("tokens", "budget_tokens", "budget_tokens") // stopped at 2 by token-budget

	var res whatIfResult
	c.okJSON(&res, "whatif", "--policies", policyFile("whatif_stricter"))
	want := map[string]whatIfRow{
		"agent":     {"stops_earlier", "7/token-budget/budget_exceeded", "1/token-budget/budget_exceeded", `{"steps":6,"tokens":4800,"cost_cents":96}`},
		"completes": {"would_stop", "succeeded", "0/token-budget/budget_exceeded", `{"steps":3,"tokens":100,"cost_cents":1}`},
		"shell":     {"unchanged", "3/tools/policy_block", "3/tools/policy_block", ""},
		"tokens":    {"stops_earlier", "2/token-budget/budget_exceeded", "0/token-budget/budget_exceeded", `{"steps":2,"tokens":800,"cost_cents":0}`},
	}
	if diff := cmp.Diff(want, res.rows(names)); diff != "" {
		t.Errorf("stricter (-want +got):\n%s", diff)
	}
	wantTotals := whatIfTotals{Runs: 4, Unchanged: 1, WouldStop: 1, StopsEarlier: 2}
	wantTotals.Saved.Steps, wantTotals.Saved.Tokens, wantTotals.Saved.CostCents = 11, 5700, 97
	if diff := cmp.Diff(wantTotals, res.Totals); diff != "" || res.TenantID != "acme" || !strings.HasPrefix(res.CandidateID, "SNAP-") {
		t.Errorf("stricter totals (-want +got):\n%s", diff)
	}
	golden(t, "whatif", c.ok("whatif", "--policies", policyFile("whatif_stricter")))

	res = whatIfResult{}
	c.okJSON(&res, "whatif", "--policies", policyFile("whatif_looser"))
	want = map[string]whatIfRow{
		"agent":     {"would_continue", "7/token-budget/budget_exceeded", "continues", "unknown"},
		"completes": {"unchanged", "succeeded", "succeeded", ""},
		"shell":     {"would_continue", "3/tools/policy_block", "continues", "unknown"},
		"tokens":    {"would_continue", "2/token-budget/budget_exceeded", "continues", "unknown"},
	}
	if diff := cmp.Diff(want, res.rows(names)); diff != "" {
		t.Errorf("looser (-want +got):\n%s", diff)
	}
	if res.Totals.WouldContinue != 3 || res.Totals.CostUnknown != 3 || res.Totals.Unchanged != 1 {
		t.Errorf("looser totals %v", res.Totals)
	}

	// Filters: status, and created in [since, until).
	res = whatIfResult{}
	c.okJSON(&res, "whatif", "--policies", policyFile("whatif_stricter"), "--status", "succeeded")
	if len(res.Runs) != 1 || res.Runs[0].RunID != completes {
		t.Errorf("--status succeeded: %+v", res.Runs)
	}
	created := func(id string) string {
		var show struct {
			Run struct {
				CreatedAt time.Time `json:"created_at"`
			} `json:"run"`
		}
		c.okJSON(&show, "show", id)
		return show.Run.CreatedAt.Format(time.RFC3339Nano)
	}
	res = whatIfResult{}
	c.okJSON(&res, "whatif", "--policies", policyFile("whatif_stricter"), "--since", created(completes), "--until", created(tokens))
	if len(res.Runs) != 2 || res.Runs[0].RunID != shell || res.Runs[1].RunID != completes {
		t.Errorf("--since/--until: %+v", res.Runs)
	}
	res = whatIfResult{}
	c.okJSON(&res, "whatif", "--policies", policyFile("whatif_stricter"), "--since", "2000-01-01", "--until", "2000-01-02")
	if len(res.Runs) != 0 || res.Runs == nil {
		t.Errorf("no runs in 2000: %+v", res.Runs)
	}

	c.fails(2, []string{"--policies"}, "whatif")
	c.fails(2, []string{"--since", "RFC 3339"}, "whatif", "--policies", policyFile("whatif_stricter"), "--since", "yesterday")
	c.fails(2, []string{"--status"}, "whatif", "--policies", policyFile("whatif_stricter"), "--status", "done")
	c.fails(1, []string{"--tenant", "globex"}, "whatif", "--policies", policyFile("whatif_stricter"), "--tenant", "globex")

	// A run altered behind the store's back is not evaluated; the others are.
	tamper(t, c.db, `UPDATE records SET body = CAST(replace(CAST(body AS TEXT), '"tokens":400', '"tokens":40') AS BLOB) WHERE run_id = ? AND seq = 2`, tokens)
	r := c.run("whatif", "--policies", policyFile("whatif_stricter"), "--json")
	res = whatIfResult{}
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil || r.code != 1 {
		t.Fatalf("exit %d, %v", r.code, err)
	}
	checkFailure(t, r, 1, []string{tokens, "not evaluated", "record 2"}, nil)
	if res.Totals.NotEvaluated != 1 || res.Totals.Runs != 4 {
		t.Errorf("totals %v", res.Totals)
	}
}
