package bundle_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: the package an auditor imports needs nothing but the
// standard library, golang.org/x, and the module's domain packages; in
// particular not governance, a store, or the PDF library. And package
// export, which builds bundles, does not link the PDF library either.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	allowed := map[string]bool{
		"github.com/stopline/stopline/export/bundle": true,
		"github.com/stopline/stopline/snapshot":      true,
		"github.com/stopline/stopline/trace":         true,
		"github.com/stopline/stopline/incident":      true,
		"github.com/stopline/stopline/prevention":    true,
		// prevention's incremental content matcher, which it needs.
		"github.com/stopline/stopline/prevention/internal/streammatch": true,
		"github.com/stopline/stopline/internal/strictjson":             true,
		"github.com/stopline/stopline/internal/checkpoint":             true,
		"github.com/stopline/stopline/internal/translog":               true,
	}
	for _, dep := range goList(t, ".") {
		first, _, _ := strings.Cut(dep, "/")
		switch {
		case !strings.Contains(first, "."), strings.HasPrefix(dep, "golang.org/x/"), allowed[dep],
			// The domain packages' own internals (prevention's incremental
			// matcher) are theirs: standard library only.
			strings.HasPrefix(dep, "github.com/stopline/stopline/prevention/internal/"):
		default:
			t.Errorf("export/bundle depends on %s", dep)
		}
	}
	for _, pkg := range []string{"..", "../httpapi"} {
		for _, dep := range goList(t, pkg) {
			if strings.HasPrefix(dep, "codeberg.org/go-pdf/") {
				t.Errorf("%s depends on %s: the PDF renderer is a plug-in (export.WithRenderer)", pkg, dep)
			}
		}
	}
}

func goList(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Skipf("go list: %v", err)
	}
	return strings.Fields(string(out))
}
