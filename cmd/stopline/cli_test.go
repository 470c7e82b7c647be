package main_test

import (
	"regexp"
	"strings"
	"testing"
)

// commandsOf lists the commands of the overview `stopline --help` prints.
func commandsOf(t *testing.T, overview string) []string {
	t.Helper()
	var cmds []string
	in := false
	for _, line := range strings.Split(overview, "\n") {
		switch {
		case strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " "):
			in = !strings.HasPrefix(line, "Global flags") && !strings.HasPrefix(line, "Examples")
		case in && strings.HasPrefix(line, "  "):
			name, _, _ := strings.Cut(strings.TrimSpace(line), "   ")
			cmds = append(cmds, name)
		}
	}
	return cmds
}

// TestHelp checks that `stopline --help` lists every command and that
// `stopline CMD --help` explains every flag and gives an example.
func TestHelp(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.db = ""
	overview := c.ok("--help")
	if h := c.ok("help"); h != overview {
		t.Errorf("stopline help differs from stopline --help")
	}
	cmds := commandsOf(t, overview)
	want := []string{"policy check", "policy publish", "policy history", "whatif", "run", "runs", "show", "incidents", "explain", "outbox list", "outbox retry",
		"approvals", "approve", "deny", "kill", "release", "kills", "verify", "replay", "checkpoint", "log head", "export evidence", "export soc2", "export debrief", "verify-bundle", "keygen", "serve", "token create", "token list", "token revoke", "migrate"}
	if strings.Join(cmds, ",") != strings.Join(want, ",") {
		t.Errorf("overview lists %q, want %q", cmds, want)
	}
	for _, s := range []string{"--db PATH", "$STOPLINE_DB", "./stopline.db", "--json", "postgres://", "Exit status"} {
		if !strings.Contains(overview, s) {
			t.Errorf("overview does not mention %q", s)
		}
	}
	flagLine := regexp.MustCompile(`^  (--?[a-z-]+)( [A-Z_:]+)?\s{3,}(\S.*)$`)
	for _, name := range cmds {
		t.Run(name, func(t *testing.T) {
			args := append(strings.Fields(name), "--help")
			out := c.ok(args...)
			if !strings.HasPrefix(out, "Usage: stopline "+name+" ") {
				t.Errorf("help does not begin with its usage line:\n%s", out)
			}
			if !strings.Contains(out, "\nExamples:\n  stopline "+name) {
				t.Errorf("help has no example:\n%s", out)
			}
			_, flags, _ := strings.Cut(out, "\nFlags (before or after the arguments):\n")
			flags, _, _ = strings.Cut(flags, "\n\n")
			n := 0
			for _, line := range strings.Split(flags, "\n") {
				if line == "" {
					continue
				}
				n++
				if !flagLine.MatchString(line) {
					t.Errorf("flag line without an explanation: %q", line)
				}
			}
			usage, _, _ := strings.Cut(out, "\n")
			for _, m := range regexp.MustCompile(`[\s\[](--?[a-z][a-z-]*)`).FindAllStringSubmatch(usage, -1) {
				f := m[1]
				if !strings.Contains(flags, "  "+f+" ") {
					t.Errorf("usage names %s, which the flags do not explain", f)
				}
			}
			if n == 0 && name != "policy check" {
				t.Errorf("no flags listed:\n%s", out)
			}
			// -h works too, after positional arguments as well.
			if h := c.ok(append(strings.Fields(name), "X", "-h")...); h != out {
				t.Errorf("-h after an argument differs from --help")
			}
		})
	}
	if out := c.ok("policy", "--help"); !strings.Contains(out, "policy publish") {
		t.Errorf("policy --help:\n%s", out)
	}
	if out := c.ok("help", "explain"); !strings.HasPrefix(out, "Usage: stopline explain") {
		t.Errorf("help explain:\n%s", out)
	}
}

// TestUsageErrors: exit 2 and one line on stderr, stdout empty.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	tests := []struct {
		args []string
		want []string
	}{
		{nil, []string{"no command", "stopline --help"}},
		{[]string{"frobnicate"}, []string{`unknown command "frobnicate"`}},
		{[]string{"policy"}, []string{"needs a subcommand", "check"}},
		{[]string{"policy", "burn"}, []string{`unknown command "policy burn"`}},
		{[]string{"export"}, []string{"needs a subcommand", "soc2"}},
		{[]string{"policy", "check"}, []string{"missing FILE", "stopline policy check --help"}},
		{[]string{"policy", "check", "a.json", "b.json"}, []string{`unexpected argument "b.json"`}},
		{[]string{"runs", "--frobnicate"}, []string{"unknown flag --frobnicate"}},
		{[]string{"runs", "--status", "exploded"}, []string{`--status "exploded"`}},
		{[]string{"runs", "--tenant"}, []string{"flag needs a value: --tenant"}},
		{[]string{"run", "--policies", "p.json"}, []string{"--steps is required"}},
		{[]string{"run", "--steps", "s.jsonl"}, []string{"--policies", "--tenant"}},
		{[]string{"show"}, []string{"missing RUN_ID"}},
		{[]string{"explain", "RUN-1"}, []string{"--at TIME is required"}},
		{[]string{"verify", "RUN-1", "RUN-2"}, []string{`unexpected argument "RUN-2"`}},
		{[]string{"keygen"}, []string{"-o PREFIX is required"}},
		{[]string{"checkpoint", "RUN-1"}, []string{"--key FILE is required"}},
		{[]string{"export", "evidence"}, []string{"missing INCIDENT_ID"}},
		{[]string{"--bogus", "runs"}, []string{"unknown flag --bogus"}},
	}
	for _, tt := range tests {
		r := c.run(tt.args...)
		checkFailure(t, r, 2, tt.want, tt.args)
		if r.stdout != "" {
			t.Errorf("stopline %s: stdout %q", strings.Join(tt.args, " "), r.stdout)
		}
	}
}

// TestFlagsAfterArguments: flags may come before or after positional
// arguments, and -- ends the flags.
func TestFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res := c.runSteps("budget_steps", "budget_steps")
	a := c.ok("show", res.RunID, "--json")
	b := c.ok("show", "--json", res.RunID)
	d := c.ok("--json", "show", res.RunID)
	e := c.ok("show", "--json=true", "--", res.RunID)
	if a != b || a != d || a != e {
		t.Errorf("flag position changes the output")
	}
	c.fails(1, []string{"RUN-missing"}, "show", "--tenant", "acme", "RUN-missing")
}

func TestGroupHelpAndStrayJSON(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	if out := c.ok("export", "-h"); !strings.Contains(out, "export soc2") {
		t.Errorf("export -h:\n%s", out)
	}
}
