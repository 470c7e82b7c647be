package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// versionInfo is what `stopline --version --json` prints.
type versionInfo struct {
	Version   string `json:"version"`
	Revision  string `json:"revision,omitempty"`
	Time      string `json:"time,omitempty"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
}

// buildVersion reads the version from the build information the Go
// toolchain embeds: the module version for `go install
// github.com/stopline/stopline/cmd/stopline@v1.2.3`, or "(devel)" with the
// VCS revision for a build from a checkout.
func buildVersion() versionInfo {
	v := versionInfo{Version: "(unknown)", GoVersion: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Revision = s.Value
		case "vcs.time":
			v.Time = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	return v
}

func printVersion(e *env) error {
	v := buildVersion()
	if e.jsonOut {
		return writeJSON(e.stdout, v)
	}
	line := "stopline " + v.Version
	if v.Revision != "" {
		rev := v.Revision
		if len(rev) > 12 {
			rev = rev[:12]
		}
		line += " (" + rev
		if v.Modified {
			line += ", modified"
		}
		line += ")"
	}
	_, err := fmt.Fprintf(e.stdout, "%s %s\n", line, v.GoVersion)
	return err
}
