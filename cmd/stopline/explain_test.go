package main_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestExplain(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res := c.runSteps("agent", "agent")
	id := res.RunID

	var show struct {
		Run struct {
			StartedAt time.Time `json:"started_at"`
		} `json:"run"`
	}
	c.okJSON(&show, "show", id)

	tests := []struct {
		name, at string
		state    string
		step     int // last step, -1 for none
		seq      int // the record that holds the decision
		decisive string
	}{
		{"start", "+0", "continuing", 0, 1, ""},
		{"between steps", "+1200", "continuing", 2, 3, ""},
		{"warning", "+1500", "continuing", 4, 5, "no-shell"},
		{"monitor", "+1700", "continuing", 5, 6, "step-limit"},
		// Once stopped, the decision is held by the inflection record
		// (seq 8), not by the run_end record after it.
		{"stopped", "+4000", "stopped", 7, 8, "token-budget"},
		{"long after", "+3600000", "stopped", 7, 8, "token-budget"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ex struct {
				RunID    string    `json:"run_id"`
				At       time.Time `json:"at"`
				State    string    `json:"state"`
				Why      string    `json:"why"`
				LastStep *struct {
					Index int `json:"step_index"`
				} `json:"last_step"`
				Decisive *struct {
					PolicyID string `json:"policy_id"`
				} `json:"decisive_decision"`
				Record struct {
					Seq      int    `json:"seq"`
					Hash     string `json:"hash"`
					Verified bool   `json:"verified"`
				} `json:"record"`
			}
			c.okJSON(&ex, "explain", id, "--at", tt.at)
			if ex.State != tt.state || ex.LastStep == nil || ex.LastStep.Index != tt.step || ex.Record.Seq != tt.seq || !ex.Record.Verified {
				t.Errorf("explain --at %s: state %s, last step %+v, record %+v; want %s, step %d, record %d",
					tt.at, ex.State, ex.LastStep, ex.Record, tt.state, tt.step, tt.seq)
			}
			got := ""
			if ex.Decisive != nil {
				got = ex.Decisive.PolicyID
			}
			if got != tt.decisive {
				t.Errorf("decisive policy %q, want %q", got, tt.decisive)
			}

			// The same instant in RFC 3339 explains the same thing.
			at := ex.At.Format(time.RFC3339Nano)
			var ex2 struct {
				At     time.Time `json:"at"`
				Why    string    `json:"why"`
				Record struct {
					Hash string `json:"hash"`
				} `json:"record"`
			}
			c.okJSON(&ex2, "explain", id, "--at", at)
			if !ex2.At.Equal(ex.At) || ex2.Why != ex.Why || ex2.Record.Hash != ex.Record.Hash {
				t.Errorf("--at %s and --at %s differ: %q / %q", tt.at, at, ex.Why, ex2.Why)
			}
		})
	}

	golden(t, "explain-continuing", c.ok("explain", id, "--at", "+1500"))
	golden(t, "explain-stopped", c.ok("explain", "--at", "+4000", id))
	// RFC 3339 gives the same text as +MS (the flag may come first).
	at := show.Run.StartedAt.Add(4 * time.Second).Format(time.RFC3339Nano)
	if a, b := c.ok("explain", id, "--at", "+4000"), c.ok("explain", "--at", at, id); a != b {
		t.Errorf("+4000 and %s explain differently:\n%s\n%s", at, a, b)
	}

	before := show.Run.StartedAt.Add(-time.Second).Format(time.RFC3339)
	c.fails(1, []string{"before", id}, "explain", id, "--at", before)
	c.fails(2, []string{"--at"}, "explain", id)
	c.fails(2, []string{"--at", "+MS"}, "explain", id, "--at", "+1.5s")
	c.fails(2, []string{"RFC 3339"}, "explain", id, "--at", "yesterday")
	c.fails(1, []string{"RUN-0000000000000000", "not found"}, "explain", "RUN-0000000000000000", "--at", "+0")
}

// TestExplainHeadroomJSON: --json gives, for each policy with a threshold,
// its observed value against its limit at the last step, and the policy
// closest to stopping the run.
func TestExplainHeadroomJSON(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	id := c.runSteps("agent", "agent").RunID
	type headroom struct {
		PolicyID    string   `json:"policy_id"`
		Kind        string   `json:"kind"`
		Threshold   string   `json:"threshold"`
		Limit       float64  `json:"limit"`
		Observed    *float64 `json:"observed"`
		Unit        string   `json:"unit"`
		Fraction    *float64 `json:"fraction"`
		Enforcement string   `json:"enforcement"`
		Finding     *struct {
			Action string `json:"action"`
		} `json:"finding"`
		Text string `json:"text"`
	}
	var ex struct {
		Headroom []headroom `json:"headroom"`
		Closest  string     `json:"closest"`
		Why      string     `json:"why"`
	}
	out := c.ok("explain", id, "--at", "+1700", "--json")
	if err := json.Unmarshal([]byte(out), &ex); err != nil {
		t.Fatal(err)
	}
	f := func(v float64) *float64 { return &v }
	want := []headroom{
		{PolicyID: "token-budget", Kind: "budget", Threshold: "max_tokens", Limit: 5000, Observed: f(1200), Unit: "tokens", Fraction: f(0.24), Enforcement: "block", Text: "tokens 1200 of 5000 (24%)"},
		{PolicyID: "cost-budget", Kind: "budget", Threshold: "max_cost_cents", Limit: 100, Observed: f(24), Unit: "cost_cents", Fraction: f(0.24), Enforcement: "block", Text: "cost_cents 24 of 100 (24%)"},
		{PolicyID: "step-limit", Kind: "budget", Threshold: "max_steps", Limit: 5, Observed: f(6), Unit: "steps", Fraction: f(1.2), Enforcement: "monitor",
			Finding: &struct {
				Action string `json:"action"`
			}{"block"}, Text: "steps 6 of 5 (120%)"},
	}
	if diff := cmp.Diff(want, ex.Headroom); diff != "" || ex.Closest != "token-budget" {
		t.Errorf("closest %q; headroom (-want +got):\n%s\n%s", ex.Closest, diff, out)
	}
	// At the first step (a message), nothing is spent yet.
	if err := json.Unmarshal([]byte(c.ok("explain", id, "--at", "+0", "--json")), &ex); err != nil || len(ex.Headroom) != 3 ||
		*ex.Headroom[0].Observed != 0 || ex.Headroom[2].Text != "steps 1 of 5 (20%)" {
		t.Fatalf("%v %+v", err, ex)
	}
}
