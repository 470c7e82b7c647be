package bundle_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stopline/stopline/export/bundle"
)

// TestBundleBeforeOutlookVerifies: an evidence bundle made before
// bundles carried headroom and a shadow comparison still verifies.
func TestBundleBeforeOutlookVerifies(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "evidence-before-outlook.json"))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := bundle.ReadPublicKeyFile(filepath.Join("testdata", "evidence.pub"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := bundle.Verify(data, pub)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if b := v.Bundle.(*bundle.Evidence); b.StepHeadroom != nil || b.Shadow != nil {
		t.Errorf("an old bundle decodes with an outlook: %+v", b.Outlook)
	}
}
