// Black-box tests of the stopline command: the binary is built once, in
// TestMain, and every test runs it with os/exec and checks its exit code,
// its stdout (JSON fields, golden text) and its stderr (one-line errors).
package main_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.golden from the current output")

// bin is the path of the stopline binary under test.
var bin string

func TestMain(m *testing.M) {
	flag.Parse()
	dir, err := os.MkdirTemp("", "stopline-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "stopline")
	args := []string{"build", "-o", bin}
	if raceEnabled {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building stopline: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is one run of the binary.
type result struct {
	stdout, stderr string
	code           int
}

// cli runs the binary in dir with a clean environment (no STOPLINE_DB,
// STOPLINE_LOG_LEVEL, OTEL_* or TRACEPARENT; USER=tester) plus env.
type cli struct {
	t   *testing.T
	dir string
	env []string
	db  string // passed as --db when not empty
}

// newCLI returns a cli with its own temporary directory and database.
func newCLI(t *testing.T) *cli {
	t.Helper()
	dir := t.TempDir()
	return &cli{t: t, dir: dir, db: filepath.Join(dir, "test.db")}
}

func (c *cli) run(args ...string) result {
	c.t.Helper()
	return c.runStdin("", args...)
}

func (c *cli) runStdin(stdin string, args ...string) result {
	c.t.Helper()
	if c.db != "" {
		args = append([]string{"--db", c.db}, args...)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = c.dir
	cmd.Env = append(cleanEnv(), c.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("running stopline %s: %v", strings.Join(args, " "), err)
	}
	return result{stdout: out.String(), stderr: errb.String(), code: code}
}

func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "STOPLINE_DB=") || strings.HasPrefix(kv, "USER=") || strings.HasPrefix(kv, "GORACE=") ||
			strings.HasPrefix(kv, "STOPLINE_LOG_LEVEL=") || strings.HasPrefix(kv, "OTEL_") || strings.HasPrefix(kv, "TRACEPARENT=") ||
			strings.HasPrefix(kv, "TRACESTATE=") {
			continue
		}
		env = append(env, kv)
	}
	// The race detector sleeps a second at exit by default; halt_on_error
	// makes a race fail the command, and so the test.
	return append(env, "USER=tester", "GORACE=atexit_sleep_ms=0 halt_on_error=1")
}

// ok runs the command and fails the test unless it exits 0 with nothing
// on stderr.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 || r.stderr != "" {
		c.t.Fatalf("stopline %s: exit %d, stderr:\n%s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// okJSON runs the command with --json and decodes its stdout into v.
func (c *cli) okJSON(v any, args ...string) {
	c.t.Helper()
	out := c.ok(append(args, "--json")...)
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		c.t.Fatalf("stopline %s --json: %v\n%s", strings.Join(args, " "), err, out)
	}
	if dec.More() {
		c.t.Fatalf("stopline %s --json: more than one JSON document:\n%s", strings.Join(args, " "), out)
	}
}

// fails runs the command and checks its exit code and that stderr is one
// line containing every want.
func (c *cli) fails(code int, want []string, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	checkFailure(c.t, r, code, want, args)
	return r
}

func checkFailure(t *testing.T, r result, code int, want []string, args []string) {
	t.Helper()
	if r.code != code {
		t.Fatalf("stopline %s: exit %d, want %d; stdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, code, r.stdout, r.stderr)
	}
	if n := strings.Count(r.stderr, "\n"); n != 1 || !strings.HasSuffix(r.stderr, "\n") {
		t.Errorf("stopline %s: stderr is %d lines, want one:\n%s", strings.Join(args, " "), n, r.stderr)
	}
	if !strings.HasPrefix(r.stderr, "stopline") {
		t.Errorf("stopline %s: stderr does not start with \"stopline\": %q", strings.Join(args, " "), r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stopline %s: stderr %q does not contain %q", strings.Join(args, " "), r.stderr, w)
		}
	}
}

func policyFile(kind string) string {
	return mustAbs(filepath.Join("testdata", "policies", kind+".json"))
}

func stepsFile(kind string) string {
	return mustAbs(filepath.Join("testdata", "steps", kind+".jsonl"))
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		panic(err)
	}
	return a
}

// runResult is the --json output of `stopline run`.
type runResult struct {
	RunID             string           `json:"run_id"`
	TenantID          string           `json:"tenant_id"`
	SnapshotID        string           `json:"snapshot_id"`
	Status            string           `json:"status"`
	TerminationReason string           `json:"termination_reason"`
	StoppedAtStep     *int             `json:"stopped_at_step"`
	ViolationPolicyID *string          `json:"violation_policy_id"`
	IncidentID        *string          `json:"incident_id"`
	StepsRecorded     int              `json:"steps_recorded"`
	Warnings          []map[string]any `json:"warnings"`
}

// runSteps runs a steps file under a policy file and returns the result.
func (c *cli) runSteps(policies, steps string) runResult {
	c.t.Helper()
	var res runResult
	c.okJSON(&res, "run", "--policies", policyFile(policies), "--steps", stepsFile(steps))
	return res
}

// masks make output that holds generated ids, times and chain hashes
// comparable with a golden file. Each replacement has the length of what
// it replaces, so that aligned columns stay aligned.
var masks = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`\b(RUN|INC|TRC|BND)-[0-9a-f]{16}\b`), "$1-XXXXXXXXXXXXXXXX"},
	{regexp.MustCompile(`\b\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z`), "YYYY-MM-DDThh:mm:ss.sssZ"},
	{regexp.MustCompile(`\b[0-9a-f]{64}\b`), strings.Repeat("h", 64)},
}

func mask(s string) string {
	for _, m := range masks {
		s = m.re.ReplaceAllString(s, m.repl)
	}
	return s
}

// golden compares got with testdata/golden/name.golden (after masking),
// or rewrites the file with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	got = mask(got)
	path := filepath.Join("testdata", "golden", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s: output differs from %s (-want +got):\n%s", name, path, diff)
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	out := c.ok("--version")
	if !strings.HasPrefix(out, "stopline ") || !strings.Contains(out, "go1.") {
		t.Errorf("--version: %q", out)
	}
	var v struct {
		Version   string `json:"version"`
		GoVersion string `json:"go_version"`
	}
	c.okJSON(&v, "--version")
	if v.Version == "" || !strings.HasPrefix(v.GoVersion, "go1.") {
		t.Errorf("--version --json: %+v", v)
	}
}
