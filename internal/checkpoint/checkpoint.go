// Package checkpoint is the one reading of a signed checkpoint note: the
// text a checkpoint of a run's chain signs, and what a note states, read
// with the keys that must have signed it (Open) or without any (Parse).
//
// governance signs checkpoints, stores them and verifies them against a
// store; export/bundle verifies, offline, the checkpoint a bundle
// carries. Both read notes here, so that a note means the same to both,
// and so that the package an auditor imports to verify a bundle needs
// nothing of governance. It imports only the standard library and
// golang.org/x/mod/sumdb/note.
package checkpoint

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// Origin is the first line of every checkpoint note.
const Origin = "stopline/run-checkpoint/v1"

// The sentinels of checkpoints. governance exports them as ErrCheckpoint,
// ErrCheckpointMismatch and ErrCheckpointRun; export/bundle's errors wrap
// them too, so that either package's name matches.
var (
	// ErrInvalid: a note that cannot be opened (bad signature, unknown
	// key) or is not a checkpoint in its one canonical spelling.
	ErrInvalid = errors.New("checkpoint: invalid checkpoint")
	// ErrMismatch: records that do not match a valid checkpoint.
	ErrMismatch = errors.New("checkpoint: records do not match the checkpoint")
	// ErrRun: a valid checkpoint of another tenant or run.
	ErrRun = errors.New("checkpoint: checkpoint is of another run")
)

// Statement is what a checkpoint note states: a run's chain had Size
// records, the last of which hashes to Head, at At; KeyName is the name
// of the (first) key that signed it and Note the note verbatim. Its
// fields are governance.Checkpoint's, in the same order, so that one
// converts to the other.
type Statement struct {
	TenantID string
	RunID    string
	Size     int
	Head     string
	At       time.Time
	KeyName  string
	Note     string
}

// Text is the text a checkpoint signs: the origin line, the tenant and
// the run (url.PathEscape), the chain size, the head hash and the time
// (RFC 3339, UTC), one per line.
func Text(tenantID, runID string, size int, head string, at time.Time) (string, error) {
	if tenantID == "" || runID == "" {
		return "", fmt.Errorf("%w: empty tenant or run id", ErrInvalid)
	}
	if size < 1 {
		return "", fmt.Errorf("%w: size %d is not positive", ErrInvalid, size)
	}
	if len(head) != 64 || strings.Trim(head, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: head hash %q is not 64 lower-case hex digits", ErrInvalid, head)
	}
	// Ids are path-escaped so that any id (spaces, slashes, any script)
	// fits on one line of a signed note, in one spelling.
	return fmt.Sprintf("%s\n%s\n%s\n%d\n%s\n%s\n", Origin, url.PathEscape(tenantID), url.PathEscape(runID), size, head,
		at.UTC().Format(time.RFC3339Nano)), nil
}

// Open verifies a signed note with the given verifiers and returns what
// it states. A bad or unknown signature, or a text that is not a
// checkpoint, matches ErrInvalid.
func Open(msg []byte, verifiers note.Verifiers) (Statement, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return Statement{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	s, err := parseText(n.Text)
	if err != nil {
		return Statement{}, err
	}
	s.KeyName, s.Note = n.Sigs[0].Name, string(msg)
	return s, nil
}

// Parse returns what a note states WITHOUT checking any signature: it
// proves nothing about who signed it. It checks the form: a signed note
// with at least one well-formed Ed25519 signature line, whose text is a
// checkpoint in its one canonical spelling. KeyName is the name of the
// first signature. A note that is not one matches ErrInvalid.
func Parse(msg []byte) (Statement, error) {
	_, err := note.Open(msg, note.VerifierList())
	var un *note.UnverifiedNoteError
	if !errors.As(err, &un) {
		return Statement{}, fmt.Errorf("%w: not a signed note: %w", ErrInvalid, err)
	}
	for _, sig := range un.Note.UnverifiedSigs {
		// A key hash (4 bytes) and an Ed25519 signature (64 bytes).
		if b, err := base64.StdEncoding.DecodeString(sig.Base64); err != nil || len(b) != 4+ed25519.SignatureSize {
			return Statement{}, fmt.Errorf("%w: signature by %s is not an Ed25519 signature", ErrInvalid, sig.Name)
		}
	}
	s, err := parseText(un.Note.Text)
	if err != nil {
		return Statement{}, err
	}
	s.KeyName, s.Note = un.Note.UnverifiedSigs[0].Name, string(msg)
	return s, nil
}

// parseText parses the text of a checkpoint note; it must be exactly the
// text Text makes.
func parseText(text string) (Statement, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 6 {
		return Statement{}, fmt.Errorf("%w: %d lines of text, want 6 (origin, tenant, run, size, head hash, time): %q", ErrInvalid, len(lines), lines)
	}
	if lines[0] != Origin {
		return Statement{}, fmt.Errorf("%w: origin %q, want %q", ErrInvalid, lines[0], Origin)
	}
	size, err := strconv.Atoi(lines[3])
	if err != nil || size < 1 {
		return Statement{}, fmt.Errorf("%w: size %q is not a positive number", ErrInvalid, lines[3])
	}
	at, err := time.Parse(time.RFC3339Nano, lines[5])
	if err != nil {
		return Statement{}, fmt.Errorf("%w: time %q is not an RFC 3339 time", ErrInvalid, lines[5])
	}
	tenantID, terr := url.PathUnescape(lines[1])
	runID, rerr := url.PathUnescape(lines[2])
	if terr != nil || rerr != nil {
		return Statement{}, fmt.Errorf("%w: tenant %q or run %q is not path-escaped", ErrInvalid, lines[1], lines[2])
	}
	// One spelling per checkpoint: exactly the text Text makes (no empty
	// ids, ids escaped one way, no "+5" or "007" sizes, a lower-case hex
	// head, a UTC time).
	want, err := Text(tenantID, runID, size, lines[4], at)
	if err != nil {
		return Statement{}, err
	}
	if want != text {
		fields := []string{"origin", "tenant", "run", "size", "head hash", "time"}
		wl := strings.Split(want, "\n")
		for i := range lines {
			if lines[i] != wl[i] {
				return Statement{}, fmt.Errorf("%w: %s %q is not in canonical form %q", ErrInvalid, fields[i], lines[i], wl[i])
			}
		}
		return Statement{}, fmt.Errorf("%w: text is not in canonical form", ErrInvalid)
	}
	return Statement{TenantID: tenantID, RunID: runID, Size: size, Head: lines[4], At: at}, nil
}
