package bundle_test

import (
	"fmt"
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

// An evidence bundle says how close each step came to each limit; Verify
// has derived it again from the chain and the snapshot.
func ExampleOutlook() {
	pub, _ := bundle.ReadPublicKeyFile("testdata/evidence.pub")
	data, _ := os.ReadFile("testdata/evidence.json")
	v, err := bundle.Verify(data, pub)
	if err != nil {
		fmt.Println(err)
		return
	}
	ev := v.Bundle.(*bundle.Evidence)
	s := ev.StepHeadroom[len(ev.StepHeadroom)-1]
	for _, p := range s.Policies {
		fmt.Printf("step %d: %s %g of %g %s\n", s.StepIndex, p.PolicyID, *p.Observed, p.Limit, p.Unit)
	}
	fmt.Println("closest to stopping the run:", s.Closest)
	fmt.Println("a shadow snapshot:", ev.Shadow != nil)
	// Output:
	// step 3: step-limit 4 of 50 steps
	// step 3: cost-budget 4.25 of 100 cost_cents
	// closest to stopping the run: step-limit
	// a shadow snapshot: false
}
