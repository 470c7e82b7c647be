package main_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyBundleRefusesDuplicateKeys: a bundle file whose JSON holds a
// forged first copy of a duplicated key (the payload, which is the whole
// bundle, or the payload type) verifies for encoding/json, which keeps
// the last copy; a person, a DSSE library in another language or jq reads
// the first. verify-bundle refuses it, with the right key or without.
func TestVerifyBundleRefusesDuplicateKeys(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res := c.runSteps("tool_allowlist", "tool_allowlist")
	key := filepath.Join(c.dir, "export.key")
	c.ok("keygen", "-o", key)
	bundle := filepath.Join(c.dir, "evidence.json")
	c.ok("export", "evidence", *res.IncidentID, "--sign-key", key, "-o", bundle)
	c.ok("verify-bundle", bundle, "--pubkey", key+".pub")
	data, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	_, payload := readEnvelope(t, data)
	forgedPayload := bytes.Replace(payload, []byte(`"policy_id":"tools"`), []byte(`"policy_id":"cost"`), 1)
	forged, _ := json.Marshal(base64.StdEncoding.EncodeToString(forgedPayload))
	for name, forged := range map[string][]byte{
		"payload":     bytes.Replace(data, []byte(`{"payload":`), append(append([]byte(`{"payload":`), forged...), []byte(`,"payload":`)...), 1),
		"payloadType": bytes.Replace(data, []byte(`"payloadType":`), []byte(`"payloadType":"application/vnd.in-toto+json","payloadType":`), 1),
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(c.dir, "forged-"+name+".json")
			if err := os.WriteFile(path, forged, 0o644); err != nil {
				t.Fatal(err)
			}
			c.fails(1, []string{"forged-" + name + ".json", "duplicated key", `"` + name + `"`}, "verify-bundle", path, "--pubkey", key+".pub")
			c.fails(1, []string{"duplicated key"}, "verify-bundle", path)
		})
	}
}

// TestVerifyBundleCheckpoint: verify-bundle --checkpoint-key checks the
// checkpoint a bundle carries against the bundle's own chain and the
// checkpoint key; a bundle without one fails it; another key fails it.
func TestVerifyBundleCheckpoint(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	cpKey := filepath.Join(c.dir, "cp.key")
	other := filepath.Join(c.dir, "other.key")
	c.ok("keygen", "-o", cpKey, "--checkpoint", "test-key")
	c.ok("keygen", "-o", other, "--checkpoint", "test-key")
	key := filepath.Join(c.dir, "export.key")
	c.ok("keygen", "-o", key)
	var res runResult
	c.okJSON(&res, "run", "--policies", policyFile("tool_allowlist"), "--steps", stepsFile("tool_allowlist"), "--checkpoint-key", cpKey)
	bundle := filepath.Join(c.dir, "evidence.json")
	c.ok("export", "evidence", *res.IncidentID, "--sign-key", key, "-o", bundle)

	var vb struct {
		OK         bool `json:"ok"`
		Checkpoint *struct {
			Verified bool   `json:"verified"`
			Size     int    `json:"size"`
			KeyName  string `json:"key_name"`
		} `json:"checkpoint"`
	}
	c.okJSON(&vb, "verify-bundle", bundle, "--pubkey", key+".pub", "--checkpoint-key", cpKey+".pub")
	if !vb.OK || vb.Checkpoint == nil || !vb.Checkpoint.Verified || vb.Checkpoint.Size < 3 || vb.Checkpoint.KeyName != "test-key" {
		t.Errorf("verify-bundle --checkpoint-key: %+v %+v", vb, vb.Checkpoint)
	}
	if out := c.ok("verify-bundle", bundle, "--checkpoint-key", cpKey+".pub"); !strings.Contains(out, "Checkpoint:") {
		t.Errorf("verify-bundle --checkpoint-key:\n%s", out)
	}
	c.fails(1, []string{"checkpoint"}, "verify-bundle", bundle, "--pubkey", key+".pub", "--checkpoint-key", other+".pub")

	// A run without checkpoints: nothing to check, which --checkpoint-key refuses.
	plain := c.runSteps("tool_allowlist", "tool_allowlist")
	noCP := filepath.Join(c.dir, "no-checkpoint.json")
	c.ok("export", "evidence", *plain.IncidentID, "--sign-key", key, "-o", noCP)
	c.ok("verify-bundle", noCP, "--pubkey", key+".pub")
	c.fails(1, []string{"carries no checkpoint"}, "verify-bundle", noCP, "--pubkey", key+".pub", "--checkpoint-key", cpKey+".pub")
}
