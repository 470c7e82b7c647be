// Package streammatch reports whether a text that grows by appends
// contains a match of a regular expression, looking only at what each
// append adds: a check of a text of n bytes, made after every append,
// costs O(n) in all instead of the O(n²) of rescanning the whole text
// each time.
//
// A Matcher runs the pattern's program, compiled exactly as package
// regexp compiles it (syntax.Perl, Simplify, Compile), as a Pike VM: a
// simulation of its NFA that follows every thread at once, one rune at a
// time, without captures (only whether a match exists). A State keeps
// the VM between appends:
//
//   - the threads waiting for the next rune, as program counters not yet
//     followed through empty-width instructions, because the assertions
//     there ($, \b, \B, (?m)$) depend on the rune that comes next;
//   - the last rune consumed (or none at the start), which the
//     assertions at the next position depend on (^, \A, \b, \B,
//     (?m)^);
//   - the bytes of a rune an append cut in two, not yet consumed: a
//     rune is decoded as regexp decodes it (an invalid byte is U+FFFD of
//     width 1) only once the bytes that follow cannot change it;
//   - whether a match was found whose end is followed by a rune already
//     known: every longer text contains it too.
//
// Match answers for the text as it stands: it follows the waiting
// threads with the end of text after them ($, \z and \b at the end hold
// or not there), on a copy, so the state goes on unchanged with the next
// append. So Match after each append gives exactly what
// regexp.MatchString gives on the whole text so far.
//
// While no thread waits, the scan skips, without running the VM, bytes
// at which no match can start: a byte table of the first bytes of the
// runes the start of the program can consume, or strings.Index of the
// literal prefix every match starts with, or strings.IndexByte of a
// single first byte. A pattern anchored at the text's start stops
// scanning once its only start has failed.
package streammatch

import (
	"errors"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxInst bounds the program a Matcher runs: a State holds a few words
// per instruction.
const MaxInst = 1 << 15

// ErrTooLarge is returned by Compile for a program over MaxInst
// instructions.
var ErrTooLarge = errors.New("streammatch: pattern too large")

// Matcher is a compiled pattern. It is safe for concurrent use; its
// States are not.
type Matcher struct {
	prog     *syntax.Prog
	never    bool // the program cannot match (its start fails)
	anchored bool // matches only at the text's start (\A, or ^ without (?m), first)
	nullable bool // a match can consume no rune: no byte can be skipped
	hasEmpty bool // the program has empty-width instructions
	// Where no thread waits, bytes b with !first[b] cannot start a match.
	first  [256]bool
	prefix string // every match starts with it ("" if none known)
	single int    // the only byte first holds, or -1
}

// Compile parses expr as regexp.Compile does and returns its Matcher.
func Compile(expr string) (*Matcher, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, err
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, err
	}
	if len(prog.Inst) > MaxInst {
		return nil, ErrTooLarge
	}
	m := &Matcher{prog: prog, single: -1}
	cond := prog.StartCond()
	m.never = cond == ^syntax.EmptyOp(0)
	m.anchored = cond&syntax.EmptyBeginText != 0
	for i := range prog.Inst {
		if prog.Inst[i].Op == syntax.InstEmptyWidth {
			m.hasEmpty = true
		}
	}
	m.firstBytes()
	if p, _ := prog.Prefix(); p != "" && p[0] < utf8.RuneSelf {
		m.prefix = p
	}
	n := 0
	for b, ok := range m.first {
		if ok {
			n++
			m.single = b
		}
	}
	if n != 1 {
		m.single = -1
	}
	return m, nil
}

// firstBytes computes first and nullable from the instructions reachable
// from the start without consuming a rune, every assertion taken as
// holding (so first holds at least every byte a match can start with).
func (m *Matcher) firstBytes() {
	p := m.prog
	seen := make([]bool, len(p.Inst))
	stack := []uint32{uint32(p.Start)}
	nonASCII := false
	for len(stack) > 0 {
		pc := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if seen[pc] {
			continue
		}
		seen[pc] = true
		in := &p.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			stack = append(stack, in.Out, in.Arg)
		case syntax.InstNop, syntax.InstCapture, syntax.InstEmptyWidth:
			stack = append(stack, in.Out)
		case syntax.InstMatch:
			m.nullable = true
		case syntax.InstRuneAny, syntax.InstRuneAnyNotNL:
			for b := range m.first {
				if b != '\n' || in.Op == syntax.InstRuneAny {
					m.first[b] = true
				}
			}
		case syntax.InstRune1, syntax.InstRune:
			for b := rune(0); b < utf8.RuneSelf; b++ {
				if in.MatchRune(b) {
					m.first[b] = true
				}
			}
			if matchesNonASCII(in) {
				nonASCII = true
			}
		}
	}
	if nonASCII {
		// Any byte from 0x80 may start a rune the instruction takes, or
		// an invalid one (U+FFFD).
		for b := utf8.RuneSelf; b < len(m.first); b++ {
			m.first[b] = true
		}
	}
}

// matchesNonASCII reports whether a rune instruction may take a rune
// from U+0080 on.
func matchesNonASCII(in *syntax.Inst) bool {
	r := in.Rune
	if len(r) == 1 {
		if r[0] >= utf8.RuneSelf {
			return true
		}
		if syntax.Flags(in.Arg)&syntax.FoldCase != 0 {
			for f := unicode.SimpleFold(r[0]); f != r[0]; f = unicode.SimpleFold(f) {
				if f >= utf8.RuneSelf {
					return true
				}
			}
		}
		return false
	}
	for i := 1; i < len(r); i += 2 {
		if r[i] >= utf8.RuneSelf {
			return true
		}
	}
	return false
}

// skip returns the first index from i at which a match can start, or
// len(s): no thread waits, so a match must start at or after i.
func (m *Matcher) skip(s string, i int) int {
	if m.prefix != "" {
		if k := strings.Index(s[i:], m.prefix); k >= 0 {
			return i + k
		}
		// The prefix may start in its last len(prefix)-1 bytes and end
		// in the next append.
		i = max(i, len(s)-len(m.prefix)+1)
	}
	if m.single >= 0 {
		if k := strings.IndexByte(s[i:], byte(m.single)); k >= 0 {
			return i + k
		}
		return len(s)
	}
	for i < len(s) && !m.first[s[i]] {
		i++
	}
	return i
}

// sparse is a set of program counters: O(1) add, test and clear.
type sparse struct {
	dense  []uint32
	sparse []uint32
}

func newSparse(n int) sparse {
	return sparse{dense: make([]uint32, 0, n), sparse: make([]uint32, n)}
}

func (s *sparse) has(pc uint32) bool {
	i := s.sparse[pc]
	return int(i) < len(s.dense) && s.dense[i] == pc
}

func (s *sparse) add(pc uint32) {
	s.sparse[pc] = uint32(len(s.dense))
	s.dense = append(s.dense, pc)
}

func (s *sparse) clear() { s.dense = s.dense[:0] }

// State is where a Matcher stands after the text fed to it. It is not
// safe for concurrent use.
type State struct {
	m *Matcher
	// pend holds the threads waiting for the next rune: the instructions
	// after the runes they consumed, not yet followed through empty-width
	// instructions.
	pend    sparse
	prev    rune // the last rune consumed; -1 before the first
	started bool // a rune was consumed (the start thread is not added again if anchored)
	matched bool // the text fed contains a match, whatever follows
	dead    bool // no later text can match (anchored, and its start failed)
	tail    [utf8.UTFMax]byte
	ntail   int // bytes of an unfinished rune, not yet consumed

	clos  sparse // scratch: the closure at one position
	stack []uint32
	tmp   *State // scratch for Match when a rune is unfinished
}

// NewState returns the state before any text.
func (m *Matcher) NewState() *State {
	n := len(m.prog.Inst)
	s := &State{m: m, pend: newSparse(n), clos: newSparse(n), prev: -1}
	s.dead = m.never
	return s
}

// Reset puts s back before any text.
func (s *State) Reset() {
	s.pend.clear()
	s.prev, s.started, s.matched, s.dead, s.ntail = -1, false, false, s.m.never, 0
}

// CopyFrom makes s stand where o stands. Both are of the same Matcher.
func (s *State) CopyFrom(o *State) {
	if s == o {
		return
	}
	s.pend.clear()
	for _, pc := range o.pend.dense {
		s.pend.add(pc)
	}
	s.prev, s.started, s.matched, s.dead = o.prev, o.started, o.matched, o.dead
	s.tail, s.ntail = o.tail, o.ntail
}

// Feed appends text to what s has seen.
func (s *State) Feed(text string) {
	if s.matched || s.dead {
		return
	}
	i := 0
	if s.ntail > 0 {
		i = s.feedTail(text)
		if s.ntail > 0 || s.matched || s.dead {
			return
		}
	}
	m := s.m
	for i < len(text) {
		if len(s.pend.dense) == 0 {
			if m.anchored && s.started {
				s.dead = true
				return
			}
			if !m.nullable && !m.anchored {
				if j := m.skip(text, i); j > i {
					// The runes skipped start no thread: only the class of
					// the last (word, newline, other) matters after them,
					// and an ASCII byte is always a rune of its own.
					s.prev, s.started = lastClass(text[j-1]), true
					i = j
					continue
				}
			}
		}
		c := text[i]
		r, w := rune(c), 1
		if c >= utf8.RuneSelf {
			if !utf8.FullRuneInString(text[i:]) {
				s.ntail = copy(s.tail[:], text[i:])
				return
			}
			r, w = utf8.DecodeRuneInString(text[i:])
		}
		s.step(r)
		if s.matched {
			return
		}
		i += w
	}
}

// feedTail completes the unfinished rune with text's first bytes and
// consumes what it can of it. It returns the bytes of text consumed.
func (s *State) feedTail(text string) int {
	i := 0
	for s.ntail > 0 {
		var buf [2 * utf8.UTFMax]byte
		n := copy(buf[:], s.tail[:s.ntail])
		k := copy(buf[n:], text[i:])
		b := buf[:n+k]
		if !utf8.FullRune(b) {
			// Still unfinished: text is shorter than what the rune needs.
			s.ntail += copy(s.tail[s.ntail:], text[i:])
			return len(text)
		}
		r, w := utf8.DecodeRune(b)
		s.step(r)
		if w >= s.ntail {
			i += w - s.ntail
			s.ntail = 0
		} else {
			// An invalid byte (U+FFFD): the rest of the tail starts over.
			copy(s.tail[:], s.tail[w:s.ntail])
			s.ntail -= w
		}
		if s.matched {
			return i
		}
	}
	return i
}

// lastClass is a rune of the same class as the rune that ends with byte
// b, for the assertions: b itself if ASCII, else a rune that is neither a
// word character nor a newline.
func lastClass(b byte) rune {
	if b < utf8.RuneSelf {
		return rune(b)
	}
	return utf8.RuneError
}

// step consumes rune r.
func (s *State) step(r rune) {
	m := s.m
	var flag syntax.EmptyOp
	if m.hasEmpty {
		flag = syntax.EmptyOpContext(s.prev, r)
	}
	s.clos.clear()
	found := false
	for _, pc := range s.pend.dense {
		found = s.closure(pc, flag) || found
	}
	if !s.started || !m.anchored {
		found = s.closure(uint32(m.prog.Start), flag) || found
	}
	s.prev, s.started = r, true
	if found {
		s.matched = true
		return
	}
	s.pend.clear()
	for _, pc := range s.clos.dense {
		in := &m.prog.Inst[pc]
		var ok bool
		switch in.Op {
		case syntax.InstRune:
			ok = in.MatchRune(r)
		case syntax.InstRune1:
			ok = r == in.Rune[0]
		case syntax.InstRuneAny:
			ok = true
		case syntax.InstRuneAnyNotNL:
			ok = r != '\n'
		default:
			continue
		}
		if ok && !s.pend.has(in.Out) {
			s.pend.add(in.Out)
		}
	}
}

// closure adds to clos what pc reaches without consuming a rune where
// the assertions flag holds; it reports whether that reaches a match.
func (s *State) closure(pc uint32, flag syntax.EmptyOp) bool {
	p := s.m.prog
	found := false
	st := append(s.stack[:0], pc)
	for len(st) > 0 {
		pc := st[len(st)-1]
		st = st[:len(st)-1]
		if s.clos.has(pc) {
			continue
		}
		s.clos.add(pc)
		in := &p.Inst[pc]
		switch in.Op {
		case syntax.InstAlt, syntax.InstAltMatch:
			st = append(st, in.Arg, in.Out)
		case syntax.InstNop, syntax.InstCapture:
			st = append(st, in.Out)
		case syntax.InstEmptyWidth:
			if syntax.EmptyOp(in.Arg)&^flag == 0 {
				st = append(st, in.Out)
			}
		case syntax.InstMatch:
			found = true
		}
	}
	s.stack = st
	return found
}

// Match reports whether the text fed so far contains a match, as
// regexp.MatchString on it would. It does not change s.
func (s *State) Match() bool {
	if s.matched {
		return true
	}
	if s.dead {
		return false
	}
	t := s
	if s.ntail > 0 {
		// The unfinished rune's bytes are, at the end of the text,
		// invalid bytes of their own: consumed on a copy.
		if s.tmp == nil {
			s.tmp = s.m.NewState()
		}
		t = s.tmp
		t.CopyFrom(s)
		tail := string(t.tail[:t.ntail])
		t.ntail = 0
		for _, r := range tail {
			t.step(r)
			if t.matched {
				return true
			}
		}
	}
	return t.matchAtEnd()
}

// matchAtEnd reports whether a waiting thread, or a match starting here,
// matches with the text ending here.
func (s *State) matchAtEnd() bool {
	m := s.m
	startHere := !s.started || !m.anchored
	if len(s.pend.dense) == 0 && (!startHere || !m.nullable) {
		return false
	}
	var flag syntax.EmptyOp
	if m.hasEmpty {
		flag = syntax.EmptyOpContext(s.prev, -1)
	}
	s.clos.clear()
	for _, pc := range s.pend.dense {
		if s.closure(pc, flag) {
			return true
		}
	}
	return startHere && s.closure(uint32(m.prog.Start), flag)
}
