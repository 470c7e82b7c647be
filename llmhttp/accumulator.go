package llmhttp

import (
	"errors"
	"fmt"
	"strings"
)

// An accumulator reads a streamed response event by event, as the API's
// SDK reads it (chatAcc, responsesAcc, messagesAcc), and says what each
// event does, so that the governed reader (stream) knows what it may
// deliver now, what it must hold back, and what it must refuse. An event
// the SDK would read in a way the accumulator cannot follow is an error:
// the stream is refused as malformed rather than passed on.
type accumulator interface {
	// handle applies one event that an SDK dispatches (it has a name or
	// data).
	handle(ev sseEvent) (effect, error)
	// state is what has been accumulated so far.
	state() *accState
	// finished reports a response complete without its final event (a
	// chat completion stream whose every choice has finished).
	finished() bool
	// result is the response at its final event, with its tool calls; an
	// error if its views of a tool call disagree.
	result() (result, error)
}

func newAccumulator(a api) accumulator {
	switch a {
	case apiResponses:
		return newResponsesAcc()
	case apiMessages:
		return newMessagesAcc()
	}
	return newChatAcc()
}

// effect says what an event did to the response.
type effect uint8

const (
	effText     effect = 1 << iota // added output text
	effUsage                       // reported token usage
	effTool                        // is, or is part of, a tool call or another non-text item: held from here on
	effTerminal                    // the response's final event: nothing may follow
	effError                       // the provider reported an error (with effTerminal)
)

// accState is what every accumulator keeps: the response's id and model,
// its text per choice, its usage.
type accState struct {
	id, model string
	texts     []*strings.Builder // per choice (one, but for chat's n)
	usage     usage
	hasUsage  bool
	// stopReason: finish reason, stop reason or response status.
	stopReason string
}

func newAccState() accState { return accState{texts: []*strings.Builder{{}}} }

func (a *accState) lens() []int {
	l := make([]int, len(a.texts))
	for i, b := range a.texts {
		l[i] = b.Len()
	}
	return l
}

// text is the output at the given per-choice lengths.
func (a *accState) text(lens []int) string {
	if len(lens) == 0 {
		return ""
	}
	if len(lens) == 1 {
		return a.texts[0].String()[:lens[0]]
	}
	parts := make([]string, len(lens))
	for i, n := range lens {
		parts[i] = a.texts[i].String()[:n]
	}
	return strings.Join(parts, "\n")
}

func (a *accState) appendText(choice int, s string) effect {
	if s == "" {
		return 0
	}
	a.texts[choice].WriteString(s)
	return effText
}

// setModel takes the model an event names: every event that names one
// must name the same (the SDKs keep the first, or the last), and it must
// be a name the runner takes.
func (a *accState) setModel(m string) error {
	switch {
	case m == "" || m == a.model:
		return nil
	case a.model != "":
		return fmt.Errorf("model %q, then %q", a.model, m)
	}
	if err := checkName("model", m); err != nil {
		return err
	}
	a.model = m
	return nil
}

// base is the result of what has been accumulated, without tool calls.
func (a *accState) base() result {
	return result{id: a.id, model: a.model, text: a.text(a.lens()), usage: a.usage, hasUsage: a.hasUsage, stop: a.stopReason}
}

// holds reports a class whose events are held back until the response
// is recorded: tool calls and their results.
func holds(c class) bool { return c == classTool || c == classData }

// errAfterEnd is an event after the response's final event.
var errAfterEnd = errors.New("an event after the final event")
