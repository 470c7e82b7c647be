package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// A bundle's canonical JSON is written here, straight from its typed
// values, one member of the bundle at a time and, in its two long arrays
// (the chain and the steps), one element at a time, so that it can be
// written to a stream as the elements are read: the bytes are exactly
// snapshot.Canonical of the bundle's encoding/json encoding (the tests
// compare the two, and FuzzWriterAgrees fuzzes the element writers against
// it). The other members are small and go through that generic path.

// parts are the elements of a bundle's chain and steps, given one at a
// time as the bundle is written.
type parts struct {
	// chain calls emit with each chain record in order; nil writes null.
	chain func(emit func(*ChainRecord) error) error
	// steps calls emit with each step in order; nil writes null.
	steps func(emit func(*TraceStepEvidence) error) error
	// encoded: every chain record's body is trace.Encode's output, which
	// is canonical; otherwise each body is checked and made canonical.
	encoded bool
	// afterChain, if set, is called once the chain is written, before the
	// members after it: the bundle's facts may be filled from the chain.
	afterChain func() error
}

// partsOf returns a bundle's own chain and steps.
func partsOf(b Bundle) parts {
	var p parts
	var chain []ChainRecord
	var steps []TraceStepEvidence
	hasSteps := false
	switch x := b.(type) {
	case *Evidence:
		chain, steps, hasSteps = x.Chain, x.Steps, true
	case *SOC2:
		chain, steps, hasSteps = x.Chain, x.Steps, true
	case *ExecutiveDebrief:
		chain = x.Chain
	}
	if chain != nil {
		p.chain = func(emit func(*ChainRecord) error) error {
			for i := range chain {
				if err := emit(&chain[i]); err != nil {
					return err
				}
			}
			return nil
		}
	}
	if hasSteps && steps != nil {
		p.steps = func(emit func(*TraceStepEvidence) error) error {
			for i := range steps {
				if err := emit(&steps[i]); err != nil {
					return err
				}
			}
			return nil
		}
	}
	return p
}

// skeleton returns a copy of b without its chain and steps.
func skeleton(b Bundle) (Bundle, error) {
	switch x := b.(type) {
	case *Evidence:
		c := *x
		c.Chain, c.Steps = nil, nil
		return &c, nil
	case *SOC2:
		c := *x
		c.Chain, c.Steps = nil, nil
		return &c, nil
	case *ExecutiveDebrief:
		c := *x
		c.Chain = nil
		return &c, nil
	}
	return nil, fmt.Errorf("bundle: unknown bundle %T", b)
}

// members returns the canonical JSON of each member of b's encoding, by
// key, and the keys in canonical order.
func members(b Bundle) (map[string][]byte, []string, error) {
	sk, err := skeleton(b)
	if err != nil {
		return nil, nil, err
	}
	raw, err := json.Marshal(sk)
	if err != nil {
		return nil, nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", snapshot.ErrNotCanonicalizable, err)
	}
	out := make(map[string][]byte, len(fields))
	keys := make([]string, 0, len(fields))
	for k, v := range fields {
		// An array member is made canonical element by element, so that a
		// long one is never held as one tree of Go values.
		c, err := canonicalSplit(nil, v, 1)
		if err != nil {
			return nil, nil, err
		}
		out[k] = c
		keys = append(keys, k)
	}
	snapshot.SortKeys(keys)
	return out, keys, nil
}

// writeBundle writes b's canonical JSON to w, its chain and steps from p.
func writeBundle(w *jsonWriter, b Bundle, p parts) error {
	vals, keys, err := members(b)
	if err != nil {
		return err
	}
	w.byte('{')
	chainWritten := false
	for i := 0; i < len(keys); i++ {
		k := keys[i]
		if i > 0 {
			w.byte(',')
		}
		w.buf = snapshot.AppendString(w.buf, k)
		w.byte(':')
		switch k {
		case "chain":
			if err := writeArray(w, p.chain, func(cr *ChainRecord) error { return w.chainRecord(cr, p.encoded) }); err != nil {
				return err
			}
			chainWritten = true
			if p.afterChain != nil {
				if err := p.afterChain(); err != nil {
					return err
				}
				// The members after the chain, as the bundle now is; those
				// before it must not have changed.
				again, againKeys, err := members(b)
				if err != nil {
					return err
				}
				if len(againKeys) <= i || againKeys[i] != "chain" {
					return errors.New("bundle: the bundle's members changed while its chain was written")
				}
				for j := 0; j < i; j++ {
					if k2 := againKeys[j]; k2 != keys[j] || !bytes.Equal(again[k2], vals[k2]) {
						return errors.New("bundle: the bundle's members changed while its chain was written")
					}
				}
				vals, keys = again, againKeys
			}
		case "steps":
			if err := writeArray(w, p.steps, w.step); err != nil {
				return err
			}
		default:
			w.bytes(vals[k])
		}
		if err := w.flushIfFull(); err != nil {
			return err
		}
	}
	w.byte('}')
	if !chainWritten && p.afterChain != nil {
		return errors.New("bundle: a streamed bundle has no chain")
	}
	return w.flush()
}

// writeArray writes the elements each gives, or null when each is nil.
func writeArray[T any](w *jsonWriter, each func(emit func(*T) error) error, write func(*T) error) error {
	if each == nil {
		w.buf = append(w.buf, "null"...)
		return nil
	}
	w.byte('[')
	n := 0
	err := each(func(v *T) error {
		if n > 0 {
			w.byte(',')
		}
		n++
		if err := write(v); err != nil {
			return err
		}
		return w.flushIfFull()
	})
	if err != nil {
		return err
	}
	w.byte(']')
	return nil
}

// jsonWriter writes to w through a buffer, counting what it wrote and
// keeping the first error.
type jsonWriter struct {
	w   io.Writer
	buf []byte
	n   int64
	err error
}

const jsonWriterBuffer = 64 << 10

func newJSONWriter(w io.Writer) *jsonWriter {
	return &jsonWriter{w: w, buf: make([]byte, 0, jsonWriterBuffer+4096)}
}

func (w *jsonWriter) byte(c byte)    { w.buf = append(w.buf, c) }
func (w *jsonWriter) bytes(b []byte) { w.buf = append(w.buf, b...) }
func (w *jsonWriter) str(s string)   { w.buf = snapshot.AppendString(w.buf, s) }
func (w *jsonWriter) key(k string)   { w.buf = append(append(append(w.buf, '"'), k...), '"', ':') }
func (w *jsonWriter) comma()         { w.buf = append(w.buf, ',') }
func (w *jsonWriter) flushIfFull() error {
	if len(w.buf) >= jsonWriterBuffer {
		return w.flush()
	}
	return w.err
}

func (w *jsonWriter) flush() error {
	if w.err == nil && len(w.buf) > 0 {
		var n int
		n, w.err = w.w.Write(w.buf)
		w.n += int64(n)
	}
	w.buf = w.buf[:0]
	return w.err
}

// number writes f as canonical JSON does; like encoding/json, it refuses
// NaN and the infinities.
func (w *jsonWriter) number(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("%w: unsupported value: %v", snapshot.ErrNotCanonicalizable, f)
	}
	w.buf = snapshot.AppendNumber(w.buf, f)
	return nil
}

// text writes the text of a value's MarshalText as a string.
func (w *jsonWriter) text(m interface{ MarshalText() ([]byte, error) }) error {
	t, err := m.MarshalText()
	if err != nil {
		return err
	}
	w.buf = snapshot.AppendString(w.buf, string(t))
	return nil
}

// chainRecord writes one chain record: {"hash","prev_hash","record"}. A
// body that is not known to be trace.Encode's output is written as its
// canonical form.
func (w *jsonWriter) chainRecord(cr *ChainRecord, encoded bool) error {
	w.buf = append(w.buf, `{"hash":`...)
	w.str(cr.Hash)
	w.buf = append(w.buf, `,"prev_hash":`...)
	w.str(cr.PrevHash)
	w.buf = append(w.buf, `,"record":`...)
	switch body := []byte(cr.Record); {
	case body == nil: // as encoding/json writes a nil json.RawMessage
		w.buf = append(w.buf, "null"...)
	case len(body) == 0:
		return fmt.Errorf("%w: an empty chain record", snapshot.ErrNotCanonicalizable)
	case encoded || isEncodedRecord(body):
		w.bytes(body)
	default:
		c, err := snapshot.Canonical(body)
		if err != nil {
			return err
		}
		w.bytes(c)
	}
	w.byte('}')
	return nil
}

// isEncodedRecord reports whether body is trace.Encode's encoding of the
// record it decodes to: canonical JSON.
func isEncodedRecord(body []byte) bool {
	r, err := trace.DecodeRecord(body, "", "")
	if err != nil {
		return false
	}
	var buf [1024]byte
	return bytes.Equal(trace.Encode(buf[:0], &r), body)
}

// step writes one step, its members in canonical order.
func (w *jsonWriter) step(s *TraceStepEvidence) error {
	w.byte('{')
	if s.Content != nil {
		w.key("content")
		w.buf = trace.EncodeContent(w.buf, s.Content)
		w.comma()
	}
	if s.ContentHash != "" {
		w.key("content_hash")
		w.str(s.ContentHash)
		w.comma()
	}
	w.key("cost_cents")
	if err := w.number(s.CostCents); err != nil {
		return err
	}
	w.comma()
	w.key("decision")
	if err := w.decision(&s.Decision); err != nil {
		return err
	}
	if len(s.Findings) > 0 {
		w.comma()
		w.key("findings")
		w.byte('[')
		for i := range s.Findings {
			if i > 0 {
				w.comma()
			}
			if err := w.decision(&s.Findings[i]); err != nil {
				return err
			}
		}
		w.byte(']')
	}
	w.comma()
	w.key("is_inflection")
	if s.IsInflection {
		w.buf = append(w.buf, "true"...)
	} else {
		w.buf = append(w.buf, "false"...)
	}
	if s.Model != "" {
		w.comma()
		w.key("model")
		w.str(s.Model)
	}
	w.comma()
	w.key("prev_hash")
	w.str(s.PrevHash)
	w.comma()
	w.key("record_hash")
	w.str(s.RecordHash)
	w.comma()
	w.key("seq")
	w.number(float64(s.Seq))
	w.comma()
	w.key("status")
	w.str(string(s.Status))
	w.comma()
	w.key("step_index")
	w.number(float64(s.StepIndex))
	w.comma()
	w.key("step_type")
	if err := w.text(s.StepType); err != nil {
		return err
	}
	w.comma()
	w.key("timestamp")
	ts, err := s.Timestamp.MarshalJSON()
	if err != nil {
		return err
	}
	w.bytes(ts) // RFC 3339: nothing in it is escaped
	w.comma()
	w.key("tokens")
	w.number(float64(s.Tokens))
	if s.Tool != "" {
		w.comma()
		w.key("tool")
		w.str(s.Tool)
	}
	w.comma()
	w.key("total_cost_cents")
	if err := w.number(s.TotalCost); err != nil {
		return err
	}
	w.comma()
	w.key("total_tokens")
	w.number(float64(s.TotalTokens))
	w.byte('}')
	return nil
}

// decision writes a step's decision, its members in canonical order.
func (w *jsonWriter) decision(d *StepDecision) error {
	w.buf = append(w.buf, `{"action":`...)
	if err := w.text(d.Action); err != nil {
		return err
	}
	if d.Enforcement != "" {
		w.buf = append(w.buf, `,"enforcement":`...)
		w.str(string(d.Enforcement))
	}
	if d.Limit != nil {
		w.buf = append(w.buf, `,"limit":`...)
		if err := w.number(*d.Limit); err != nil {
			return err
		}
	}
	if d.Message != "" {
		w.buf = append(w.buf, `,"message":`...)
		w.str(d.Message)
	}
	if d.Observed != nil {
		w.buf = append(w.buf, `,"observed":`...)
		if err := w.number(*d.Observed); err != nil {
			return err
		}
	}
	if d.PolicyID != "" {
		w.buf = append(w.buf, `,"policy_id":`...)
		w.str(d.PolicyID)
	}
	if d.Reason != "" {
		w.buf = append(w.buf, `,"reason":`...)
		if err := w.text(d.Reason); err != nil {
			return err
		}
	}
	if d.Source != "" {
		w.buf = append(w.buf, `,"source":`...)
		w.str(string(d.Source))
	}
	if d.Threshold != "" {
		w.buf = append(w.buf, `,"threshold":`...)
		w.str(d.Threshold)
	}
	w.byte('}')
	return nil
}
