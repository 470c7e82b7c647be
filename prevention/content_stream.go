package prevention

import (
	"context"
	"strings"

	"github.com/stopline/stopline/prevention/internal/streammatch"
)

// streamMatchers compiles a content policy's patterns for streams; nil
// if one cannot be (its program is over streammatch.MaxInst): the
// policy's streamed checks are then evaluated in full.
func streamMatchers(patterns []string) []*streammatch.Matcher {
	ms := make([]*streammatch.Matcher, len(patterns))
	for i, src := range patterns {
		m, err := streammatch.Compile(src)
		if err != nil {
			return nil
		}
		ms[i] = m
	}
	return ms
}

// NewStreamState makes contentHook a StreamHook: see contentStream.
func (h *contentHook) NewStreamState() StreamState {
	if h.matchers == nil {
		return nil
	}
	return &contentStream{h: h, fields: make([]fieldStream, len(h.fields))}
}

// contentStream evaluates a content policy on the successive checks of
// one stream: per field, each pattern's streammatch.State stands at the
// end of the text the field last had, and a check whose text extends it
// feeds only the bytes added. The decision is the one Evaluate makes:
// the first field, in the policy's order, that one of the patterns
// matches, and the first such pattern (the State's Match is exactly
// regexp's MatchString on the text).
type contentStream struct {
	h      *contentHook
	fields []fieldStream
}

// fieldStream is one field's states: cur at text, and alt at altText,
// the text before it (or before the full evaluation that replaced it). A
// stream checks the text delivered plus a batch of events, and, if that
// is blocked, the text delivered plus each event in turn: those extend
// altText, the text delivered, not text.
type fieldStream struct {
	text, altText string
	cur, alt      []*streammatch.State
	ok, altOK     bool // cur (alt) stands at text (altText)
}

func (c *contentStream) Evaluate(_ context.Context, s *Step) (Decision, error) {
	for fi, f := range c.h.fields {
		text := f.text(s)
		if text == "" {
			continue
		}
		fs := &c.fields[fi]
		fs.advance(c.h.matchers, text)
		for i, st := range fs.cur {
			if st.Match() {
				return c.h.block(f, i), nil
			}
		}
	}
	return Allowed(), nil
}

// advance makes cur stand at text: from cur if text extends the text it
// stands at, else from alt if text extends alt's, else from the start
// (the full evaluation). Comparing a text that shares its bytes with the
// one kept, as a stream's accumulated text does, costs O(1).
func (fs *fieldStream) advance(ms []*streammatch.Matcher, text string) {
	if fs.cur == nil {
		fs.cur = make([]*streammatch.State, len(ms))
		fs.alt = make([]*streammatch.State, len(ms))
		for i, m := range ms {
			fs.cur[i], fs.alt[i] = m.NewState(), m.NewState()
		}
	}
	switch {
	case fs.ok && strings.HasPrefix(text, fs.text):
		if len(text) == len(fs.text) {
			return
		}
		for i, st := range fs.cur {
			fs.alt[i].CopyFrom(st)
		}
		fs.altText, fs.altOK = fs.text, true
	case fs.altOK && strings.HasPrefix(text, fs.altText):
		fs.cur, fs.alt = fs.alt, fs.cur
		fs.text, fs.altText = fs.altText, fs.text
		fs.ok, fs.altOK = true, fs.ok
	default:
		fs.cur, fs.alt = fs.alt, fs.cur
		fs.altText, fs.altOK = fs.text, fs.ok
		for _, st := range fs.cur {
			st.Reset()
		}
		fs.text, fs.ok = "", true
	}
	add := text[len(fs.text):]
	for _, st := range fs.cur {
		st.Feed(add)
	}
	fs.text = text
}
