package trace

import (
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
	first := records[0]
	fail := func(seq int, problem, want, got string) error {
		return &ChainError{TenantID: first.TenantID, RunID: first.RunID, Seq: seq, Problem: problem, Want: want, Got: got}
	}
	prev := GenesisHash
	nextStep := 0
	inflections := 0
	var buf []byte
	for i := range records {
		r := &records[i]
		switch {
		case r.Seq != i:
			return "", fail(i, "sequence number out of place", fmt.Sprint(i), fmt.Sprint(r.Seq))
		case r.TenantID != first.TenantID:
			return "", fail(i, "record of another tenant", first.TenantID, r.TenantID)
		case r.RunID != first.RunID:
			return "", fail(i, "record of another run", first.RunID, r.RunID)
		case r.SnapshotID != first.SnapshotID:
			return "", fail(i, "record bound to another snapshot", first.SnapshotID, r.SnapshotID)
		case i == 0 && r.Kind != KindRunStart:
			return "", fail(i, "chain does not begin with run_start", string(KindRunStart), string(r.Kind))
		case i > 0 && r.Kind == KindRunStart:
			return "", fail(i, "second run_start record", "", "")
		case r.Kind != KindRunStart && r.Kind != KindStep && r.Kind != KindRunEnd:
			return "", fail(i, "unknown record kind", "", string(r.Kind))
		case r.Kind == KindRunEnd && i != len(records)-1:
			next := &records[i+1]
			return "", fail(i+1, "record after the run_end that closed the chain", "nothing", fmt.Sprintf("%s record with seq %d", next.Kind, next.Seq))
		case r.PrevHash != prev:
			return "", fail(i, "prev_hash does not match the previous record's hash", prev, r.PrevHash)
		}
		if r.Kind == KindStep {
			if r.StepIndex != nextStep {
				return "", fail(i, "step index out of sequence", fmt.Sprint(nextStep), fmt.Sprint(r.StepIndex))
			}
			nextStep++
			if r.Inflection {
				inflections++
				if inflections > 1 {
					return "", fail(i, "second inflection point", "", "")
				}
			}
		} else if r.StepIndex != -1 {
			return "", fail(i, "non-step record with a step index", "-1", fmt.Sprint(r.StepIndex))
		}
		buf = Encode(buf[:0], r)
		if h := ComputeHash(prev, buf); h != r.Hash {
			return "", fail(i, "content does not match its hash", h, r.Hash)
		}
		prev = r.Hash
	}
	return prev, nil
}
