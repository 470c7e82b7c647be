package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/stopline/stopline/prevention"
)

// writeJSON writes v as one indented JSON document.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// table writes aligned columns. Trailing empty cells are dropped so that
// no line ends in spaces.
type table struct {
	tw *tabwriter.Writer
}

func newTable(w io.Writer) *table {
	return &table{tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

func (t *table) row(cells ...string) {
	for len(cells) > 0 && cells[len(cells)-1] == "" {
		cells = cells[:len(cells)-1]
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// timeFormat is how times are shown: UTC, milliseconds, fixed width.
const timeFormat = "2006-01-02T15:04:05.000Z"

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(timeFormat)
}

// fmtOffset shows a time as milliseconds after a run's start: "+1500ms".
func fmtOffset(t, start time.Time) string {
	return "+" + strconv.FormatInt(t.Sub(start).Milliseconds(), 10) + "ms"
}

func fmtNum(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

func fmtStep(p *int) string {
	if p == nil {
		return "-"
	}
	return strconv.Itoa(*p)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// describeDecision says what a decision found, in a few words: the
// threshold with the observed value and the limit, or the message.
func describeDecision(d prevention.Decision) string {
	if d.Threshold != "" {
		return fmt.Sprintf("%s: observed %s, limit %s", d.Threshold, fmtNum(d.Observed), fmtNum(d.Limit))
	}
	return d.Message
}

// progress shows a count on stderr while long work runs, only when stderr
// is a terminal; done erases it.
type progress struct {
	w     io.Writer
	on    bool
	label string
	last  time.Time
	shown bool
}

func newProgress(e *env, label string) *progress {
	return &progress{w: e.stderr, on: e.tty, label: label}
}

func (p *progress) update(n int) {
	if !p.on {
		return
	}
	if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.shown = true
		fmt.Fprintf(p.w, "\r%s %d", p.label, n)
	}
}

func (p *progress) done() {
	if p.shown {
		fmt.Fprint(p.w, "\r\033[K")
		p.shown = false
	}
}

// plural spells a count of things: "1 run", "2 runs".
func plural(n int, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return strconv.Itoa(n) + " " + thing + "s"
}

// countOf says n things: "1 policy", "3 policies".
func countOf(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
