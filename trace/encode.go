package trace

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// Domain separates trace record hashes from every other hash stopline makes.
const Domain = "stopline/trace/v1\x00"

// GenesisHash is the prev_hash of the first record of every chain.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

// Encode returns the record's body: its canonical JSON (RFC 8785: sorted
// keys, no white space, one spelling per number) without prev_hash and
// hash. It is
// the byte string the record's hash covers, and equals
// snapshot.CanonicalOf of the record with those two fields removed.
//
// Encode is written out by hand because it runs on every step.
func Encode(dst []byte, r *Record) []byte {
	w := objWriter{b: dst}
	w.b = append(w.b, '{')
	if a := r.Approval; a != nil {
		w.key("approval")
		aw := objWriter{b: append(w.b, '{')}
		aw.str("answer", a.Answer)
		aw.str("answered_at", a.AnsweredAt.UTC().Format(time.RFC3339Nano))
		aw.strOmit("by", a.By)
		aw.str("deadline", a.Deadline.UTC().Format(time.RFC3339Nano))
		aw.str("hold_id", a.HoldID)
		aw.strOmit("reason", a.Reason)
		aw.str("requested_at", a.RequestedAt.UTC().Format(time.RFC3339Nano))
		w.b = append(aw.b, '}')
	}
	w.str("at", r.At.UTC().Format(time.RFC3339Nano))
	w.strOmit("content_hash", r.ContentHash)
	w.numOmit("cost_cents", r.CostCents)
	if r.Decision != nil {
		w.key("decision")
		w.b = appendDecision(w.b, r.Decision)
	}
	if len(r.Findings) > 0 {
		w.key("findings")
		w.b = appendDecisions(w.b, r.Findings)
	}
	w.strOmit("incident_id", r.IncidentID)
	if r.Inflection {
		w.key("inflection")
		w.b = append(w.b, "true"...)
	}
	w.strOmit("kept_content_hash", r.KeptContentHash)
	w.str("kind", string(r.Kind))
	w.strOmit("message", r.Message)
	w.strOmit("model", r.Model)
	w.strOmit("reason", string(r.Reason))
	w.strOmit("retention", string(r.Retention))
	w.str("run_id", r.RunID)
	w.strOmit("run_status", r.RunStatus)
	w.int("seq", int64(r.Seq))
	if r.ShadowDecision != nil {
		w.key("shadow_decision")
		w.b = appendDecision(w.b, r.ShadowDecision)
	}
	if len(r.ShadowFindings) > 0 {
		w.key("shadow_findings")
		w.b = appendDecisions(w.b, r.ShadowFindings)
	}
	w.strOmit("shadow_snapshot_hash", r.ShadowSnapshotHash)
	w.strOmit("shadow_snapshot_id", r.ShadowSnapshotID)
	w.strOmit("snapshot_hash", r.SnapshotHash)
	w.str("snapshot_id", r.SnapshotID)
	w.strOmit("status", string(r.Status))
	w.int("step_index", int64(r.StepIndex))
	w.strOmit("step_type", string(r.StepType))
	if r.StoppedAtStep != nil {
		w.int("stopped_at_step", int64(*r.StoppedAtStep))
	}
	w.str("tenant_id", r.TenantID)
	w.intOmit("tokens", r.Tokens)
	w.strOmit("tool", r.Tool)
	w.numOmit("total_cost_cents", r.TotalCostCents)
	w.intOmit("total_tokens", r.TotalTokens)
	w.strOmit("violation_policy_id", r.ViolationPolicyID)
	w.b = append(w.b, '}')
	return w.b
}

func appendDecisions(dst []byte, ds []prevention.Decision) []byte {
	dst = append(dst, '[')
	for i := range ds {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendDecision(dst, &ds[i])
	}
	return append(dst, ']')
}

func appendDecision(dst []byte, d *prevention.Decision) []byte {
	w := objWriter{b: append(dst, '{')}
	a, err := d.Action.MarshalText()
	if err != nil {
		a = []byte(d.Action.String())
	}
	w.str("action", string(a))
	w.strOmit("enforcement", string(d.Enforcement))
	w.numOmit("hold_seconds", d.HoldSeconds)
	w.numOmit("limit", d.Limit)
	w.strOmit("message", d.Message)
	w.numOmit("observed", d.Observed)
	w.strOmit("policy_id", d.PolicyID)
	w.strOmit("reason", string(d.Reason))
	w.strOmit("source", string(d.Source))
	w.strOmit("threshold", d.Threshold)
	return append(w.b, '}')
}

type objWriter struct {
	b []byte
	n int
}

func (w *objWriter) key(k string) {
	if w.n > 0 {
		w.b = append(w.b, ',')
	}
	w.n++
	w.b = append(w.b, '"')
	w.b = append(w.b, k...) // keys are plain ASCII
	w.b = append(w.b, '"', ':')
}

func (w *objWriter) str(k, v string) {
	w.key(k)
	w.b = snapshot.AppendString(w.b, v)
}

func (w *objWriter) strOmit(k, v string) {
	if v != "" {
		w.str(k, v)
	}
}

func (w *objWriter) int(k string, v int64) {
	w.key(k)
	w.b = strconv.AppendInt(w.b, v, 10)
}

func (w *objWriter) intOmit(k string, v int64) {
	if v != 0 {
		w.int(k, v)
	}
}

func (w *objWriter) numOmit(k string, v float64) {
	if v != 0 {
		w.key(k)
		w.b = snapshot.AppendNumber(w.b, v)
	}
}

// ComputeHash returns the hex hash of a record whose body is body and whose
// predecessor's hash is prevHash (hex; GenesisHash for the first record).
func ComputeHash(prevHash string, body []byte) string {
	var prev [sha256.Size]byte
	if _, err := hex.Decode(prev[:], []byte(prevHash)); err != nil || len(prevHash) != 2*sha256.Size {
		// An unparsable prev hash still hashes deterministically, and
		// can never equal a well-formed chain's.
		h := sha256.New()
		h.Write([]byte(Domain))
		h.Write([]byte("bad-prev:" + prevHash))
		h.Write(body)
		return hex.EncodeToString(h.Sum(nil))
	}
	h := sha256.New()
	h.Write([]byte(Domain))
	h.Write(prev[:])
	h.Write(body)
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// Seal sets r.PrevHash to prevHash and r.Hash to the record's hash, and
// returns the body it hashed. buf is reused for the body if large enough.
func Seal(r *Record, prevHash string, buf []byte) []byte {
	body := Encode(buf[:0], r)
	r.PrevHash = prevHash
	r.Hash = ComputeHash(prevHash, body)
	return body
}

// ContentHashOf returns the hash that binds a step's content to its
// record: hex sha256 of "stopline/content/v1", a zero byte, and
// EncodeContent(c). Empty content hashes to "".
func ContentHashOf(c Content) string {
	if c.Input == "" && c.Output == "" && len(c.Metadata) == 0 {
		return ""
	}
	h := sha256.New()
	h.Write([]byte("stopline/content/v1\x00"))
	h.Write(EncodeContent(nil, &c))
	var sum [sha256.Size]byte
	return hex.EncodeToString(h.Sum(sum[:0]))
}

// EncodeContent appends the canonical JSON of c (the bytes its content
// hash covers), as snapshot.CanonicalOf would write it. Stores may keep
// these bytes as they are.
func EncodeContent(dst []byte, c *Content) []byte {
	w := objWriter{b: append(dst, '{')}
	w.strOmit("input", c.Input)
	if len(c.Metadata) > 0 {
		w.key("metadata")
		keys := make([]string, 0, len(c.Metadata))
		for k := range c.Metadata {
			keys = append(keys, k)
		}
		snapshot.SortKeys(keys)
		w.b = append(w.b, '{')
		for i, k := range keys {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = snapshot.AppendString(w.b, k)
			w.b = append(w.b, ':')
			w.b = snapshot.AppendString(w.b, c.Metadata[k])
		}
		w.b = append(w.b, '}')
	}
	w.strOmit("output", c.Output)
	return append(w.b, '}')
}
