package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// env is what a command runs with: its streams, the environment, and the
// global flags.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	tty            bool // stderr is a terminal: show progress there

	db       string // --db, resolved: flag, else $STOPLINE_DB, else ./stopline.db
	jsonOut  bool   // --json
	globalDB string // --db given before the command
	logLevel string // --log-level, as given (log.go resolves it)
}

// defaultDB is the database used without --db and $STOPLINE_DB.
const defaultDB = "./stopline.db"

// command is one subcommand. Its flags are registered on a fresh FlagSet
// for every invocation, bound to variables of the closure that made it.
type command struct {
	name     string // "policy check"
	section  string // heading in the overview
	synopsis string // "FILE [--by NAME] [--note TEXT] [--json]"
	summary  string // one line for the overview
	desc     string // what it does, for `stopline NAME --help`
	examples []string
	minArgs  int
	maxArgs  int  // -1: any number
	store    bool // takes --db
	json     bool // takes --json (prints data)
	logs     bool // takes --log-level (logs on stderr: log.go)
	flags    func(fs *flag.FlagSet)
	run      func(ctx context.Context, e *env, args []string) error
}

// groups are commands that only hold subcommands.
var groups = map[string]string{
	"policy": "Validate, publish and list policy sets.",
	"export": "Export an incident's evidence as a bundle (JSON or PDF), optionally signed.",
	"outbox": "List and retry the deliveries of incidents and run ends to sinks.",
	"token":  "Make, list and revoke the API tokens of stopline serve.",
	"log":    "The tenant-wide transparency log: sign its tree head.",
}

var sections = []string{"Policies", "Runs", "Operators", "Evidence and integrity", "Server", "Database"}

func commands() []*command {
	cmds := []*command{
		policyCheckCmd(), policyPublishCmd(), policyHistoryCmd(), whatifCmd(),
		runCmd(), runsCmd(), showCmd(), incidentsCmd(), explainCmd(), outboxListCmd(), outboxRetryCmd(),
		verifyCmd(), replayCmd(), checkpointCmd(), logHeadCmd(),
		approvalsCmd(), answerCmd(true), answerCmd(false), killCmd(false), killCmd(true), killsCmd(),
	}
	cmds = append(cmds, exportCmds()...)
	return append(cmds, verifyBundleCmd(), keygenCmd(), serveCmd(), tokenCreateCmd(), tokenListCmd(), tokenRevokeCmd(), migrateCmd())
}

// dispatch parses the global flags, finds the command and runs it. It
// returns the command's name (for error messages) and its error.
func dispatch(ctx context.Context, e *env, args []string) (string, error) {
	// Global flags come before the command; they may also follow it.
	g := flag.NewFlagSet("stopline", flag.ContinueOnError)
	g.SetOutput(io.Discard)
	g.StringVar(&e.globalDB, "db", "", "")
	g.BoolVar(&e.jsonOut, "json", false, "")
	g.StringVar(&e.logLevel, "log-level", "", "")
	help := g.Bool("help", false, "")
	g.BoolVar(help, "h", false, "")
	showVersion := g.Bool("version", false, "")
	if err := g.Parse(args); err != nil {
		return "", usagef("%s", flagErr(err))
	}
	args = g.Args()
	cmds := commands()
	if *showVersion || (len(args) == 1 && args[0] == "version") {
		return "", printVersion(e)
	}
	if *help {
		printOverview(e.stdout, cmds)
		return "", nil
	}
	if len(args) == 0 {
		return "", usagef("no command given")
	}
	if args[0] == "help" {
		if len(args) == 1 {
			printOverview(e.stdout, cmds)
			return "", nil
		}
		args = append(args[1:], "--help")
	}
	name := args[0]
	rest := args[1:]
	if _, ok := groups[name]; ok {
		if len(rest) == 0 {
			return name, usagef("needs a subcommand: %s", subcommands(name, cmds))
		}
		if isHelpFlag(rest[0]) {
			printGroup(e.stdout, name, cmds)
			return name, nil
		}
		name += " " + rest[0]
		rest = rest[1:]
	}
	i := slices.IndexFunc(cmds, func(c *command) bool { return c.name == name })
	if i < 0 {
		return "", usagef("unknown command %q", name)
	}
	c := cmds[i]
	return c.name, c.invoke(ctx, e, rest)
}

func subcommands(group string, cmds []*command) string {
	var subs []string
	for _, c := range cmds {
		if sub, ok := strings.CutPrefix(c.name, group+" "); ok {
			subs = append(subs, sub)
		}
	}
	return strings.Join(subs, ", ")
}

func isHelpFlag(s string) bool {
	return s == "-h" || s == "--help" || s == "-help" || s == "--h"
}

func (c *command) flagSet(e *env) *flag.FlagSet {
	fs := flag.NewFlagSet("stopline "+c.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	if c.store {
		fs.StringVar(&e.db, "db", e.globalDB, "database: a SQLite `PATH` or a postgres:// URL (default $STOPLINE_DB, else "+defaultDB+")")
	}
	if c.json {
		fs.BoolVar(&e.jsonOut, "json", e.jsonOut, "print one JSON document on stdout instead of text")
	}
	if c.logs {
		fs.StringVar(&e.logLevel, "log-level", e.logLevel, "log on stderr from `LEVEL` up: debug, info, warn, error (default $STOPLINE_LOG_LEVEL, else "+defaultLogLevel(c.name)+")")
	}
	if c.flags != nil {
		c.flags(fs)
	}
	return fs
}

func (c *command) invoke(ctx context.Context, e *env, args []string) error {
	fs := c.flagSet(e)
	pos, err := parseFlags(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.printHelp(e.stdout, fs)
		return nil
	}
	if err != nil {
		return usagef("%s", flagErr(err))
	}
	if e.db == "" {
		e.db = e.getenv("STOPLINE_DB")
	}
	if e.db == "" {
		e.db = defaultDB
	}
	if len(pos) < c.minArgs {
		return usagef("missing %s", strings.Fields(c.synopsis)[len(pos)])
	}
	if c.maxArgs >= 0 && len(pos) > c.maxArgs {
		return usagef("unexpected argument %q", pos[c.maxArgs])
	}
	return c.run(ctx, e, pos)
}

// parseFlags parses args with fs, accepting flags before, between and
// after positional arguments (`stopline show RUN-1 --json`). A "--" ends
// the flags. It returns the positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil || isBoolFlag(f) {
			continue // an unknown flag is reported by Parse
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	return pos, nil
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// flagErr rewords the flag package's errors to use the -- spelling the
// documentation uses.
func flagErr(err error) string {
	s := err.Error()
	s = strings.Replace(s, "flag provided but not defined: -", "unknown flag --", 1)
	s = strings.Replace(s, "flag needs an argument: -", "flag needs a value: --", 1)
	if strings.HasPrefix(s, "invalid value ") || strings.HasPrefix(s, "invalid boolean value ") {
		s = strings.Replace(s, "for flag -", "for flag --", 1)
	}
	return s
}

func (c *command) printHelp(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: stopline %s %s\n\n", c.name, c.synopsis)
	fmt.Fprintf(w, "%s\n", strings.TrimSpace(c.desc))
	var rows [][]string
	fs.VisitAll(func(f *flag.Flag) {
		name, usage := flag.UnquoteUsage(f)
		spell := "--" + f.Name
		if len(f.Name) == 1 {
			spell = "-" + f.Name
		}
		if name != "" && !isBoolFlag(f) {
			spell += " " + strings.ToUpper(name)
		}
		rows = append(rows, []string{"  " + spell, usage})
	})
	if len(rows) > 0 {
		fmt.Fprintf(w, "\nFlags (before or after the arguments):\n")
		tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\n", r[0], r[1])
		}
		tw.Flush()
	}
	if len(c.examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, ex := range c.examples {
			fmt.Fprintf(w, "  %s\n", ex)
		}
	}
	fmt.Fprintf(w, "\nExit status: 0 success, 1 failure, 2 usage error.\n")
}

func printOverview(w io.Writer, cmds []*command) {
	fmt.Fprint(w, `stopline governs AI agent runs with policies that can stop a run at the
exact step where it goes wrong, and proves afterwards what was decided and why.

Usage: stopline [--db PATH] [--json] [--log-level LEVEL] COMMAND [ARGUMENTS] [FLAGS]
`)
	width := 0
	for _, c := range cmds {
		width = max(width, len(c.name))
	}
	for _, s := range sections {
		fmt.Fprintf(w, "\n%s:\n", s)
		for _, c := range cmds {
			if c.section == s {
				fmt.Fprintf(w, "  %-*s   %s\n", width, c.name, c.summary)
			}
		}
	}
	fmt.Fprintf(w, `
Global flags (also accepted after the command):
  --db PATH   database: a SQLite file, or a postgres:// URL for the Postgres store
              (default $STOPLINE_DB, else %s)
  --json      print one JSON document on stdout instead of text
  --log-level LEVEL
              what run and serve log on stderr: debug, info, warn or error
              (default $STOPLINE_LOG_LEVEL, else warn; info for serve)
  --version   print the version (from the build information) and exit

Errors go to stderr, one line each. Exit status: 0 success (a run stopped by a
policy included), 1 failure (bad input, verification failed, store error),
2 usage error.

Examples:
  stopline policy check policies.json
  stopline run --policies policies.json --steps transcript.jsonl
  stopline show RUN-3f2a9c0d1e4b5a67
  stopline explain RUN-3f2a9c0d1e4b5a67 --at +1500

Run 'stopline COMMAND --help' for a command's flags and examples.
`, defaultDB)
}

func printGroup(w io.Writer, group string, cmds []*command) {
	fmt.Fprintf(w, "Usage: stopline %s SUBCOMMAND [ARGUMENTS] [FLAGS]\n\n%s\n\nSubcommands:\n", group, groups[group])
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	for _, c := range cmds {
		if strings.HasPrefix(c.name, group+" ") {
			fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
		}
	}
	tw.Flush()
	fmt.Fprintf(w, "\nRun 'stopline %s SUBCOMMAND --help' for its flags and examples.\n", group)
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
