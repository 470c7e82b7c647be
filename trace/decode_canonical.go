package trace

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// A Decoder decodes record bodies as DecodeRecord does, faster: a body in
// the form Encode writes (keys in canonical order, no white space) is
// read by a parser made for the record's fixed fields, and anything else
// — white space, keys in another order or case, escapes Encode does not
// write, invalid UTF-8, unknown fields, null, trailing data — by the
// generic decoder DecodeRecord always used, so that every body decodes to
// the same record, or fails, as it did with that decoder alone
// (FuzzDecoderAgrees checks it). A Decoder also shares the strings that
// records of one run repeat (ids, kinds, statuses, policy ids), so that a
// chain's records hold each once.
//
// A Decoder is not safe for concurrent use. Its zero value is ready; a
// nil *Decoder decodes too, sharing nothing.
type Decoder struct {
	strs map[string]string
	last [fViolationPolicyID + 1]string // the last string read per record field
}

// maxShared bounds the strings a Decoder shares: a chain with more
// distinct values than this decodes the rest without sharing them.
const maxShared = 512

// Decode decodes one record body, as DecodeRecord.
func (d *Decoder) Decode(body []byte, prevHash, hash string) (Record, error) {
	if len(body) <= MaxRecordSize {
		var r Record
		p := parser{b: body, d: d}
		if p.record(&r) {
			r.PrevHash, r.Hash = prevHash, hash
			return r, nil
		}
	}
	return decodeGeneric(body, prevHash, hash)
}

// share returns b as a string, the same string for the same bytes while
// fewer than maxShared are kept. f is the record field the string is of,
// or -1: most fields repeat the previous record's value.
func (d *Decoder) share(f int, b []byte) string {
	if d == nil {
		return string(b)
	}
	if f >= 0 && d.last[f] == string(b) {
		return d.last[f]
	}
	if s, ok := d.strs[string(b)]; ok {
		if f >= 0 {
			d.last[f] = s
		}
		return s
	}
	s := string(b)
	if d.strs == nil {
		d.strs = make(map[string]string, 32)
	}
	if len(d.strs) < maxShared {
		d.strs[s] = s
	}
	if f >= 0 {
		d.last[f] = s
	}
	return s
}

// parser reads a body in the form Encode writes. Each method reports
// whether it read what it expected; on false the caller gives the body to
// the generic decoder, so a parser never has to say what went wrong.
type parser struct {
	b   []byte
	i   int
	d   *Decoder
	tmp []byte // unescaped text of the last string with escapes
}

// Record fields in canonical (sorted) order, as Encode writes them.
const (
	fAt = iota
	fContentHash
	fCostCents
	fDecision
	fFindings
	fIncidentID
	fInflection
	fKeptContentHash
	fKind
	fMessage
	fModel
	fReason
	fRetention
	fRunID
	fRunStatus
	fSeq
	fShadowDecision
	fShadowFindings
	fShadowSnapshotHash
	fShadowSnapshotID
	fSnapshotHash
	fSnapshotID
	fStatus
	fStepIndex
	fStepType
	fStoppedAtStep
	fTenantID
	fTokens
	fTool
	fTotalCostCents
	fTotalTokens
	fViolationPolicyID
)

func recordField(k []byte) int {
	switch string(k) {
	case "at":
		return fAt
	case "content_hash":
		return fContentHash
	case "cost_cents":
		return fCostCents
	case "decision":
		return fDecision
	case "findings":
		return fFindings
	case "incident_id":
		return fIncidentID
	case "inflection":
		return fInflection
	case "kind":
		return fKind
	case "message":
		return fMessage
	case "model":
		return fModel
	case "reason":
		return fReason
	case "kept_content_hash":
		return fKeptContentHash
	case "retention":
		return fRetention
	case "shadow_decision":
		return fShadowDecision
	case "shadow_findings":
		return fShadowFindings
	case "shadow_snapshot_hash":
		return fShadowSnapshotHash
	case "shadow_snapshot_id":
		return fShadowSnapshotID
	case "run_id":
		return fRunID
	case "run_status":
		return fRunStatus
	case "seq":
		return fSeq
	case "snapshot_hash":
		return fSnapshotHash
	case "snapshot_id":
		return fSnapshotID
	case "status":
		return fStatus
	case "step_index":
		return fStepIndex
	case "step_type":
		return fStepType
	case "stopped_at_step":
		return fStoppedAtStep
	case "tenant_id":
		return fTenantID
	case "tokens":
		return fTokens
	case "tool":
		return fTool
	case "total_cost_cents":
		return fTotalCostCents
	case "total_tokens":
		return fTotalTokens
	case "violation_policy_id":
		return fViolationPolicyID
	}
	return -1
}

// record reads a whole body into r.
func (p *parser) record(r *Record) bool {
	r.StepIndex = -1
	if !p.byte('{') {
		return false
	}
	last := -1
	for n := 0; ; n++ {
		if p.peek() == '}' {
			p.i++
			break
		}
		if n > 0 && !p.byte(',') {
			return false
		}
		k, ok := p.key()
		if !ok {
			return false
		}
		f := recordField(k)
		if f <= last { // unknown, repeated or out of order
			return false
		}
		last = f
		if !p.recordValue(r, f) {
			return false
		}
	}
	return p.i == len(p.b)
}

func (p *parser) recordValue(r *Record, f int) bool {
	var ok bool
	switch f {
	case fAt:
		raw, okRaw := p.rawString()
		ok = okRaw && r.At.UnmarshalJSON(raw) == nil
	case fContentHash:
		r.ContentHash, ok = p.string(noShare)
	case fCostCents:
		r.CostCents, ok = p.float()
	case fDecision:
		r.Decision, ok = p.decisionObject()
	case fFindings:
		r.Findings, ok = p.findings()
	case fKeptContentHash:
		r.KeptContentHash, ok = p.string(noShare)
	case fRetention:
		var s string
		s, ok = p.string(fRetention)
		r.Retention = Retention(s)
	case fShadowDecision:
		r.ShadowDecision, ok = p.decisionObject()
	case fShadowFindings:
		r.ShadowFindings, ok = p.findings()
	case fShadowSnapshotHash:
		r.ShadowSnapshotHash, ok = p.string(fShadowSnapshotHash)
	case fShadowSnapshotID:
		r.ShadowSnapshotID, ok = p.string(fShadowSnapshotID)
	case fIncidentID:
		r.IncidentID, ok = p.string(fIncidentID)
	case fInflection:
		r.Inflection, ok = p.bool()
	case fKind:
		var s string
		s, ok = p.string(fKind)
		r.Kind = Kind(s)
	case fMessage:
		r.Message, ok = p.string(noShare)
	case fModel:
		r.Model, ok = p.string(fModel)
	case fReason:
		ok = p.text(r.Reason.UnmarshalText)
	case fRunID:
		r.RunID, ok = p.string(fRunID)
	case fRunStatus:
		r.RunStatus, ok = p.string(fRunStatus)
	case fSeq:
		r.Seq, ok = p.intValue()
	case fSnapshotHash:
		r.SnapshotHash, ok = p.string(fSnapshotHash)
	case fSnapshotID:
		r.SnapshotID, ok = p.string(fSnapshotID)
	case fStatus:
		var s string
		s, ok = p.string(fStatus)
		r.Status = Status(s)
	case fStepIndex:
		r.StepIndex, ok = p.intValue()
	case fStepType:
		ok = p.text(r.StepType.UnmarshalText)
	case fStoppedAtStep:
		var v int
		if v, ok = p.intValue(); ok {
			r.StoppedAtStep = &v
		}
	case fTenantID:
		r.TenantID, ok = p.string(fTenantID)
	case fTokens:
		r.Tokens, ok = p.int64()
	case fTool:
		r.Tool, ok = p.string(fTool)
	case fTotalCostCents:
		r.TotalCostCents, ok = p.float()
	case fTotalTokens:
		r.TotalTokens, ok = p.int64()
	case fViolationPolicyID:
		r.ViolationPolicyID, ok = p.string(fViolationPolicyID)
	}
	return ok
}

func (p *parser) findings() ([]prevention.Decision, bool) {
	if !p.byte('[') {
		return nil, false
	}
	// As encoding/json: [] is an empty slice, not nil.
	out := []prevention.Decision{}
	if p.peek() == ']' {
		p.i++
		return out, true
	}
	for {
		out = append(out, prevention.Decision{})
		if p.peek() != '{' || !p.decision(&out[len(out)-1]) {
			return nil, false
		}
		switch p.peek() {
		case ',':
			p.i++
		case ']':
			p.i++
			return out, true
		default:
			return nil, false
		}
	}
}

// Decision fields in canonical order.
const (
	dAction = iota
	dEnforcement
	dLimit
	dMessage
	dObserved
	dPolicyID
	dReason
	dSource
	dThreshold
)

func decisionField(k []byte) int {
	switch string(k) {
	case "action":
		return dAction
	case "enforcement":
		return dEnforcement
	case "limit":
		return dLimit
	case "message":
		return dMessage
	case "observed":
		return dObserved
	case "policy_id":
		return dPolicyID
	case "reason":
		return dReason
	case "source":
		return dSource
	case "threshold":
		return dThreshold
	}
	return -1
}

// decisionObject reads a decision that must be an object (not null).
func (p *parser) decisionObject() (*prevention.Decision, bool) {
	if p.peek() != '{' {
		return nil, false
	}
	d := new(prevention.Decision)
	return d, p.decision(d)
}

func (p *parser) decision(d *prevention.Decision) bool {
	if !p.byte('{') {
		return false
	}
	last := -1
	for n := 0; ; n++ {
		if p.peek() == '}' {
			p.i++
			return true
		}
		if n > 0 && !p.byte(',') {
			return false
		}
		k, ok := p.key()
		if !ok {
			return false
		}
		f := decisionField(k)
		if f <= last {
			return false
		}
		last = f
		switch f {
		case dAction:
			ok = p.text(d.Action.UnmarshalText)
		case dEnforcement:
			var s string
			s, ok = p.string(-1)
			d.Enforcement = snapshot.Enforcement(s)
		case dLimit:
			d.Limit, ok = p.float()
		case dMessage:
			d.Message, ok = p.string(noShare)
		case dObserved:
			d.Observed, ok = p.float()
		case dPolicyID:
			d.PolicyID, ok = p.string(-1)
		case dReason:
			ok = p.text(d.Reason.UnmarshalText)
		case dSource:
			var s string
			s, ok = p.string(-1)
			d.Source = prevention.Source(s)
		case dThreshold:
			d.Threshold, ok = p.string(-1)
		}
		if !ok {
			return false
		}
	}
}

func (p *parser) peek() byte {
	if p.i < len(p.b) {
		return p.b[p.i]
	}
	return 0
}

func (p *parser) byte(c byte) bool {
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// key reads a member's key and its colon: a plain key of lower-case
// letters and underscores, as every field of a record is named.
func (p *parser) key() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	for p.i < len(p.b) {
		c := p.b[p.i]
		if c == '"' {
			k := p.b[start:p.i]
			p.i++
			return k, len(k) > 0 && p.byte(':')
		}
		if (c < 'a' || c > 'z') && c != '_' {
			return nil, false
		}
		p.i++
	}
	return nil, false
}

// rawString reads a string and returns it with its quotes, as it is in
// the body (what encoding/json hands a json.Unmarshaler).
func (p *parser) rawString() ([]byte, bool) {
	start := p.i
	if _, ok := p.stringBytes(); !ok {
		return nil, false
	}
	return p.b[start:p.i], true
}

// string reads a string; the Decoder shares it when f is a record field
// (see share) or -1, and not when f is noShare.
func (p *parser) string(f int) (string, bool) {
	b, ok := p.stringBytes()
	if !ok {
		return "", false
	}
	if f != noShare {
		return p.d.share(f, b), true
	}
	return string(b), true
}

// noShare marks a string no other record is likely to repeat.
const noShare = -2

// text reads a string and hands its text to an UnmarshalText method, as
// encoding/json does for a type that has one.
func (p *parser) text(unmarshal func([]byte) error) bool {
	b, ok := p.stringBytes()
	return ok && unmarshal(b) == nil
}

// stringBytes reads a JSON string and returns its text: the body's bytes
// when it has no escape, else its unescaped copy in p.tmp (valid until
// the next string). It reads only what encoding/json reads the same way:
// valid UTF-8, no raw control character, and of the escapes only those
// that are not surrogates.
func (p *parser) stringBytes() ([]byte, bool) {
	if !p.byte('"') {
		return nil, false
	}
	start := p.i
	ascii := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			return s, ascii || utf8.Valid(s)
		case c == '\\':
			return p.escapedString(start)
		case c < 0x20:
			return nil, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
		p.i++
	}
	return nil, false
}

// escapedString reads the rest of a string that has an escape at p.i,
// from start, into p.tmp.
func (p *parser) escapedString(start int) ([]byte, bool) {
	out := append(p.tmp[:0], p.b[start:p.i]...)
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			p.tmp = out
			return out, utf8.Valid(out)
		case c < 0x20:
			return nil, false
		case c != '\\':
			out = append(out, c)
			p.i++
			continue
		}
		if p.i+1 >= len(p.b) {
			return nil, false
		}
		e := p.b[p.i+1]
		p.i += 2
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if p.i+4 > len(p.b) {
				return nil, false
			}
			v, err := strconv.ParseUint(string(p.b[p.i:p.i+4]), 16, 16)
			if err != nil || (v >= 0xD800 && v < 0xE000) {
				return nil, false // surrogates: the generic decoder pairs them
			}
			out = utf8.AppendRune(out, rune(v))
			p.i += 4
		default:
			return nil, false
		}
	}
	return nil, false
}

func (p *parser) bool() (bool, bool) {
	switch {
	case len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "true":
		p.i += 4
		return true, true
	case len(p.b)-p.i >= 5 && string(p.b[p.i:p.i+5]) == "false":
		p.i += 5
		return false, true
	}
	return false, false
}

// number reads a JSON number (RFC 8259's grammar) and returns its text
// and whether it is an integer (no fraction, no exponent).
func (p *parser) number() (text []byte, integer bool, ok bool) {
	start := p.i
	p.byte('-')
	switch c := p.peek(); {
	case c == '0':
		p.i++
	case c >= '1' && c <= '9':
		for c := p.peek(); c >= '0' && c <= '9'; c = p.peek() {
			p.i++
		}
	default:
		return nil, false, false
	}
	integer = true
	if p.peek() == '.' {
		integer = false
		p.i++
		if c := p.peek(); c < '0' || c > '9' {
			return nil, false, false
		}
		for c := p.peek(); c >= '0' && c <= '9'; c = p.peek() {
			p.i++
		}
	}
	if c := p.peek(); c == 'e' || c == 'E' {
		integer = false
		p.i++
		if c := p.peek(); c == '+' || c == '-' {
			p.i++
		}
		if c := p.peek(); c < '0' || c > '9' {
			return nil, false, false
		}
		for c := p.peek(); c >= '0' && c <= '9'; c = p.peek() {
			p.i++
		}
	}
	return p.b[start:p.i], integer, true
}

func (p *parser) int64() (int64, bool) {
	text, integer, ok := p.number()
	if !ok || !integer {
		return 0, false
	}
	v, err := strconv.ParseInt(string(text), 10, 64)
	return v, err == nil
}

func (p *parser) intValue() (int, bool) {
	v, ok := p.int64()
	return int(v), ok && int64(int(v)) == v
}

func (p *parser) float() (float64, bool) {
	text, _, ok := p.number()
	if !ok {
		return 0, false
	}
	v, err := strconv.ParseFloat(string(text), 64)
	return v, err == nil
}

// DecodeContent decodes stored content (as EncodeContent writes it) as
// encoding/json's Unmarshal into a Content does — unknown fields are
// ignored —, reading the form EncodeContent writes with a parser made for
// it, and any other with encoding/json.
func DecodeContent(b []byte) (Content, error) {
	var c Content
	p := parser{b: b}
	if p.content(&c) {
		return c, nil
	}
	c = Content{}
	err := json.Unmarshal(b, &c)
	return c, err
}

// content reads a whole content object into c.
func (p *parser) content(c *Content) bool {
	if !p.byte('{') {
		return false
	}
	last := -1
	for n := 0; ; n++ {
		if p.peek() == '}' {
			p.i++
			return p.i == len(p.b)
		}
		if n > 0 && !p.byte(',') {
			return false
		}
		k, ok := p.key()
		if !ok {
			return false
		}
		f := -1
		switch string(k) {
		case "input":
			f = 0
		case "metadata":
			f = 1
		case "output":
			f = 2
		}
		if f <= last {
			return false
		}
		last = f
		switch f {
		case 0:
			c.Input, ok = p.string(noShare)
		case 1:
			ok = p.metadata(c)
		case 2:
			c.Output, ok = p.string(noShare)
		}
		if !ok {
			return false
		}
	}
}

// metadata reads the metadata object: string values under string keys (a
// key given twice, which encoding/json reads as the last, goes to
// encoding/json).
func (p *parser) metadata(c *Content) bool {
	if !p.byte('{') {
		return false
	}
	c.Metadata = map[string]string{}
	for n := 0; ; n++ {
		if p.peek() == '}' {
			p.i++
			return true
		}
		if n > 0 && !p.byte(',') {
			return false
		}
		k, ok := p.string(noShare)
		if !ok || !p.byte(':') {
			return false
		}
		if _, dup := c.Metadata[k]; dup {
			return false
		}
		v, ok := p.string(noShare)
		if !ok {
			return false
		}
		c.Metadata[k] = v
	}
}
