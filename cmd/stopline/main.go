package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// Exit codes, part of the command's contract.
const (
	exitOK      = 0 // success (a run stopped by a policy is a success)
	exitFailure = 1 // bad input, verification failed, store error
	exitUsage   = 2 // usage error: unknown command or flag, missing argument
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// Main runs the command line args and returns the exit code. Data goes to
// stdout; errors go to stderr as one line each.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{
		stdin:  stdin,
		stdout: stdout,
		stderr: stderr,
		getenv: getenv,
		tty:    isTerminal(stderr),
	}
	name, err := dispatch(ctx, e, args)
	if err == nil {
		return exitOK
	}
	prefix := "stopline"
	if name != "" {
		prefix += " " + name
	}
	var ue *usageError
	if errors.As(err, &ue) {
		hint := "stopline --help"
		if name != "" {
			hint = "stopline " + name + " --help"
		}
		fmt.Fprintf(stderr, "%s: %s (see '%s')\n", prefix, oneLine(ue.msg), hint)
		return exitUsage
	}
	if errors.Is(err, errSilent) {
		return exitFailure
	}
	fmt.Fprintf(stderr, "%s: %s\n", prefix, oneLine(err.Error()))
	return exitFailure
}

// errSilent is returned by a command that has already reported its
// failure on stderr (verify, listing every bad run) and must exit 1.
var errSilent = errors.New("failure already reported")

// usageError is a mistake in the command line: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// oneLine makes a message fit on one line: line breaks (as in CEL
// compiler output) become "; ", and the library's package prefixes
// ("governance: ", ...), which say where an error came from to a program
// but nothing to a person reading the command's own prefix, are dropped.
func oneLine(s string) string {
	lines := strings.FieldsFunc(s, func(r rune) bool { return r == '\n' || r == '\r' })
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	s = strings.Join(lines, "; ")
	for _, p := range libraryPrefixes {
		for strings.HasPrefix(s, p) {
			s = strings.TrimPrefix(s, p)
		}
		s = strings.ReplaceAll(s, ": "+p, ": ")
	}
	return s
}

// libraryPrefixes are the prefixes of the library's errors that the
// command drops from what it prints.
var libraryPrefixes = []string{"stopline: ", "governance: ", "checkpoint: "}
