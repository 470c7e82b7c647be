package main_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunShadowAndRetention: a run with --shadow records the shadow's
// decisions and says where it would have stopped; --retention redacted
// stores the content policy's matches masked; show compares the two
// snapshots, and replay reproduces the shadow decisions and reports the
// step whose content was not kept.
func TestRunShadowAndRetention(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	shadow := filepath.Join(c.dir, "shadow.json")
	os.WriteFile(shadow, []byte(`{"tenant_id":"acme","thresholds":{"one":1},"policies":[
	  {"id":"one-step","kind":"budget","params":{"metric":"steps","threshold":"one"}}]}`), 0o644)

	var res struct {
		RunID         string `json:"run_id"`
		StoppedAtStep *int   `json:"stopped_at_step"`
		Retention     string `json:"retention"`
		Shadow        *struct {
			WouldStopAtStep *int    `json:"would_stop_at_step"`
			PolicyID        *string `json:"policy_id"`
			Reason          *string `json:"reason"`
			Change          string  `json:"change"`
		} `json:"shadow"`
	}
	c.okJSON(&res, "run", "--policies", policyFile("content"), "--steps", stepsFile("content"), "--shadow", shadow, "--retention", "redacted")
	sh := res.Shadow
	if res.StoppedAtStep == nil || *res.StoppedAtStep != 2 || res.Retention != "redacted" || sh == nil ||
		sh.WouldStopAtStep == nil || *sh.WouldStopAtStep != 1 || *sh.PolicyID != "one-step" || *sh.Reason != "budget_exceeded" || sh.Change != "stops_earlier" {
		t.Fatalf("run with a shadow: %+v, shadow %+v", res, sh)
	}

	var show struct {
		Retention string `json:"retention"`
		Shadow    *struct {
			WouldStopAtStep        *int   `json:"would_stop_at_step"`
			EnforcingStoppedAtStep *int   `json:"enforcing_stopped_at_step"`
			Change                 string `json:"change"`
		} `json:"shadow"`
		Records []struct {
			Kind           string          `json:"kind"`
			ShadowDecision json.RawMessage `json:"shadow_decision"`
			Content        *struct {
				Output string `json:"output"`
			} `json:"content"`
		} `json:"records"`
	}
	c.okJSON(&show, "show", res.RunID)
	if show.Retention != "redacted" || show.Shadow == nil || *show.Shadow.WouldStopAtStep != 1 || *show.Shadow.EnforcingStoppedAtStep != 2 {
		t.Errorf("show: retention %s, shadow %+v", show.Retention, show.Shadow)
	}
	if c := show.Records[3].Content; c == nil || c.Output != "It is [redacted]." {
		t.Errorf("show: the stopped step's content %+v, want the SSN masked", c)
	}
	for _, r := range show.Records {
		if r.Kind == "step" && len(r.ShadowDecision) == 0 {
			t.Errorf("show: a step without its shadow decision")
		}
	}
	if out := c.ok("show", res.RunID); !strings.Contains(out, "would have stopped the run at step 1 by one-step") || !strings.Contains(out, "SHADOW") {
		t.Errorf("show does not compare the shadow:\n%s", out)
	}
	c.ok("verify", res.RunID)

	var rep struct {
		Steps []struct {
			Outcome string `json:"outcome"`
			Shadow  struct {
				Outcome string `json:"outcome"`
			} `json:"shadow"`
		} `json:"steps"`
	}
	c.okJSON(&rep, "replay", res.RunID)
	var got []string
	for _, s := range rep.Steps {
		got = append(got, s.Outcome+"/"+s.Shadow.Outcome)
	}
	if want := "reproduced/reproduced reproduced/reproduced content_not_kept/reproduced"; strings.Join(got, " ") != want {
		t.Errorf("replay: %s, want %s", strings.Join(got, " "), want)
	}

	// hashes keeps no text; a bad retention is a usage error.
	c.okJSON(&res, "run", "--policies", policyFile("content"), "--steps", stepsFile("content"), "--retention", "hashes")
	if res.Retention != "hashes" || res.Shadow != nil {
		t.Errorf("run kept as hashes: %+v", res)
	}
	c.fails(2, []string{"--retention"}, "run", "--policies", policyFile("content"), "--steps", stepsFile("content"), "--retention", "some")
}
