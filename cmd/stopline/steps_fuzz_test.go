package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParseSteps: whatever a steps file holds, parsing never panics; what
// it accepts is a list of steps the runner would accept, in time order,
// each with its line number; what it refuses is named by file and line.
func FuzzParseSteps(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "steps", "*.jsonl"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"type":"llm_response","tokens":10,"cost_cents":0.5,"at_ms":100}` + "\n" + `{"type":"tool_call","tool":"shell"}`))
	f.Add([]byte("\n\n{\"type\":\"message\",\"metadata\":{\"k\":\"v\"}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		steps, err := parseSteps("fuzz.jsonl", bytes.NewReader(data))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "fuzz.jsonl: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		prevLine, prevAt := 0, int64(-1)
		for _, s := range steps {
			if err := s.in.Validate(); err != nil {
				t.Fatalf("accepted a step the runner refuses: %v", err)
			}
			if s.line <= prevLine || s.at.Milliseconds() < prevAt {
				t.Fatalf("steps out of order: line %d after %d, at %v after %dms", s.line, prevLine, s.at, prevAt)
			}
			prevLine, prevAt = s.line, s.at.Milliseconds()
		}
	})
}
