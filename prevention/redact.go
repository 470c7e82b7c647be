package prevention

import "strings"

// Redactor is an optional interface of a Hook that reads a step's input
// or output text and can mask what it looks for, so that text kept
// "redacted" does not keep it. The hooks of the built-in content kind
// implement it; Engine.Redact applies every policy and hook that does.
//
// Redact returns text (the step's input when input is set, else its
// output) with each part the hook would match replaced by mask, and the
// text unchanged when the hook does not read that field. It must only
// compute: not block, read anything else or change anything. It may be
// called concurrently.
type Redactor interface {
	Redact(text string, input bool, mask string) string
}

// Redact returns the input and output with what each policy and hook of
// the engine that is a Redactor matches replaced by mask, in evaluation
// order, and whether anything was replaced. A Redactor that panics
// fails the redaction: Redact then returns ok false, and the caller must
// keep nothing of the text.
func (e *Engine) Redact(input, output, mask string) (in, out string, changed, ok bool) {
	in, out = input, output
	for i := range e.rules {
		r, is := e.rules[i].hook.(Redactor)
		if !is {
			continue
		}
		var good bool
		if in, good = redact(r, in, true, mask); !good {
			return "", "", false, false
		}
		if out, good = redact(r, out, false, mask); !good {
			return "", "", false, false
		}
	}
	return in, out, in != input || out != output, true
}

// Redacts reports whether any policy or hook of the engine is a Redactor.
func (e *Engine) Redacts() bool {
	for i := range e.rules {
		if _, is := e.rules[i].hook.(Redactor); is {
			return true
		}
	}
	return false
}

func redact(r Redactor, text string, input bool, mask string) (s string, ok bool) {
	if text == "" {
		return "", true
	}
	defer func() {
		if recover() != nil {
			s, ok = "", false
		}
	}()
	return r.Redact(text, input, mask), true
}

// Redact implements Redactor: each match of each pattern in the fields
// the policy scans is replaced by mask.
func (h *contentHook) Redact(text string, input bool, mask string) string {
	want := fieldOutput
	if input {
		want = fieldInput
	}
	scans := false
	for _, f := range h.fields {
		scans = scans || f == want
	}
	if !scans {
		return text
	}
	for _, re := range h.patterns {
		if re.MatchString(text) {
			text = re.ReplaceAllLiteralString(text, mask)
		}
	}
	return strings.ToValidUTF8(text, "\uFFFD")
}
