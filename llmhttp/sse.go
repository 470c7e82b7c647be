package llmhttp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// Server-sent events, framed exactly as both SDKs frame them
// (packages/ssestream of each): a line ends at "\n", less one "\r"
// before it (bufio.ScanLines: a lone "\r" does not end a line); a blank
// line ends an event; "field: value" with one optional space after the
// colon; data lines joined by "\n"; a line that starts with ":" is a
// comment; an event still open at the end of the stream is never
// dispatched. A field other than event, data, id and retry is refused
// (ErrMalformed): the SDKs ignore it, another reader might not (a
// leading byte-order mark, for one, which the SDKs keep in the field
// name and a browser strips).

// sseEvent is one event as received.
type sseEvent struct {
	raw  []byte // its bytes, blank line included
	name string // its event field
	data []byte // its data lines, joined by "\n"
	// hasData: it had a data line (its data may still be empty).
	hasData bool
}

// empty reports an event with neither name nor data (comments, ids): no
// SDK dispatches it.
func (e *sseEvent) empty() bool { return e.name == "" && !e.hasData }

// sseReader reads the events of a stream, each capped at max bytes.
type sseReader struct {
	br  *bufio.Reader
	max int64
}

func newSSEReader(r io.Reader, max int64) *sseReader {
	return &sseReader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next reads one event. At the end of the stream between events it
// returns io.EOF (with the blank lines read, in raw); inside one,
// io.ErrUnexpectedEOF, unless its data is "[DONE]" (an OpenAI stream's
// end, whose blank line may be missing); an event over the cap, or with
// an unknown field, an error matching ErrMalformed.
func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	fields := false
	for {
		line, err := s.readLine(s.max - int64(len(ev.raw)))
		ev.raw = append(ev.raw, line...)
		if err != nil {
			if errors.Is(err, io.EOF) {
				if c := lineContent(line); len(c) > 0 {
					// The last line of the stream, unterminated: still a line.
					if ferr := s.field(&ev, c); ferr != nil {
						return ev, ferr
					}
				}
				switch {
				case ev.empty():
					// Nothing an SDK would dispatch.
					return ev, io.EOF
				case ev.hasData && bytes.HasPrefix(ev.data, []byte("[DONE]")):
					return ev, nil
				}
				return ev, io.ErrUnexpectedEOF
			}
			return ev, err
		}
		content := lineContent(line)
		if len(content) == 0 {
			if fields {
				return ev, nil
			}
			continue
		}
		fields = true
		if err := s.field(&ev, content); err != nil {
			return ev, err
		}
	}
}

// lineContent is a line without its end: "\n", then one "\r".
func lineContent(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// field applies one non-blank line to ev.
func (s *sseReader) field(ev *sseEvent, content []byte) error {
	name, value, _ := bytes.Cut(content, []byte(":"))
	if len(value) > 0 && value[0] == ' ' {
		value = value[1:]
	}
	switch string(name) {
	case "":
		// A comment.
	case "event":
		ev.name = string(value)
	case "data":
		if ev.hasData {
			ev.data = append(ev.data, '\n')
		}
		ev.data = append(ev.data, value...)
		ev.hasData = true
	case "id", "retry":
	default:
		return fmt.Errorf("%w: an event field %q", ErrMalformed, name)
	}
	return nil
}

// readLine reads one line, its end of line included, of at most max bytes.
func (s *sseReader) readLine(max int64) ([]byte, error) {
	var line []byte
	for {
		frag, err := s.br.ReadSlice('\n')
		line = append(line, frag...)
		if int64(len(line)) > max {
			return line, fmt.Errorf("%w: an event of more than %d bytes", ErrMalformed, s.max)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, err
	}
}

// buffered reports whether a whole event is already buffered, so that
// reading it does not block.
func (s *sseReader) buffered() bool {
	n := s.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := s.br.Peek(n)
	return bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\n\r\n"))
}
