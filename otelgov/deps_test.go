package otelgov_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencies: otelgov links the OpenTelemetry API, never the SDK,
// an exporter or gRPC: the program that imports it chooses those.
func TestDependencies(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatal(err)
	}
	api := false
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"go.opentelemetry.io/otel/sdk", "go.opentelemetry.io/otel/exporters", "google.golang.org/grpc", "go.opentelemetry.io/contrib"} {
			if dep == banned || strings.HasPrefix(dep, banned+"/") {
				t.Errorf("otelgov depends on %s", dep)
			}
		}
		api = api || dep == "go.opentelemetry.io/otel/trace"
	}
	if !api {
		t.Error("go list does not show the OpenTelemetry API: the test is looking at the wrong package")
	}
}
