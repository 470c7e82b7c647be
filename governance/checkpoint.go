package governance

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/trace"
)

// CheckpointOrigin is the first line of every checkpoint note.
const CheckpointOrigin = "stopline/run-checkpoint/v1"

var (
	// ErrCheckpoint is matched when a checkpoint note cannot be opened
	// (bad signature, unknown key) or is malformed.
	ErrCheckpoint = errors.New("stopline: invalid checkpoint")
	// ErrCheckpointMismatch is matched when the stored records do not
	// match a valid checkpoint: the records it covers were changed,
	// removed or rewritten.
	ErrCheckpointMismatch = errors.New("stopline: records do not match the checkpoint")
)

// GenerateCheckpointKey makes a key pair for signing checkpoints, in the
// text forms of golang.org/x/mod/sumdb/note: the signer key ("PRIVATE+KEY+
// name+hash+data", keep it outside the database) and the verifier key
// ("name+hash+data", publish it). name identifies the key, e.g.
// "stopline-acme-2026".
func GenerateCheckpointKey(name string) (signerKey, verifierKey string, err error) {
	return note.GenerateKey(nil, name)
}

// CheckpointText is the text a checkpoint signs: the origin line, the
// tenant and the run (path-escaped, url.PathEscape), the chain size, the
// head hash and the time (RFC 3339, UTC), one per line.
func CheckpointText(tenantID, runID string, size int, head string, at time.Time) (string, error) {
	if tenantID == "" || runID == "" {
		return "", fmt.Errorf("%w: empty tenant or run id", ErrCheckpoint)
	}
	if size < 1 {
		return "", fmt.Errorf("%w: size %d is not positive", ErrCheckpoint, size)
	}
	if len(head) != 64 || strings.Trim(head, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: head hash %q is not 64 lower-case hex digits", ErrCheckpoint, head)
	}
	// Ids are path-escaped so that any id (spaces, slashes, any script)
	// fits on one line of a signed note, in one spelling.
	return fmt.Sprintf("%s\n%s\n%s\n%d\n%s\n%s\n", CheckpointOrigin, url.PathEscape(tenantID), url.PathEscape(runID), size, head,
		at.UTC().Format(time.RFC3339Nano)), nil
}

// SignCheckpoint signs a checkpoint of the run's chain as it is stored
// now (its size and head) and stores it. It returns the checkpoint.
func SignCheckpoint(ctx context.Context, store Store, signer note.Signer, tenantID, runID string, at time.Time) (Checkpoint, error) {
	run, err := store.Run(ctx, tenantID, runID)
	if err != nil {
		return Checkpoint{}, err
	}
	return putCheckpoint(ctx, store, signer, tenantID, runID, run.ChainLength, run.HeadHash, at)
}

func putCheckpoint(ctx context.Context, store Store, signer note.Signer, tenantID, runID string, size int, head string, at time.Time) (Checkpoint, error) {
	text, err := CheckpointText(tenantID, runID, size, head, at)
	if err != nil {
		return Checkpoint{}, err
	}
	msg, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("stopline: signing checkpoint of run %s: %w", runID, err)
	}
	cp := Checkpoint{TenantID: tenantID, RunID: runID, Size: size, Head: head, At: at.UTC(), KeyName: signer.Name(), Note: string(msg)}
	if err := store.PutCheckpoint(ctx, cp); err != nil {
		return Checkpoint{}, fmt.Errorf("stopline: storing checkpoint of run %s at size %d: %w", runID, size, err)
	}
	return cp, nil
}

// OpenCheckpoint verifies a signed checkpoint note with the given
// verifiers and returns what it states. A bad or unknown signature, or a
// text that is not a stopline checkpoint, matches ErrCheckpoint.
func OpenCheckpoint(msg []byte, verifiers note.Verifiers) (Checkpoint, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	lines := strings.Split(strings.TrimSuffix(n.Text, "\n"), "\n")
	if len(lines) != 6 {
		return Checkpoint{}, fmt.Errorf("%w: %d lines of text, want 6 (origin, tenant, run, size, head hash, time): %q", ErrCheckpoint, len(lines), lines)
	}
	if lines[0] != CheckpointOrigin {
		return Checkpoint{}, fmt.Errorf("%w: origin %q, want %q", ErrCheckpoint, lines[0], CheckpointOrigin)
	}
	size, err := strconv.Atoi(lines[3])
	if err != nil || size < 1 {
		return Checkpoint{}, fmt.Errorf("%w: size %q is not a positive number", ErrCheckpoint, lines[3])
	}
	at, err := time.Parse(time.RFC3339Nano, lines[5])
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: time %q is not an RFC 3339 time", ErrCheckpoint, lines[5])
	}
	tenantID, terr := url.PathUnescape(lines[1])
	runID, rerr := url.PathUnescape(lines[2])
	if terr != nil || rerr != nil {
		return Checkpoint{}, fmt.Errorf("%w: tenant %q or run %q is not path-escaped", ErrCheckpoint, lines[1], lines[2])
	}
	// One spelling per checkpoint: exactly the text CheckpointText makes
	// (no empty ids, ids escaped one way, no "+5" or "007" sizes, a
	// lower-case hex head, a UTC time).
	want, err := CheckpointText(tenantID, runID, size, lines[4], at)
	if err != nil {
		return Checkpoint{}, err
	}
	if want != n.Text {
		fields := []string{"origin", "tenant", "run", "size", "head hash", "time"}
		wl := strings.Split(want, "\n")
		for i := range lines {
			if lines[i] != wl[i] {
				return Checkpoint{}, fmt.Errorf("%w: %s %q is not in canonical form %q", ErrCheckpoint, fields[i], lines[i], wl[i])
			}
		}
	}
	return Checkpoint{TenantID: tenantID, RunID: runID, Size: size, Head: lines[4], At: at,
		KeyName: n.Sigs[0].Name, Note: string(msg)}, nil
}

// CheckpointMismatchError says how the stored records disagree with a
// checkpoint. It matches ErrCheckpointMismatch.
type CheckpointMismatchError struct {
	RunID   string
	Size    int    // records the checkpoint covers
	Stored  int    // records stored now
	Want    string // head hash the checkpoint states
	Got     string // hash of the stored record at that position ("" if missing)
	Problem string
}

func (e *CheckpointMismatchError) Error() string {
	return fmt.Sprintf("run %s: %s (checkpoint covers %d records with head %s; store has %d records, record %d hash %q)",
		e.RunID, e.Problem, e.Size, e.Want, e.Stored, e.Size-1, e.Got)
}

// Is matches ErrCheckpointMismatch.
func (e *CheckpointMismatchError) Is(target error) bool { return target == ErrCheckpointMismatch }

// VerifyCheckpoint proves, from the store, that the records a signed
// checkpoint covers are unchanged and that any later records only
// append: it opens the note with verifiers, recomputes the run's whole
// chain (trace.Verify) and checks that the record at position size-1 has
// the head hash the checkpoint states. A store rewritten by someone who
// recomputed every hash fails here, because they cannot sign.
func VerifyCheckpoint(ctx context.Context, store Store, msg []byte, verifiers note.Verifiers) (Checkpoint, error) {
	cp, err := OpenCheckpoint(msg, verifiers)
	if err != nil {
		return Checkpoint{}, err
	}
	records, err := store.Records(ctx, cp.TenantID, cp.RunID)
	if err != nil {
		return cp, err
	}
	if _, err := trace.Verify(records); err != nil {
		return cp, err
	}
	mm := &CheckpointMismatchError{RunID: cp.RunID, Size: cp.Size, Stored: len(records), Want: cp.Head}
	if len(records) < cp.Size {
		mm.Problem = "records the checkpoint covers are missing"
		return cp, mm
	}
	if got := records[cp.Size-1].Hash; got != cp.Head {
		mm.Got, mm.Problem = got, "records the checkpoint covers were changed"
		return cp, mm
	}
	return cp, nil
}

// VerifyRunCheckpoints checks every stored checkpoint of a run against its
// records with VerifyCheckpoint, and returns how many were checked.
func VerifyRunCheckpoints(ctx context.Context, store Store, tenantID, runID string, verifiers note.Verifiers) (int, error) {
	cps, err := store.Checkpoints(ctx, tenantID, runID)
	if err != nil {
		return 0, err
	}
	for _, cp := range cps {
		if _, err := VerifyCheckpoint(ctx, store, []byte(cp.Note), verifiers); err != nil {
			return 0, err
		}
	}
	return len(cps), nil
}
