package llmhttp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

// maxBatchBytes bounds how many bytes of events already received are
// checked together (see stream.fill).
const maxBatchBytes = 64 << 10

// stream is the body of a streamed (server-sent events) model response.
// It passes events through as they arrive, checking the text before it
// is delivered, and records the response when the stream ends.
//
// The text delivered so far plus the events being delivered are checked
// (Reservation.Check while the call's reservation holds, else Run.Check)
// before those events are delivered. Events the upstream has already
// sent are checked together, up to maxBatchBytes, so a fast producer
// costs one check per batch and a slow one (a real model) one check per
// event, or per WithStreamCheckBytes of text; a batch that is blocked is
// checked again event by event so that the stream ends exactly before the
// event that made it break a policy. Once a tool call is complete, the
// events that follow (the one that completes it included) are held back
// until the response and its tool calls are recorded, so that an agent
// never sees a complete tool call that no policy has checked.
//
// The stream owns its call's reservation (rec.hold): the step it records
// settles it, and a stream that will record none (stopped by a policy)
// gives it back; see withhold and fail.
type stream struct {
	ctx context.Context
	g   *Governor
	rec *recorder
	up  io.ReadCloser
	br  *bufio.Reader
	acc streamAcc

	closed atomic.Bool

	mu        sync.Mutex
	out       []byte // ready to be read
	off       int
	held      []byte // held back until the response is recorded
	holding   bool
	pass      bool  // the response is recorded: the rest goes through as it is
	err       error // returned once out is drained
	done      bool  // the response was recorded, or recording was attempted
	delivered []int // per choice, bytes of text delivered
	batch     []pending
}

// pending is an event read but not yet delivered.
type pending struct {
	raw   []byte
	eff   effect
	held  bool
	lens  []int // per choice text lengths once this event is applied
	usage usage
}

func newStream(ctx context.Context, g *Governor, rec *recorder, body io.ReadCloser) *stream {
	return &stream{ctx: ctx, g: g, rec: rec, up: body, br: bufio.NewReaderSize(body, 64<<10), acc: newStreamAcc(rec.c.api)}
}

// Read implements io.Reader.
func (s *stream) Read(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.off >= len(s.out) {
		if s.err != nil {
			return 0, s.err
		}
		s.out, s.off = s.out[:0], 0
		if s.pass {
			n, err := s.br.Read(p)
			if err != nil {
				s.err = err
			}
			return n, err
		}
		s.fill()
	}
	n := copy(p, s.out[s.off:])
	s.off += n
	return n, nil
}

// Close closes the upstream body. A stream closed before its final event
// is recorded as "closed" with the text delivered so far.
func (s *stream) Close() error {
	s.closed.Store(true)
	err := s.up.Close() // unblocks a Read waiting on the upstream
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.done {
		if rerr := s.end("closed", nil); rerr != nil {
			err = errors.Join(err, rerr)
		}
	}
	if s.err == nil || s.pass {
		s.err = ErrClosed
	}
	s.off = len(s.out)
	return err
}

// fill reads the next batch of events and decides what of it is
// delivered, held or refused. The caller holds s.mu.
func (s *stream) fill() {
	s.batch = s.batch[:0]
	size := 0
	var stop effect // terminal or provider error
	var readErr error
	var tail []byte // blank lines after the last event
	for {
		raw, name, data, err := s.readEvent()
		if err != nil {
			readErr = err
			if errors.Is(err, io.EOF) {
				tail = raw
			}
			break
		}
		eff, perr := s.acc.handle(name, data)
		if perr != nil {
			readErr = fmt.Errorf("%w: %s event: %w", ErrMalformed, s.rec.c.api, perr)
			break
		}
		if eff&(effTerminal|effError) != 0 {
			stop = eff
			if eff&effError != 0 {
				// The provider's error event goes to the agent after the
				// step is recorded, held events never do.
				s.batch = append(s.batch, pending{raw: raw, eff: eff, held: true, lens: s.acc.lens(), usage: s.acc.usage})
				break
			}
		}
		if eff&effHold != 0 || eff&effTerminal != 0 {
			s.holding = true
		}
		s.batch = append(s.batch, pending{raw: raw, eff: eff, held: s.holding, lens: s.acc.lens(), usage: s.acc.usage})
		size += len(raw)
		if stop != 0 || size >= maxBatchBytes {
			break
		}
		if !s.eventBuffered() && (s.holding || s.newText() >= s.g.cfg.checkBytes) {
			break
		}
	}
	if err := s.check(); err != nil {
		s.fail(err)
		return
	}
	for i := range s.batch {
		e := &s.batch[i]
		if e.eff&effError != 0 {
			continue
		}
		if e.held {
			s.held = append(s.held, e.raw...)
			continue
		}
		s.out = append(s.out, e.raw...)
		s.delivered = e.lens
	}
	if s.holding {
		s.held = append(s.held, tail...)
	} else {
		s.out = append(s.out, tail...)
	}
	switch {
	case stop&effError != 0:
		if err := s.end("provider_error", nil); err != nil {
			s.fail(err)
			return
		}
		s.held = nil
		s.out = append(s.out, s.batch[len(s.batch)-1].raw...)
		s.pass = true
	case stop&effTerminal != 0:
		s.finish()
	case readErr != nil:
		s.ended(readErr)
	}
}

// check evaluates the batch's text (and the usage known so far) before it
// is delivered. It returns the error that ends the stream, if any, having
// delivered the events that pass.
func (s *stream) check() error {
	n := len(s.batch)
	if n == 0 {
		return nil
	}
	changed := false
	for i := range s.batch {
		if s.batch[i].eff&(effText|effUsage) != 0 {
			changed = true
		}
	}
	if !changed {
		return nil
	}
	last := &s.batch[n-1]
	if n > 1 {
		ev, err := s.rec.hold.check(s.ctx, s.g.run, s.attempted(last.lens, last.usage))
		if err == nil && ev.Decision.Action != prevention.Block {
			return nil
		}
	}
	// Event by event: the stream ends just before the first event that is
	// blocked.
	dl := s.delivered
	for i := range s.batch {
		e := &s.batch[i]
		if e.eff&(effText|effUsage) != 0 {
			if err := s.withhold(dl, e); err != nil {
				for _, d := range s.batch[:i] {
					if !d.held {
						s.out = append(s.out, d.raw...)
						s.delivered = d.lens
					}
				}
				s.done = true
				return err
			}
		}
		if !e.held {
			dl = e.lens
		}
	}
	return nil
}

// withhold governs the response as it stands once e is applied, with
// the text at dl delivered: Withhold, which stops the run, recording
// what was delivered, if a policy blocks it. While the call's
// reservation holds, it is the reservation's (hold.withhold): the
// tenant's counters it reads leave the reservation out, so that the
// stream is counted once, by what it has used; a Block gives the
// reservation back, and a pass leaves it held to the end of the stream.
func (s *stream) withhold(dl []int, e *pending) error {
	attempted := s.attempted(e.lens, e.usage)
	delivered := s.attempted(dl, e.usage)
	delivered.Metadata[MetaStream] = "blocked"
	delivered.Metadata[MetaUsage] = partialUsage(e.usage)
	_, err := s.rec.hold.withhold(s.ctx, s.g.run, attempted, delivered)
	return err
}

// newText is the text the batch adds, in bytes; 0 if it adds none, so
// that a batch without text is never held back.
func (s *stream) newText() int {
	if len(s.batch) == 0 {
		return 0
	}
	n := 0
	for i, l := range s.batch[len(s.batch)-1].lens {
		n += l
		if i < len(s.delivered) {
			n -= s.delivered[i]
		}
	}
	if n == 0 {
		return 1 << 30
	}
	return n
}

func partialUsage(u usage) string {
	if u == (usage{}) {
		return "missing"
	}
	return "partial"
}

// attempted is the response step with the text at lens and usage u.
func (s *stream) attempted(lens []int, u usage) governance.StepInput {
	r := result{model: s.acc.model, text: s.acc.text(lens), usage: u, hasUsage: true}
	in := s.rec.response(&r)
	in.Metadata[MetaStream] = "streaming"
	delete(in.Metadata, MetaStop)
	return in
}

// finish records the response and its tool calls at the final event, and
// releases what was held. The caller holds s.mu.
func (s *stream) finish() {
	s.done = true
	r := s.acc.result()
	if err := s.rec.record(s.ctx, &r, MetaStream, "complete"); err != nil {
		s.fail(err)
		return
	}
	s.out = append(s.out, s.held...)
	s.held = nil
	s.pass = true
}

// ended handles the end of the upstream before the final event.
func (s *stream) ended(readErr error) {
	if errors.Is(readErr, io.EOF) && s.acc.finished() {
		// A chat completion stream without its "[DONE]": every choice had
		// finished, so the response is complete.
		s.finish()
		if s.err == nil {
			s.pass, s.err = false, io.EOF
		}
		return
	}
	kind := "truncated"
	var cause error
	switch {
	case s.closed.Load():
		kind = "closed"
	case errors.Is(readErr, ErrMalformed):
		kind, cause = "malformed", readErr
	case errors.Is(readErr, io.EOF) || errors.Is(readErr, io.ErrUnexpectedEOF):
		cause = fmt.Errorf("%w: %w", ErrTruncated, io.ErrUnexpectedEOF)
	default:
		kind, cause = "read_error", fmt.Errorf("%w: %w", ErrTruncated, readErr)
	}
	err := cause
	if rerr := s.end(kind, cause); rerr != nil {
		err = errors.Join(cause, rerr)
	}
	if err == nil {
		err = ErrClosed
	}
	s.fail(err)
}

// end records the response as it stands, with what was delivered, when
// the stream did not complete. The caller holds s.mu.
func (s *stream) end(kind string, cause error) error {
	if s.done {
		return nil
	}
	s.done = true
	r := result{id: s.acc.id, model: s.acc.model, text: s.acc.text(s.delivered), usage: s.acc.usage, hasUsage: s.acc.usage != usage{}}
	extra := []string{MetaStream, kind}
	if r.hasUsage {
		extra = append(extra, MetaUsage, "partial")
	}
	if cause != nil {
		extra = append(extra, MetaError, cause.Error())
	}
	_, err := s.rec.settle(s.ctx, s.rec.response(&r, extra...))
	return err
}

// fail ends the stream with err after what is already in out. A stream
// that fails has recorded its step (which settled the reservation) or
// never will (a Withhold stopped the run, and gave the reservation back;
// or a check failed): the reservation is given back, a no-op unless the
// check failed.
func (s *stream) fail(err error) {
	s.err = err
	s.held = nil
	s.pass = false
	s.up.Close()
	s.rec.hold.release(s.ctx)
}

// eventBuffered reports whether a whole event is already buffered, so
// that reading it does not block.
func (s *stream) eventBuffered() bool {
	n := s.br.Buffered()
	if n == 0 {
		return false
	}
	b, _ := s.br.Peek(n)
	return bytes.Contains(b, []byte("\n\n")) || bytes.Contains(b, []byte("\r\n\r\n"))
}

// readEvent reads one event: its bytes as received, and its event name
// and data. It returns io.EOF at the end of the stream between events,
// io.ErrUnexpectedEOF inside one.
func (s *stream) readEvent() (raw []byte, name string, data []byte, err error) {
	max := s.g.cfg.maxBody
	fields := false
	hasData := false
	for {
		line, err := s.readLine(max - int64(len(raw)))
		raw = append(raw, line...)
		if err != nil {
			if errors.Is(err, io.EOF) {
				if len(bytes.TrimSpace(raw)) == 0 {
					return raw, "", nil, io.EOF
				}
				if hasData && bytes.Equal(bytes.TrimSpace(data), []byte("[DONE]")) {
					return raw, name, data, nil
				}
				return raw, name, data, io.ErrUnexpectedEOF
			}
			return raw, name, data, err
		}
		content := bytes.TrimRight(line, "\r\n")
		if len(content) == 0 {
			if fields {
				return raw, name, data, nil
			}
			continue
		}
		fields = true
		field, value, _ := bytes.Cut(content, []byte(":"))
		if len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "event":
			name = string(value)
		case "data":
			if hasData {
				data = append(data, '\n')
			}
			data = append(data, value...)
			hasData = true
		}
	}
}

// readLine reads one line, its end of line included, of at most max bytes.
func (s *stream) readLine(max int64) ([]byte, error) {
	var line []byte
	for {
		frag, err := s.br.ReadSlice('\n')
		line = append(line, frag...)
		if int64(len(line)) > max {
			return line, fmt.Errorf("%w: an event of more than %d bytes", ErrMalformed, s.g.cfg.maxBody)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, err
	}
}

// effect says what an event did to the response.
type effect uint8

const (
	effText     effect = 1 << iota // added output text
	effUsage                       // reported token usage
	effHold                        // completed a tool call
	effTerminal                    // the response's final event
	effError                       // the provider reported an error
)

// streamAcc accumulates a streamed response.
type streamAcc struct {
	api      api
	id       string
	model    string
	texts    []*strings.Builder // per choice
	usage    usage
	tools    []*streamTool
	stop     string
	final    *result // the Responses API's whole final response
	finishes int     // chat choices that have finished
	lastTool *streamTool

	msgUsage messagesUsage
	blocks   map[int]*streamTool // Anthropic: tool_use blocks by index
	items    map[string]*streamTool
}

type streamTool struct {
	key  string
	id   string
	name string
	args strings.Builder
	done string // the complete arguments, when an event gives them
}

func newStreamAcc(a api) streamAcc {
	return streamAcc{api: a, texts: []*strings.Builder{{}}}
}

func (a *streamAcc) lens() []int {
	l := make([]int, len(a.texts))
	for i, b := range a.texts {
		l[i] = b.Len()
	}
	return l
}

// text is the output at the given per-choice lengths.
func (a *streamAcc) text(lens []int) string {
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

func (a *streamAcc) appendText(choice int, s string) effect {
	if s == "" {
		return 0
	}
	a.texts[choice].WriteString(s)
	return effText
}

// finished reports whether every chat choice has a finish reason.
func (a *streamAcc) finished() bool {
	return a.api == apiChat && a.finishes > 0 && a.finishes >= len(a.texts)
}

func (a *streamAcc) result() result {
	r := result{id: a.id, model: a.model, text: a.text(a.lens()), usage: a.usage, hasUsage: a.usage != usage{}, stop: a.stop}
	if a.final != nil {
		f := a.final
		if f.model != "" {
			r.model = f.model
		}
		if f.id != "" {
			r.id = f.id
		}
		r.usage, r.hasUsage, r.stop = f.usage, f.hasUsage, f.stop
		if len(f.tools) > 0 || len(a.tools) == 0 {
			r.tools = f.tools
			return r
		}
	}
	for _, t := range a.tools {
		args := t.done
		if args == "" {
			args = t.args.String()
		}
		if a.api == apiMessages {
			args = compactJSON([]byte(args))
		}
		r.tools = append(r.tools, toolCall{id: t.id, name: t.name, args: args})
	}
	return r
}

func (a *streamAcc) handle(name string, data []byte) (effect, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return 0, nil
	}
	if bytes.Equal(data, []byte("[DONE]")) {
		return effTerminal, nil
	}
	switch a.api {
	case apiChat:
		return a.chat(data)
	case apiResponses:
		return a.responses(name, data)
	case apiMessages:
		return a.messages(name, data)
	}
	return 0, nil
}

// maxChoices bounds the choices of a chat stream the accumulator tracks.
const maxChoices = 128

func (a *streamAcc) chat(data []byte) (effect, error) {
	var ch struct {
		ID      string `json:"id"`
		Model   string `json:"model"`
		Choices []struct {
			Index int `json:"index"`
			Delta struct {
				Content   *string        `json:"content"`
				Refusal   *string        `json:"refusal"`
				ToolCalls []chatToolCall `json:"tool_calls"`
			} `json:"delta"`
			FinishReason *string `json:"finish_reason"`
		} `json:"choices"`
		Usage *chatUsage      `json:"usage"`
		Error json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(data, &ch); err != nil {
		return 0, err
	}
	if len(ch.Error) > 0 && string(ch.Error) != "null" {
		return effError, nil
	}
	if a.id == "" {
		a.id = ch.ID
	}
	if a.model == "" {
		a.model = ch.Model
	}
	var eff effect
	toolDelta := false
	for _, c := range ch.Choices {
		if c.Index < 0 || c.Index >= maxChoices {
			return 0, fmt.Errorf("choice index %d", c.Index)
		}
		for len(a.texts) <= c.Index {
			a.texts = append(a.texts, &strings.Builder{})
		}
		if c.Delta.Content != nil {
			eff |= a.appendText(c.Index, *c.Delta.Content)
		}
		if c.Delta.Refusal != nil {
			eff |= a.appendText(c.Index, *c.Delta.Refusal)
		}
		for _, tc := range c.Delta.ToolCalls {
			toolDelta = true
			key := fmt.Sprint(c.Index, "/", tc.Index)
			t := a.tool(key)
			if a.lastTool != nil && a.lastTool != t {
				eff |= effHold
			}
			a.lastTool = t
			if tc.ID != "" {
				t.id = tc.ID
			}
			if f := tc.Function; f != nil {
				if f.Name != "" {
					t.name = f.Name
				}
				t.args.WriteString(f.Arguments)
			}
			if cu := tc.Custom; cu != nil {
				if cu.Name != "" {
					t.name = cu.Name
				}
				t.args.WriteString(cu.Input)
			}
		}
		if c.FinishReason != nil && *c.FinishReason != "" {
			a.finishes++
			if a.stop == "" {
				a.stop = *c.FinishReason
			}
		}
	}
	if !toolDelta && a.lastTool != nil {
		eff |= effHold
	}
	if ch.Usage != nil {
		a.usage = ch.Usage.usage()
		eff |= effUsage
	}
	return eff, nil
}

func (a *streamAcc) tool(key string) *streamTool {
	for _, t := range a.tools {
		if t.key == key {
			return t
		}
	}
	t := &streamTool{key: key}
	a.tools = append(a.tools, t)
	return t
}

func (a *streamAcc) responses(name string, data []byte) (effect, error) {
	var ev struct {
		Type      string          `json:"type"`
		Delta     json.RawMessage `json:"delta"`
		ItemID    string          `json:"item_id"`
		Item      *responsesItem  `json:"item"`
		Arguments *string         `json:"arguments"`
		Input     *string         `json:"input"`
		Response  *responsesBody  `json:"response"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return 0, err
	}
	typ := ev.Type
	if typ == "" {
		typ = name
	}
	delta := func() (string, error) {
		var s string
		if len(ev.Delta) == 0 {
			return "", nil
		}
		err := json.Unmarshal(ev.Delta, &s)
		return s, err
	}
	switch typ {
	case "error":
		return effError, nil
	case "response.created", "response.in_progress", "response.queued":
		if r := ev.Response; r != nil {
			a.id, a.model = r.ID, r.Model
		}
	case "response.output_text.delta", "response.refusal.delta":
		d, err := delta()
		if err != nil {
			return 0, err
		}
		return a.appendText(0, d), nil
	case "response.output_item.added", "response.output_item.done":
		if ev.Item == nil {
			return 0, errors.New(typ + " without an item")
		}
		tc, ok := ev.Item.toolCall()
		if !ok {
			return 0, nil
		}
		t := a.itemTool(ev.Item.ID)
		t.id, t.name = tc.id, tc.name
		if typ == "response.output_item.done" {
			t.done = tc.args
			return effHold, nil
		}
	case "response.function_call_arguments.delta", "response.custom_tool_call_input.delta":
		d, err := delta()
		if err != nil {
			return 0, err
		}
		a.itemTool(ev.ItemID).args.WriteString(d)
	case "response.function_call_arguments.done":
		if ev.Arguments != nil {
			a.itemTool(ev.ItemID).done = *ev.Arguments
		}
		return effHold, nil
	case "response.custom_tool_call_input.done":
		if ev.Input != nil {
			a.itemTool(ev.ItemID).done = *ev.Input
		}
		return effHold, nil
	case "response.completed", "response.incomplete", "response.failed":
		if ev.Response == nil {
			return 0, errors.New(typ + " without a response")
		}
		r := ev.Response.result()
		a.final = &r
		a.usage = r.usage
		return effTerminal | effUsage, nil
	}
	return 0, nil
}

func (a *streamAcc) itemTool(id string) *streamTool {
	if a.items == nil {
		a.items = map[string]*streamTool{}
	}
	t := a.items[id]
	if t == nil {
		t = &streamTool{key: id}
		a.items[id] = t
		a.tools = append(a.tools, t)
	}
	return t
}

func (a *streamAcc) messages(name string, data []byte) (effect, error) {
	var ev struct {
		Type    string `json:"type"`
		Index   int    `json:"index"`
		Message *struct {
			ID    string         `json:"id"`
			Model string         `json:"model"`
			Usage *messagesUsage `json:"usage"`
		} `json:"message"`
		ContentBlock *messagesBlock `json:"content_block"`
		Delta        *struct {
			Type        string  `json:"type"`
			Text        string  `json:"text"`
			PartialJSON string  `json:"partial_json"`
			StopReason  *string `json:"stop_reason"`
		} `json:"delta"`
		Usage *messagesUsage `json:"usage"`
	}
	if err := json.Unmarshal(data, &ev); err != nil {
		return 0, err
	}
	typ := ev.Type
	if typ == "" {
		typ = name
	}
	switch typ {
	case "error":
		return effError, nil
	case "message_start":
		if ev.Message == nil {
			return 0, errors.New("message_start without a message")
		}
		a.id, a.model = ev.Message.ID, ev.Message.Model
		if ev.Message.Usage != nil {
			a.msgUsage.merge(ev.Message.Usage)
			a.usage = a.msgUsage.usage()
			return effUsage, nil
		}
	case "content_block_start":
		b := ev.ContentBlock
		if b == nil {
			return 0, errors.New("content_block_start without a content_block")
		}
		switch b.Type {
		case "text":
			return a.appendText(0, b.Text), nil
		case "tool_use":
			if a.blocks == nil {
				a.blocks = map[int]*streamTool{}
			}
			t := &streamTool{key: fmt.Sprint(ev.Index), id: b.ID, name: b.Name}
			if in := bytes.TrimSpace(b.Input); len(in) > 0 && !bytes.Equal(in, []byte("{}")) {
				t.args.Write(in)
			}
			a.blocks[ev.Index] = t
			a.tools = append(a.tools, t)
		}
	case "content_block_delta":
		if ev.Delta == nil {
			return 0, errors.New("content_block_delta without a delta")
		}
		switch ev.Delta.Type {
		case "text_delta":
			return a.appendText(0, ev.Delta.Text), nil
		case "input_json_delta":
			if t := a.blocks[ev.Index]; t != nil {
				t.args.WriteString(ev.Delta.PartialJSON)
			}
		}
	case "content_block_stop":
		if a.blocks[ev.Index] != nil {
			return effHold, nil
		}
	case "message_delta":
		if ev.Delta != nil && ev.Delta.StopReason != nil {
			a.stop = *ev.Delta.StopReason
		}
		if ev.Usage != nil {
			a.msgUsage.merge(ev.Usage)
			a.usage = a.msgUsage.usage()
			return effUsage, nil
		}
	case "message_stop":
		return effTerminal, nil
	}
	return 0, nil
}
