package main_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyCheck(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	data, err := os.ReadFile(policyFile("agent"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.dir, "agent.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	golden(t, "policy-check", c.ok("policy", "check", "agent.json"))
	fromFile := strings.Replace(c.ok("policy", "check", "agent.json"), "agent.json: valid", "stdin: valid", 1)
	if out := c.runStdin(string(data), "policy", "check", "-"); out.stdout != fromFile {
		t.Errorf("policy check - (stdin):\n%s\nwant:\n%s", out.stdout, fromFile)
	}

	var res map[string]any
	c.okJSON(&res, "policy", "check", policyFile("agent"))
	for _, k := range []string{"snapshot_id", "content_hash", "tenant_id", "policy_count"} {
		if _, ok := res[k]; !ok {
			t.Errorf("--json lacks %q: %v", k, res)
		}
	}
	if len(res) != 4 {
		t.Errorf("--json has %d fields, want 4: %v", len(res), res)
	}
	if id, _ := res["snapshot_id"].(string); !strings.HasPrefix(id, "SNAP-") || !strings.HasPrefix(res["content_hash"].(string), id[5:]) {
		t.Errorf("snapshot id %v does not begin the content hash %v", res["snapshot_id"], res["content_hash"])
	}
	c.fails(1, []string{"invalid_kind.json", `policy "mystery"`, "kind"}, "policy", "check", policyFile("invalid_kind"))
	c.fails(1, []string{"nope.json"}, "policy", "check", "nope.json")
	// Checking stores nothing and needs no database.
	c.fails(1, []string{"no database"}, "policy", "history")
}

// TestPolicyPublishHistory publishes two versions, lists them, and runs
// without --policies under the active one.
func TestPolicyPublishHistory(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	golden(t, "policy-publish", c.ok("policy", "publish", policyFile("agent"), "--by", "alice", "--note", "first policies"))
	var v struct {
		TenantID    string `json:"tenant_id"`
		Version     int    `json:"version"`
		SnapshotID  string `json:"snapshot_id"`
		ContentHash string `json:"content_hash"`
		PublishedBy string `json:"published_by"`
		PublishedAt string `json:"published_at"`
		Note        string `json:"note"`
	}
	c.okJSON(&v, "policy", "publish", policyFile("agent_v2"), "--note", "tighter token budget")
	if v.Version != 2 || v.TenantID != "acme" || v.PublishedBy != "tester" || v.Note != "tighter token budget" || v.PublishedAt == "" {
		t.Errorf("published %+v, want version 2 of acme by $USER (tester)", v)
	}
	golden(t, "policy-history", c.ok("policy", "history", "--tenant", "acme"))
	var hist []map[string]any
	c.okJSON(&hist, "policy", "history")
	if len(hist) != 2 {
		t.Fatalf("history: %d versions, want 2", len(hist))
	}
	if hist[1]["snapshot_id"] != v.SnapshotID {
		t.Errorf("history[1] is %v, want %s", hist[1]["snapshot_id"], v.SnapshotID)
	}
	c.okJSON(&hist, "policy", "history", "--tenant", "nobody")
	if len(hist) != 0 {
		t.Errorf("history of an unknown tenant: %v", hist)
	}

	// Without --policies the run takes the active version (2: max 2000 tokens).
	var res runResult
	c.okJSON(&res, "run", "--tenant", "acme", "--steps", stepsFile("budget_tokens"))
	if res.SnapshotID != v.SnapshotID {
		t.Errorf("run bound to %s, want the active %s", res.SnapshotID, v.SnapshotID)
	}
	if res.Status != "succeeded" {
		// 400 tokens a step: 400, 800, 1200, 1600 are all within 2000.
		t.Errorf("run %s, want succeeded under the 2000-token budget", res.Status)
	}
	var show struct {
		Run struct {
			PolicyVersion int `json:"policy_version"`
		} `json:"run"`
	}
	c.okJSON(&show, "show", res.RunID)
	if show.Run.PolicyVersion != 2 {
		t.Errorf("run's policy_version %d, want 2", show.Run.PolicyVersion)
	}
	c.fails(1, []string{"no active policy", "nobody"}, "run", "--tenant", "nobody", "--steps", stepsFile("budget_tokens"))
}
