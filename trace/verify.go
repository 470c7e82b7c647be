package trace

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
)

// ErrChainBroken is matched by every verification failure of a chain.
var ErrChainBroken = errors.New("trace: hash chain broken")

// ChainError names the first bad record of a run's chain and what is wrong
// with it. It matches ErrChainBroken.
type ChainError struct {
	TenantID string
	RunID    string
	Seq      int    // position of the first bad record (or where one is missing)
	Problem  string // what is wrong, in words
	Want     string // what verification expected, if a single value
	Got      string // what the record holds
}

func (e *ChainError) Error() string {
	s := fmt.Sprintf("run %s: record %d: %s", e.RunID, e.Seq, e.Problem)
	if e.Want != "" || e.Got != "" {
		s += fmt.Sprintf(" (want %s, got %s)", e.Want, e.Got)
	}
	return s
}

// Is reports whether target is ErrChainBroken.
func (e *ChainError) Is(target error) bool { return target == ErrChainBroken }

// Verify recomputes a run's chain from its records, in stored order, and
// returns a *ChainError naming the first record that is changed, missing,
// out of order or forged. It checks that the chain starts with a run_start
// record at seq 0 from GenesisHash, that sequence numbers and step indexes
// are consecutive, that every record belongs to the same tenant, run and
// snapshot, that each prev_hash is the hash before it and each hash is the
// hash of the record's content, that at most one step is the inflection
// point, and that a run_end record, if present, is last.
//
// It returns the hash of the last record (the chain head) when the chain
// is sound.
func Verify(records []Record) (head string, err error) {
	if len(records) == 0 {
		return "", &ChainError{Seq: 0, Problem: "no records"}
	}
	var v Verifier
	for i := range records {
		if err := v.Add(&records[i]); err != nil {
			return "", err
		}
	}
	return v.Head(), nil
}

// A Verifier is Verify one record at a time, for a chain read in parts:
// Add each record in stored order; the first error names the first bad
// record, as Verify would. After the last record, Head is the chain's
// head and Len its length; Verify's one check that needs the whole chain
// at once is that it is not empty (Len > 0).
//
// A Verifier keeps only what the next record is checked against; it is
// not safe for concurrent use. Its zero value is ready.
type Verifier struct {
	n                     int
	tenant, run, snap     string
	prev                  string
	nextStep, inflections int
	ended                 bool
	shadow                bool      // the run_start record names a shadow snapshot
	retention             Retention // as the run_start record states it
	buf                   []byte
}

// Len returns how many records were added and found sound.
func (v *Verifier) Len() int { return v.n }

// Head returns the hash of the last record added (GenesisHash before the
// first).
func (v *Verifier) Head() string {
	if v.n == 0 {
		return GenesisHash
	}
	return v.prev
}

// Body returns the canonical body of the last record added, the bytes its
// hash covers; it is valid until the next Add.
func (v *Verifier) Body() []byte { return v.buf }

// Add checks the next record of the chain. After an error the Verifier
// must not be used again.
func (v *Verifier) Add(r *Record) error {
	i := v.n
	if i == 0 {
		v.tenant, v.run, v.snap, v.prev = r.TenantID, r.RunID, r.SnapshotID, GenesisHash
	}
	fail := func(seq int, problem, want, got string) error {
		return &ChainError{TenantID: v.tenant, RunID: v.run, Seq: seq, Problem: problem, Want: want, Got: got}
	}
	switch {
	case v.ended:
		// The record after the run_end is the one named, as Verify names it.
		return fail(i, "record after the run_end that closed the chain", "nothing", fmt.Sprintf("%s record with seq %d", r.Kind, r.Seq))
	case r.Seq != i:
		return fail(i, "sequence number out of place", fmt.Sprint(i), fmt.Sprint(r.Seq))
	case r.TenantID != v.tenant:
		return fail(i, "record of another tenant", v.tenant, r.TenantID)
	case r.RunID != v.run:
		return fail(i, "record of another run", v.run, r.RunID)
	case r.SnapshotID != v.snap:
		return fail(i, "record bound to another snapshot", v.snap, r.SnapshotID)
	case i == 0 && r.Kind != KindRunStart:
		return fail(i, "chain does not begin with run_start", string(KindRunStart), string(r.Kind))
	case i > 0 && r.Kind == KindRunStart:
		return fail(i, "second run_start record", "", "")
	case r.Kind != KindRunStart && r.Kind != KindStep && r.Kind != KindRunEnd:
		return fail(i, "unknown record kind", "", string(r.Kind))
	case r.PrevHash != v.prev:
		return fail(i, "prev_hash does not match the previous record's hash", v.prev, r.PrevHash)
	}
	if problem := v.fieldsOf(r); problem != "" {
		return fail(i, problem, "", "")
	}
	if r.Kind == KindStep {
		if r.StepIndex != v.nextStep {
			return fail(i, "step index out of sequence", fmt.Sprint(v.nextStep), fmt.Sprint(r.StepIndex))
		}
		v.nextStep++
		if r.Inflection {
			v.inflections++
			if v.inflections > 1 {
				return fail(i, "second inflection point", "", "")
			}
		}
	} else if r.StepIndex != -1 {
		return fail(i, "non-step record with a step index", "-1", fmt.Sprint(r.StepIndex))
	}
	v.buf = Encode(v.buf[:0], r)
	if !hashIs(v.prev, v.buf, r.Hash) {
		return fail(i, "content does not match its hash", ComputeHash(v.prev, v.buf), r.Hash)
	}
	v.prev = r.Hash
	v.ended = r.Kind == KindRunEnd
	v.n++
	return nil
}

// fieldsOf checks that r carries the fields of its kind that say how the
// run keeps content and what its shadow snapshot decided, and no other,
// and returns what is wrong ("" when nothing).
func (v *Verifier) fieldsOf(r *Record) string {
	if r.Kind == KindRunStart {
		switch {
		case r.Retention != "" && r.Retention != RetentionRedacted && r.Retention != RetentionHashes:
			return fmt.Sprintf("run_start states retention %q (want none, for full, or redacted or hashes)", r.Retention)
		case (r.ShadowSnapshotID == "") != (r.ShadowSnapshotHash == ""):
			return "run_start names a shadow snapshot without both its id and its hash"
		}
		v.retention, v.shadow = r.Retention, r.ShadowSnapshotID != ""
	} else if r.Retention != "" || r.ShadowSnapshotID != "" || r.ShadowSnapshotHash != "" {
		return fmt.Sprintf("%s record states a retention or a shadow snapshot, which only run_start does", r.Kind)
	}
	if r.Kind != KindStep {
		if r.ShadowDecision != nil || r.ShadowFindings != nil || r.KeptContentHash != "" {
			return fmt.Sprintf("%s record carries a step's shadow decision or kept content hash", r.Kind)
		}
		return ""
	}
	switch {
	case v.shadow && r.ShadowDecision == nil:
		return "step of a run with a shadow snapshot has no shadow decision"
	case !v.shadow && (r.ShadowDecision != nil || r.ShadowFindings != nil):
		return "shadow decision on a step of a run without a shadow snapshot"
	case r.KeptContentHash != "" && (v.retention == "" || r.ContentHash == ""):
		return "kept content hash on a step whose run keeps content in full, or that has no content"
	}
	return ""
}

// hashIs reports whether ComputeHash(prevHash, body) is hash, without
// allocating.
func hashIs(prevHash string, body []byte, hash string) bool {
	var prev [sha256.Size]byte
	if len(prevHash) != 2*sha256.Size || len(hash) != 2*sha256.Size {
		return ComputeHash(prevHash, body) == hash
	}
	if _, err := hex.Decode(prev[:], []byte(prevHash)); err != nil {
		return ComputeHash(prevHash, body) == hash
	}
	h := sha256.New()
	h.Write([]byte(Domain))
	h.Write(prev[:])
	h.Write(body)
	var sum [sha256.Size]byte
	var text [2 * sha256.Size]byte
	hex.Encode(text[:], h.Sum(sum[:0]))
	return string(text[:]) == hash
}
