package governance

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/internal/checkpoint"
	"github.com/stopline/stopline/trace"
)

// The note format is read in internal/checkpoint, which export/bundle
// reads carried checkpoints with too: one reading of a note, and the same
// sentinels for both.

// CheckpointOrigin is the first line of every checkpoint note.
const CheckpointOrigin = checkpoint.Origin

var (
	// ErrCheckpoint is matched when a checkpoint note cannot be opened
	// (bad signature, unknown key) or is malformed.
	ErrCheckpoint = checkpoint.ErrInvalid
	// ErrCheckpointMismatch is matched when the stored records do not
	// match a valid checkpoint: the records it covers were changed,
	// removed or rewritten.
	ErrCheckpointMismatch = checkpoint.ErrMismatch
	// ErrCheckpointRun is matched when a valid checkpoint note names
	// another tenant or run than the one it is stored with or verified
	// for. It also matches ErrCheckpointMismatch.
	ErrCheckpointRun = checkpoint.ErrRun
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
	return checkpoint.Text(tenantID, runID, size, head, at)
}

// SignCheckpoint signs a checkpoint of the run's chain as it is stored
// now (its size and head) and stores it. It returns the checkpoint. It
// signs only a run that verifies (VerifyRun): a signature over a chain
// someone has already changed would vouch for the change. When another
// note is already stored for the run, size and key name, the error
// matches ErrChainConflict and the checkpoint returned is the one signed
// but not stored (see StoredCheckpoint).
func SignCheckpoint(ctx context.Context, store Store, signer note.Signer, tenantID, runID string, at time.Time) (Checkpoint, error) {
	if _, err := VerifyRun(ctx, store, tenantID, runID); err != nil {
		return Checkpoint{}, err
	}
	run, err := store.Run(ctx, tenantID, runID)
	if err != nil {
		return Checkpoint{}, err
	}
	cp, err := NewCheckpoint(signer, tenantID, runID, run.ChainLength, run.HeadHash, at)
	if err != nil {
		return Checkpoint{}, err
	}
	if err := store.PutCheckpoint(ctx, cp); err != nil {
		err = fmt.Errorf("governance: storing checkpoint of run %s at size %d: %w", runID, cp.Size, err)
		if errors.Is(err, ErrChainConflict) {
			return cp, err
		}
		return Checkpoint{}, err
	}
	return cp, nil
}

// NewCheckpoint signs a checkpoint of a chain of size records whose last
// has the hash head, without storing it.
func NewCheckpoint(signer note.Signer, tenantID, runID string, size int, head string, at time.Time) (Checkpoint, error) {
	text, err := CheckpointText(tenantID, runID, size, head, at)
	if err != nil {
		return Checkpoint{}, err
	}
	msg, err := note.Sign(&note.Note{Text: text}, signer)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("governance: signing checkpoint of run %s: %w", runID, err)
	}
	return Checkpoint{TenantID: tenantID, RunID: runID, Size: size, Head: head, At: at.UTC(), KeyName: signer.Name(), Note: string(msg)}, nil
}

func putCheckpoint(ctx context.Context, store Store, signer note.Signer, tenantID, runID string, size int, head string, at time.Time) (Checkpoint, error) {
	cp, err := NewCheckpoint(signer, tenantID, runID, size, head, at)
	if err != nil {
		return Checkpoint{}, err
	}
	if err := store.PutCheckpoint(ctx, cp); err != nil {
		return Checkpoint{}, fmt.Errorf("governance: storing checkpoint of run %s at size %d: %w", runID, size, err)
	}
	return cp, nil
}

// StoredCheckpoint returns the checkpoint stored for the run that states
// exactly this size and head and whose note verifies with verifier: the
// checkpoint SignCheckpoint made earlier with the same key. A note stored
// under the same key name but signed by another key (two keys can share a
// name; a writer of the database can store any note) is not returned. It
// is ErrNotFound when there is none.
func StoredCheckpoint(ctx context.Context, store Store, verifier note.Verifier, tenantID, runID string, size int, head string) (Checkpoint, error) {
	cps, err := store.Checkpoints(ctx, tenantID, runID)
	if err != nil {
		return Checkpoint{}, err
	}
	for _, row := range cps {
		if row.Size != size || row.KeyName != verifier.Name() {
			continue
		}
		cp, err := OpenCheckpoint([]byte(row.Note), note.VerifierList(verifier))
		if err != nil || cp.TenantID != tenantID || cp.RunID != runID || cp.Size != size || cp.Head != head {
			continue
		}
		return cp, nil
	}
	return Checkpoint{}, fmt.Errorf("governance: checkpoint of run %s (tenant %s) at size %d with head %s signed by key %s: %w",
		runID, tenantID, size, head, verifier.Name(), ErrNotFound)
}

// CheckpointVerifierKey returns the verifier key ("name+hash+data") of a
// checkpoint signer key ("PRIVATE+KEY+name+hash+data"), as
// GenerateCheckpointKey returned them together.
func CheckpointVerifierKey(signerKey string) (string, error) {
	if _, err := note.NewSigner(signerKey); err != nil {
		return "", fmt.Errorf("%w: signer key: %w", ErrCheckpoint, err)
	}
	parts := strings.SplitN(signerKey, "+", 5)
	name, data := parts[2], parts[4]
	key, err := base64.StdEncoding.DecodeString(data)
	// NewSigner accepted it: one algorithm byte (Ed25519) and a 32-byte seed.
	if err != nil || len(key) != 1+ed25519.SeedSize {
		return "", fmt.Errorf("%w: signer key is not an Ed25519 key", ErrCheckpoint)
	}
	pub := ed25519.NewKeyFromSeed(key[1:]).Public().(ed25519.PublicKey)
	return note.NewEd25519VerifierKey(name, pub)
}

// OpenCheckpoint verifies a signed checkpoint note with the given
// verifiers and returns what it states. A bad or unknown signature, or a
// text that is not a stopline checkpoint, matches ErrCheckpoint.
func OpenCheckpoint(msg []byte, verifiers note.Verifiers) (Checkpoint, error) {
	st, err := checkpoint.Open(msg, verifiers)
	return Checkpoint(st), err
}

// ParseCheckpoint returns what a checkpoint note states WITHOUT checking
// any signature: it proves nothing about who signed it. It checks the
// form: a signed note (golang.org/x/mod/sumdb/note) with at least one
// well-formed Ed25519 signature line, whose text is a checkpoint in its
// one canonical spelling. KeyName is the name of the first signature. A
// note that is not one matches ErrCheckpoint. Use it to check that a note
// kept or carried somewhere is at least a checkpoint of the right run;
// use OpenCheckpoint to trust it.
func ParseCheckpoint(msg []byte) (Checkpoint, error) {
	st, err := checkpoint.Parse(msg)
	return Checkpoint(st), err
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

// CheckpointRunError is a checkpoint note that names another tenant or
// run than the one it was stored with or presented for: a note of another
// run proves nothing about this one. It matches ErrCheckpointRun and
// ErrCheckpointMismatch.
type CheckpointRunError struct {
	TenantID, RunID         string // the run the note was stored with or presented for
	NoteTenantID, NoteRunID string // the run the note names
	Size                    int    // the size the note states
}

func (e *CheckpointRunError) Error() string {
	return fmt.Sprintf("run %s (tenant %q): checkpoint at size %d is a signed note of run %s of tenant %q",
		e.RunID, e.TenantID, e.Size, e.NoteRunID, e.NoteTenantID)
}

// Is matches ErrCheckpointRun and ErrCheckpointMismatch.
func (e *CheckpointRunError) Is(target error) bool {
	return target == ErrCheckpointRun || target == ErrCheckpointMismatch
}

// CheckpointRowError is a stored checkpoint whose columns (size, head
// hash, key name, time) are not what its signed note states. It matches
// ErrCheckpointMismatch.
type CheckpointRowError struct {
	TenantID, RunID string
	Size            int // the row's size
	KeyName         string
	Problem         string
}

func (e *CheckpointRowError) Error() string {
	return fmt.Sprintf("run %s (tenant %q): stored checkpoint at size %d by key %s: %s", e.RunID, e.TenantID, e.Size, e.KeyName, e.Problem)
}

// Is matches ErrCheckpointMismatch.
func (e *CheckpointRowError) Is(target error) bool { return target == ErrCheckpointMismatch }

// VerifyCheckpoint proves, from the store, that the records a signed
// checkpoint covers are unchanged and that any later records only
// append: it opens the note with verifiers, reads the run the note names
// (its row must exist), recomputes the run's whole chain (trace.Verify),
// checks that the chain is that run's and that the record at position
// size-1 has the head hash the checkpoint states. A store rewritten by
// someone who recomputed every hash fails here, because they cannot sign.
//
// It verifies the run the note names, whichever that is: to verify a
// given run, use VerifyRunCheckpoint.
func VerifyCheckpoint(ctx context.Context, store Store, msg []byte, verifiers note.Verifiers) (Checkpoint, error) {
	cp, err := OpenCheckpoint(msg, verifiers)
	if err != nil {
		return Checkpoint{}, err
	}
	return cp, verifyAgainstStore(ctx, store, cp)
}

// VerifyRunCheckpoint is VerifyCheckpoint for a given run: the note must
// name this tenant and run (else a *CheckpointRunError).
func VerifyRunCheckpoint(ctx context.Context, store Store, tenantID, runID string, msg []byte, verifiers note.Verifiers) (Checkpoint, error) {
	cp, err := OpenCheckpoint(msg, verifiers)
	if err != nil {
		return Checkpoint{}, err
	}
	if cp.TenantID != tenantID || cp.RunID != runID {
		return cp, &CheckpointRunError{TenantID: tenantID, RunID: runID, NoteTenantID: cp.TenantID, NoteRunID: cp.RunID, Size: cp.Size}
	}
	return cp, verifyAgainstStore(ctx, store, cp)
}

// verifyAgainstStore checks an opened checkpoint against the stored run.
func verifyAgainstStore(ctx context.Context, store Store, cp Checkpoint) error {
	// Records outlive a deleted run row in some stores: the row must be
	// there too.
	if _, err := store.Run(ctx, cp.TenantID, cp.RunID); err != nil {
		return err
	}
	records, err := store.Records(ctx, cp.TenantID, cp.RunID)
	if err != nil {
		return err
	}
	if _, err := trace.Verify(records); err != nil {
		return err
	}
	if r := records[0]; r.TenantID != cp.TenantID || r.RunID != cp.RunID {
		return &CheckpointRunError{TenantID: r.TenantID, RunID: r.RunID, NoteTenantID: cp.TenantID, NoteRunID: cp.RunID, Size: cp.Size}
	}
	mm := &CheckpointMismatchError{RunID: cp.RunID, Size: cp.Size, Stored: len(records), Want: cp.Head}
	if len(records) < cp.Size {
		mm.Problem = "records the checkpoint covers are missing"
		return mm
	}
	if got := records[cp.Size-1].Hash; got != cp.Head {
		mm.Got, mm.Problem = got, "records the checkpoint covers were changed"
		return mm
	}
	return nil
}

// VerifyRunCheckpoints checks every stored checkpoint of a run against its
// records with VerifyRunCheckpoint — each note must be signed by one of
// verifiers and name this tenant and run — and checks that each stored
// row states what its note states (size, head hash, key name, time). It
// returns how many were checked.
func VerifyRunCheckpoints(ctx context.Context, store Store, tenantID, runID string, verifiers note.Verifiers) (int, error) {
	cps, err := store.Checkpoints(ctx, tenantID, runID)
	if err != nil {
		return 0, err
	}
	for _, row := range cps {
		if row.TenantID != tenantID || row.RunID != runID {
			return 0, &CheckpointRowError{TenantID: tenantID, RunID: runID, Size: row.Size, KeyName: row.KeyName,
				Problem: fmt.Sprintf("the store lists it as run %s of tenant %q", row.RunID, row.TenantID)}
		}
		cp, err := VerifyRunCheckpoint(ctx, store, tenantID, runID, []byte(row.Note), verifiers)
		if err != nil {
			return 0, err
		}
		if err := sameCheckpoint(row, cp); err != nil {
			return 0, err
		}
	}
	return len(cps), nil
}

// sameCheckpoint checks that a stored checkpoint row states what its note
// (opened as cp) states.
func sameCheckpoint(row, cp Checkpoint) error {
	var problem string
	switch {
	case row.Size != cp.Size:
		problem = fmt.Sprintf("its note states size %d", cp.Size)
	case row.Head != cp.Head:
		problem = fmt.Sprintf("the row states head %s, its note %s", row.Head, cp.Head)
	case row.KeyName != cp.KeyName:
		problem = fmt.Sprintf("its note is signed by key %s", cp.KeyName)
	case !row.At.Equal(cp.At):
		problem = fmt.Sprintf("the row states time %s, its note %s", row.At.UTC().Format(time.RFC3339Nano), cp.At.UTC().Format(time.RFC3339Nano))
	default:
		return nil
	}
	return &CheckpointRowError{TenantID: row.TenantID, RunID: row.RunID, Size: row.Size, KeyName: row.KeyName, Problem: problem}
}
