package bundle

import (
	"errors"
	"fmt"
	"strings"
)

// kindError is a sentinel that may also match a broader sentinel, so that
// errors.Is(err, ErrChain) holds for ErrRecordMissing as well.
type kindError struct {
	msg    string
	parent error
}

func (e *kindError) Error() string { return e.msg }

func (e *kindError) Is(target error) bool { return e.parent != nil && target == e.parent }

func newKind(msg string, parent error) error { return &kindError{msg: msg, parent: parent} }

// Verification failures. Verify returns a *VerificationError listing every
// check that failed; each failure matches one of these with errors.Is.
// Some are refinements of others: ErrRecordChanged, ErrRecordMissing and
// ErrRecordsReordered also match ErrChain; ErrUnsigned, ErrKeyMismatch
// also match ErrSignature; ErrTrailingData and ErrAmbiguous also match
// ErrMalformed.
var (
	// ErrMalformed: the data is not a bundle envelope (not JSON, unknown
	// or missing fields, another payload type, a payload that is not
	// base64, an unknown bundle type or value).
	ErrMalformed = errors.New("bundle: malformed bundle envelope")
	// ErrTrailingData: bytes follow the envelope's JSON value.
	ErrTrailingData = newKind("bundle: data after the bundle envelope", ErrMalformed)
	// ErrAmbiguous: the JSON can be read two ways, so that what a person
	// or another parser reads is not what was hashed, signed and checked:
	// a key given twice (encoding/json keeps the last, others the first),
	// a key that matches a field only ignoring case, invalid UTF-8, or
	// anything the decoded bundle does not encode back to (another
	// spelling of a value, a value no field takes). It also matches
	// ErrMalformed.
	ErrAmbiguous = newKind("bundle: bundle JSON that readers read differently", ErrMalformed)

	// ErrSignature: no valid signature by the given key.
	ErrSignature = errors.New("bundle: signature does not verify")
	// ErrUnsigned: the envelope carries no signature at all.
	ErrUnsigned = newKind("bundle: bundle is not signed", ErrSignature)
	// ErrKeyMismatch: the envelope is signed, but not by the given key.
	ErrKeyMismatch = newKind("bundle: bundle is not signed by this key", ErrSignature)

	// ErrSnapshot: the embedded policy snapshot does not match its own
	// hash and id, or is not the snapshot the run's chain is bound to.
	ErrSnapshot = errors.New("bundle: policy snapshot does not verify")

	// ErrChain: the run's hash chain in the bundle does not recompute.
	ErrChain = errors.New("bundle: hash chain does not verify")
	// ErrRecordChanged: a record's content or links do not match its hash.
	ErrRecordChanged = newKind("bundle: chain record changed", ErrChain)
	// ErrRecordMissing: a record was removed from the chain, or the chain
	// was cut short of the head the bundle states.
	ErrRecordMissing = newKind("bundle: chain record missing", ErrChain)
	// ErrRecordsReordered: the chain's records are out of order.
	ErrRecordsReordered = newKind("bundle: chain records reordered", ErrChain)

	// ErrStepMismatch: a step of the bundle disagrees with its record in
	// the chain (or the steps are not exactly the chain's steps).
	ErrStepMismatch = errors.New("bundle: step disagrees with its chain record")
	// ErrContent: a step's included content does not match its content hash.
	ErrContent = errors.New("bundle: step content does not match its hash")
	// ErrInconsistent: a fact the bundle states (run, incident, totals,
	// violation, time to detect, cost) disagrees with the chain.
	ErrInconsistent = errors.New("bundle: bundle disagrees with its chain")
	// ErrCheckpoint: the checkpoint the bundle carries is not a
	// well-formed signed checkpoint (it also matches
	// governance.ErrCheckpoint), or it is not of the bundle's chain:
	// another tenant or run (governance.ErrCheckpointRun), more records
	// than the chain holds, or another head
	// (governance.ErrCheckpointMismatch). Verify checks this without a
	// key; VerifyCheckpoint also checks its signature.
	ErrCheckpoint = errors.New("bundle: carried checkpoint does not match the bundle")
)

// VerificationError is the error of Verify and Check: every check that
// failed, each matching one of the verification sentinels (ErrSignature,
// ErrSnapshot, ErrChain, ...). errors.Is and errors.As look into each.
type VerificationError struct {
	Failures []error
}

func (e *VerificationError) Error() string {
	msgs := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		msgs[i] = strings.TrimPrefix(f.Error(), "bundle: ")
	}
	return "bundle: bundle does not verify: " + strings.Join(msgs, "; ")
}

// Unwrap returns the failures.
func (e *VerificationError) Unwrap() []error { return e.Failures }

// StepMismatchError names a step of the bundle that disagrees with its
// chain record, and the first field that differs. It matches
// ErrStepMismatch.
type StepMismatchError struct {
	StepIndex int
	Field     string // JSON name of the field, or "steps" for a count mismatch
	Bundle    string // the value in the bundle's steps
	Chain     string // the value the chain record gives
}

func (e *StepMismatchError) Error() string {
	if e.Field == "steps" {
		return fmt.Sprintf("bundle: bundle lists %s steps, chain holds %s", e.Bundle, e.Chain)
	}
	return fmt.Sprintf("bundle: step %d: %s is %s in the bundle but %s in the chain", e.StepIndex, e.Field, e.Bundle, e.Chain)
}

// Is matches ErrStepMismatch.
func (e *StepMismatchError) Is(target error) bool { return target == ErrStepMismatch }
