package snapshot

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrInvalid is matched by every validation error of a policy set:
	// malformed file, missing or unknown field, bad threshold, duplicate id.
	ErrInvalid = errors.New("snapshot: invalid policy set")
	// ErrHashMismatch is matched when a snapshot's content does not hash to
	// the hash and id it carries.
	ErrHashMismatch = errors.New("snapshot: content does not match its hash")
)

// ValidationError names what is wrong in a policy set: the file (when the
// set came from one), the policy (by id and position) or threshold, and the
// field. It matches ErrInvalid.
type ValidationError struct {
	File      string // source file, if any
	PolicyID  string // offending policy id, if the problem is in a policy
	Index     int    // position of the policy in the file, -1 if none
	Threshold string // offending threshold name, if the problem is in one
	Field     string // JSON path of the field within the policy or file
	Err       error  // the underlying problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(": ")
	}
	switch {
	case e.PolicyID != "":
		fmt.Fprintf(&b, "policy %q (#%d)", e.PolicyID, e.Index)
	case e.Index >= 0:
		fmt.Fprintf(&b, "policy #%d", e.Index)
	case e.Threshold != "":
		fmt.Fprintf(&b, "threshold %q", e.Threshold)
	}
	if e.Field != "" {
		if b.Len() > 0 && !strings.HasSuffix(b.String(), ": ") {
			b.WriteString(": ")
		}
		b.WriteString(e.Field)
	}
	if b.Len() > 0 && !strings.HasSuffix(b.String(), ": ") {
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *ValidationError) Unwrap() []error { return []error{ErrInvalid, e.Err} }

// HashMismatchError carries the evidence of a snapshot whose content was
// changed: the hash it claims and the hash its content has. It matches
// ErrHashMismatch.
type HashMismatchError struct {
	SnapshotID string
	Field      string // "content_hash", "snapshot_id" or "policy_count"
	Want       string // what the snapshot claims
	Got        string // what its content gives
}

func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("snapshot %s: %s is %s but content gives %s", e.SnapshotID, e.Field, e.Want, e.Got)
}

func (e *HashMismatchError) Is(target error) bool { return target == ErrHashMismatch }
