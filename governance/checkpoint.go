package governance

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
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
	ErrCheckpoint = errors.New("governance: invalid checkpoint")
	// ErrCheckpointMismatch is matched when the stored records do not
	// match a valid checkpoint: the records it covers were changed,
	// removed or rewritten.
	ErrCheckpointMismatch = errors.New("governance: records do not match the checkpoint")
	// ErrCheckpointRun is matched when a valid checkpoint note names
	// another tenant or run than the one it is stored with or verified
	// for. It also matches ErrCheckpointMismatch.
	ErrCheckpointRun = errors.New("governance: checkpoint is of another run")
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
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("%w: %w", ErrCheckpoint, err)
	}
	cp, err := parseCheckpointText(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	cp.KeyName, cp.Note = n.Sigs[0].Name, string(msg)
	return cp, nil
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
	_, err := note.Open(msg, note.VerifierList())
	var un *note.UnverifiedNoteError
	if !errors.As(err, &un) {
		return Checkpoint{}, fmt.Errorf("%w: not a signed note: %w", ErrCheckpoint, err)
	}
	for _, sig := range un.Note.UnverifiedSigs {
		// A key hash (4 bytes) and an Ed25519 signature (64 bytes).
		if b, err := base64.StdEncoding.DecodeString(sig.Base64); err != nil || len(b) != 4+ed25519.SignatureSize {
			return Checkpoint{}, fmt.Errorf("%w: signature by %s is not an Ed25519 signature", ErrCheckpoint, sig.Name)
		}
	}
	cp, err := parseCheckpointText(un.Note.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	cp.KeyName, cp.Note = un.Note.UnverifiedSigs[0].Name, string(msg)
	return cp, nil
}

// parseCheckpointText parses the text of a checkpoint note; it must be
// exactly the text CheckpointText makes.
func parseCheckpointText(text string) (Checkpoint, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
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
	if want != text {
		fields := []string{"origin", "tenant", "run", "size", "head hash", "time"}
		wl := strings.Split(want, "\n")
		for i := range lines {
			if lines[i] != wl[i] {
				return Checkpoint{}, fmt.Errorf("%w: %s %q is not in canonical form %q", ErrCheckpoint, fields[i], lines[i], wl[i])
			}
		}
		return Checkpoint{}, fmt.Errorf("%w: text is not in canonical form", ErrCheckpoint)
	}
	return Checkpoint{TenantID: tenantID, RunID: runID, Size: size, Head: lines[4], At: at}, nil
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
