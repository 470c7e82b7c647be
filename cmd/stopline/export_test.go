package main_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestExportAndVerifyBundle(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res := c.runSteps("tool_allowlist", "tool_allowlist")
	inc := *res.IncidentID

	key := filepath.Join(c.dir, "export.key")
	var kg struct {
		PrivateKeyFile string `json:"private_key_file"`
		PublicKeyFile  string `json:"public_key_file"`
		KeyID          string `json:"key_id"`
	}
	c.okJSON(&kg, "keygen", "-o", key)
	if kg.PrivateKeyFile != key || kg.PublicKeyFile != key+".pub" || len(kg.KeyID) != 16 {
		t.Errorf("keygen: %+v", kg)
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("private key file: %v, mode %v", err, fi.Mode())
	}
	c.fails(1, []string{"export.key"}, "keygen", "-o", key) // never overwritten

	// Evidence, JSON (the default), signed, to a chosen file.
	bundle := filepath.Join(c.dir, "evidence.json")
	var ex struct {
		File       string `json:"file"`
		TenantID   string `json:"tenant_id"`
		BundleID   string `json:"bundle_id"`
		BundleType string `json:"bundle_type"`
		Format     string `json:"format"`
		BundleHash string `json:"bundle_hash"`
		RunID      string `json:"run_id"`
		IncidentID string `json:"incident_id"`
		KeyID      string `json:"key_id"`
		ExportedBy string `json:"exported_by"`
		Reason     string `json:"export_reason"`
	}
	c.okJSON(&ex, "export", "evidence", inc, "--sign-key", key, "--by", "alice", "--reason", "postmortem", "-o", bundle)
	if ex.File != bundle || ex.BundleType != "evidence" || ex.Format != "json" || ex.KeyID != kg.KeyID ||
		ex.IncidentID != inc || ex.RunID != res.RunID || ex.ExportedBy != "alice" || ex.Reason != "postmortem" {
		t.Errorf("export evidence: %+v", ex)
	}
	out := c.ok("verify-bundle", bundle, "--pubkey", key+".pub")
	if !strings.Contains(out, "verified") || !strings.Contains(out, kg.KeyID) || !strings.Contains(out, ex.BundleHash) {
		t.Errorf("verify-bundle:\n%s", out)
	}
	var vb struct {
		OK       bool     `json:"ok"`
		Signed   bool     `json:"signature_verified"`
		RunID    string   `json:"run_id"`
		Failures []string `json:"failures"`
	}
	c.okJSON(&vb, "verify-bundle", bundle, "--pubkey", key+".pub")
	if !vb.OK || !vb.Signed || vb.RunID != res.RunID || len(vb.Failures) != 0 {
		t.Errorf("verify-bundle --json: %+v", vb)
	}

	// Another key: the signature does not verify.
	other := filepath.Join(c.dir, "other.key")
	c.ok("keygen", "-o", other)
	r := c.run("verify-bundle", bundle, "--pubkey", other+".pub")
	if r.code != 1 || !strings.Contains(r.stderr, "signed") {
		t.Errorf("verify-bundle with another key: exit %d\n%s", r.code, r.stderr)
	}

	// One byte changed: exit 1, every failure on its own line.
	data, err := os.ReadFile(bundle)
	if err != nil {
		t.Fatal(err)
	}
	e, payload := readEnvelope(t, data)
	if e.PayloadType != "application/vnd.stopline.bundle+json; version=1" || len(e.Signatures) != 1 {
		t.Errorf("envelope: %q, %d signatures", e.PayloadType, len(e.Signatures))
	}
	changedPayload := bytes.Replace(payload, []byte(`"tool":"shell"`), []byte(`"tool":"shelm"`), 1)
	if bytes.Equal(changedPayload, payload) {
		t.Fatal("the bundle has no shell tool call to change")
	}
	changed := withPayload(t, e, changedPayload)
	bad := filepath.Join(c.dir, "changed.json")
	if err := os.WriteFile(bad, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	r = c.run("verify-bundle", bad, "--pubkey", key+".pub")
	if r.code != 1 || !strings.Contains(r.stderr, "changed.json") || !strings.Contains(r.stderr, "signature") || !strings.Contains(r.stderr, "chain record") {
		t.Errorf("verify-bundle of a changed bundle: exit %d\n%s", r.code, r.stderr)
	}
	for _, line := range strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n") {
		if !strings.HasPrefix(line, "stopline verify-bundle: ") {
			t.Errorf("stderr line %q", line)
		}
	}
	r = c.run("verify-bundle", bad, "--json")
	if err := json.Unmarshal([]byte(r.stdout), &vb); err != nil || r.code != 1 || vb.OK || len(vb.Failures) == 0 {
		t.Errorf("verify-bundle --json of a changed bundle: exit %d, %v, %+v", r.code, err, vb)
	}
	// The bundle hash from the export (or its PDF) proves the file is the
	// one issued, signed or not.
	out = c.ok("verify-bundle", bundle, "--hash", ex.BundleHash)
	if !strings.Contains(out, "verified") {
		t.Errorf("verify-bundle --hash:\n%s", out)
	}
	c.fails(1, []string{"bundle hash", "not the bundle that was issued"}, "verify-bundle", bundle, "--hash", strings.Repeat("0", 64))
	c.fails(2, []string{"--hash"}, "verify-bundle", bundle, "--hash", "abc")

	// SOC2 (PDF by default, to its own name in the current directory) and
	// the debrief as JSON on stdout.
	var soc2 struct {
		File string `json:"file"`
	}
	c.okJSON(&soc2, "export", "soc2", inc, "--from", "2000-01-01", "--to", "2100-01-01")
	if !strings.HasPrefix(soc2.File, "soc2-"+inc+"-BND-") || !strings.HasSuffix(soc2.File, ".pdf") {
		t.Errorf("soc2 file %q", soc2.File)
	}
	if pdf, err := os.ReadFile(filepath.Join(c.dir, soc2.File)); err != nil || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Errorf("soc2 pdf: %v", err)
	}
	debrief := c.ok("export", "debrief", inc, "--format", "json", "-o", "-")
	denv, dpayload := readEnvelope(t, []byte(debrief))
	var db struct {
		RiskLevel string `json:"risk_level"`
	}
	if err := json.Unmarshal(dpayload, &db); err != nil || db.RiskLevel == "" || len(denv.Signatures) != 0 {
		t.Errorf("debrief envelope: %v, %d signatures\n%.300s", err, len(denv.Signatures), debrief)
	}
	unsigned := filepath.Join(c.dir, "debrief.json")
	if err := os.WriteFile(unsigned, []byte(debrief), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := c.ok("verify-bundle", unsigned); !strings.Contains(out, "not checked") {
		t.Errorf("verify-bundle without --pubkey:\n%s", out)
	}

	c.fails(1, []string{"INC-0000000000000000", "not found"}, "export", "evidence", "INC-0000000000000000")
	c.fails(2, []string{"--format"}, "export", "evidence", inc, "--format", "docx")
	c.fails(2, []string{"--from and --to"}, "export", "soc2", inc, "--from", "2025-01-01")
	c.fails(2, []string{"--json"}, "export", "evidence", inc, "-o", "-", "--json")
	c.fails(2, []string{"unknown flag --from"}, "export", "debrief", inc, "--from", "2025-01-01")
}

// TestExportFormatFromExtension: without --format the file's extension
// says the format; a --format that contradicts it is refused, so that
// evidence.pdf never holds JSON.
func TestExportFormatFromExtension(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	inc := *c.runSteps("tool_allowlist", "tool_allowlist").IncidentID
	pdf := filepath.Join(c.dir, "evidence.pdf")
	c.ok("export", "evidence", inc, "-o", pdf)
	if data, err := os.ReadFile(pdf); err != nil || !bytes.HasPrefix(data, []byte("%PDF-")) {
		t.Errorf("evidence.pdf does not hold a PDF (%v): %.20q", err, data)
	}
	js := filepath.Join(c.dir, "debrief.JSON")
	c.ok("export", "debrief", inc, "-o", js)
	if data, err := os.ReadFile(js); err != nil || !json.Valid(data) {
		t.Errorf("debrief.JSON does not hold JSON (%v)", err)
	}
	c.fails(2, []string{"--format json", "evidence2.pdf"}, "export", "evidence", inc, "--format", "json", "-o", filepath.Join(c.dir, "evidence2.pdf"))
	if _, err := os.Stat(filepath.Join(c.dir, "evidence2.pdf")); err == nil {
		t.Error("a refused export wrote its file")
	}
	// Another extension: the command's default, or --format.
	bin := filepath.Join(c.dir, "evidence.bin")
	c.ok("export", "evidence", inc, "-o", bin)
	if data, _ := os.ReadFile(bin); !json.Valid(data) {
		t.Error("evidence.bin: want the default format, JSON")
	}
}
