// Package translog is the one reading of a tenant log's leaves and signed
// tree heads, and the arithmetic of appending to the log, shared by the
// stores that append (internal/sqlstore, store/memstore), package
// tenantlog that proves and verifies, and export/bundle, which checks a
// bundle's inclusion proof offline. It imports only the standard library
// and golang.org/x/mod/sumdb (tlog for RFC 6962 hashing and proofs, note
// for signed notes).
//
// A tenant's log is a Merkle tree (RFC 6962, as golang.org/x/mod/sumdb/tlog
// builds it) whose leaves are, in the order they were stored, the final
// head of every run's chain (kind run_end, appended by CloseRun) and every
// checkpoint stored (kind checkpoint, appended by PutCheckpoint). A leaf's
// hash is tlog.RecordHash(Leaf.Encode()) = SHA-256(0x00 || encoding); the
// encoding's first line names it, so that no other stopline text hashes
// alike.
package translog

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"net/url"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// LeafOrigin is the first line of every leaf's encoding; HeadOrigin the
// first line of every signed tree head.
const (
	LeafOrigin = "stopline/tenant-log-leaf/v1"
	HeadOrigin = "stopline/tenant-log/v1"
)

// Sentinels; package tenantlog and export/bundle export or wrap them.
var (
	// ErrInvalid: a leaf or tree head that is not in its one canonical
	// form, or a head note that cannot be opened.
	ErrInvalid = errors.New("tenantlog: invalid leaf or tree head")
	// ErrProof: an inclusion or consistency proof that does not verify.
	ErrProof = errors.New("tenantlog: proof does not verify")
)

// Kind is what a leaf records.
type Kind string

// Leaf kinds.
const (
	// KindRunEnd: a run's final chain head, appended when the run ended.
	KindRunEnd Kind = "run_end"
	// KindCheckpoint: a stored checkpoint of a run's chain.
	KindCheckpoint Kind = "checkpoint"
)

// Leaf is one entry of a tenant's log: Seq is the seq of the record whose
// hash is Head (for a checkpoint of size n, n-1). KeyName and NoteHash
// (hex SHA-256 of the signed note) are a checkpoint's and empty for
// run_end. Index is the leaf's position in the log; it is not part of the
// encoding (the tree places it).
type Leaf struct {
	Index    int64
	TenantID string
	RunID    string
	Kind     Kind
	Seq      int
	Head     string
	KeyName  string
	NoteHash string
}

// NoteHash is the hash a checkpoint leaf states of a signed note.
func NoteHash(note string) string {
	h := sha256.Sum256([]byte(note))
	return hex.EncodeToString(h[:])
}

func isHex64(s string) bool {
	return len(s) == 64 && strings.Trim(s, "0123456789abcdef") == ""
}

// Encode returns the leaf's canonical encoding: lines (each ending in
// "\n") LeafOrigin, the tenant and the run (url.PathEscape), the kind, the
// seq (decimal), the head hash (64 lower-case hex digits), and for a
// checkpoint the key name (url.PathEscape) and the note hash.
func (l Leaf) Encode() ([]byte, error) {
	if l.TenantID == "" || l.RunID == "" {
		return nil, fmt.Errorf("%w: leaf with an empty tenant or run id", ErrInvalid)
	}
	if l.Seq < 0 {
		return nil, fmt.Errorf("%w: leaf of run %s: seq %d is negative", ErrInvalid, l.RunID, l.Seq)
	}
	if !isHex64(l.Head) {
		return nil, fmt.Errorf("%w: leaf of run %s: head hash %q is not 64 lower-case hex digits", ErrInvalid, l.RunID, l.Head)
	}
	b := make([]byte, 0, 160)
	b = append(b, LeafOrigin+"\n"...)
	b = append(b, url.PathEscape(l.TenantID)+"\n"+url.PathEscape(l.RunID)+"\n"...)
	switch l.Kind {
	case KindRunEnd:
		if l.KeyName != "" || l.NoteHash != "" {
			return nil, fmt.Errorf("%w: run_end leaf of run %s with a key or note", ErrInvalid, l.RunID)
		}
	case KindCheckpoint:
		if l.KeyName == "" || !isHex64(l.NoteHash) {
			return nil, fmt.Errorf("%w: checkpoint leaf of run %s needs a key name and a note hash", ErrInvalid, l.RunID)
		}
	default:
		return nil, fmt.Errorf("%w: leaf of run %s: kind %q is not run_end or checkpoint", ErrInvalid, l.RunID, l.Kind)
	}
	b = append(b, string(l.Kind)+"\n"...)
	b = strconv.AppendInt(b, int64(l.Seq), 10)
	b = append(b, '\n')
	b = append(b, l.Head+"\n"...)
	if l.Kind == KindCheckpoint {
		b = append(b, url.PathEscape(l.KeyName)+"\n"+l.NoteHash+"\n"...)
	}
	return b, nil
}

// Hash is the leaf's hash in the tree: tlog.RecordHash of its encoding.
func (l Leaf) Hash() (tlog.Hash, error) {
	b, err := l.Encode()
	if err != nil {
		return tlog.Hash{}, err
	}
	return tlog.RecordHash(b), nil
}

// Head is what a signed tree head states: the tenant's log had Size
// leaves whose tree hash is Root (hex), at At. KeyName is the name of the
// first key that signed it, Note the note verbatim.
type Head struct {
	TenantID string
	Size     int64
	Root     string
	At       time.Time
	KeyName  string
	Note     string
}

// RootHash is Root as a tlog.Hash.
func (h Head) RootHash() (tlog.Hash, error) {
	if !isHex64(h.Root) {
		return tlog.Hash{}, fmt.Errorf("%w: root %q is not 64 lower-case hex digits", ErrInvalid, h.Root)
	}
	var r tlog.Hash
	_, err := hex.Decode(r[:], []byte(h.Root))
	return r, err
}

// HexHash is h in lower-case hex, as heads and leaves spell hashes.
func HexHash(h tlog.Hash) string { return hex.EncodeToString(h[:]) }

// ParseHexHash reads a hash spelt as HexHash spells it.
func ParseHexHash(s string) (tlog.Hash, error) {
	return Head{Root: s}.RootHash()
}

// HeadText is the text a tree head signs: HeadOrigin, the tenant
// (url.PathEscape), the size, the root hash (hex) and the time (RFC 3339,
// UTC), one per line.
func HeadText(tenantID string, size int64, root string, at time.Time) (string, error) {
	if tenantID == "" {
		return "", fmt.Errorf("%w: empty tenant id", ErrInvalid)
	}
	if size < 0 {
		return "", fmt.Errorf("%w: size %d is negative", ErrInvalid, size)
	}
	if !isHex64(root) {
		return "", fmt.Errorf("%w: root %q is not 64 lower-case hex digits", ErrInvalid, root)
	}
	return fmt.Sprintf("%s\n%s\n%d\n%s\n%s\n", HeadOrigin, url.PathEscape(tenantID), size, root,
		at.UTC().Format(time.RFC3339Nano)), nil
}

// OpenHead verifies a signed tree head with verifiers and returns what it
// states. A bad or unknown signature, or a text that is not a tree head in
// its canonical form, matches ErrInvalid.
func OpenHead(msg []byte, verifiers note.Verifiers) (Head, error) {
	n, err := note.Open(msg, verifiers)
	if err != nil {
		return Head{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	h, err := parseHeadText(n.Text)
	if err != nil {
		return Head{}, err
	}
	h.KeyName, h.Note = n.Sigs[0].Name, string(msg)
	return h, nil
}

// ParseHead returns what a tree head note states WITHOUT checking its
// signature: a signed note with well-formed Ed25519 signature lines whose
// text is a tree head in canonical form.
func ParseHead(msg []byte) (Head, error) {
	_, err := note.Open(msg, note.VerifierList())
	var un *note.UnverifiedNoteError
	if !errors.As(err, &un) {
		return Head{}, fmt.Errorf("%w: not a signed note: %w", ErrInvalid, err)
	}
	for _, sig := range un.Note.UnverifiedSigs {
		if b, err := base64.StdEncoding.DecodeString(sig.Base64); err != nil || len(b) != 4+ed25519.SignatureSize {
			return Head{}, fmt.Errorf("%w: signature by %s is not an Ed25519 signature", ErrInvalid, sig.Name)
		}
	}
	h, err := parseHeadText(un.Note.Text)
	if err != nil {
		return Head{}, err
	}
	h.KeyName, h.Note = un.Note.UnverifiedSigs[0].Name, string(msg)
	return h, nil
}

func parseHeadText(text string) (Head, error) {
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if len(lines) != 5 {
		return Head{}, fmt.Errorf("%w: %d lines of text, want 5 (origin, tenant, size, root, time)", ErrInvalid, len(lines))
	}
	if lines[0] != HeadOrigin {
		return Head{}, fmt.Errorf("%w: origin %q, want %q", ErrInvalid, lines[0], HeadOrigin)
	}
	tenantID, err := url.PathUnescape(lines[1])
	if err != nil {
		return Head{}, fmt.Errorf("%w: tenant %q is not path-escaped", ErrInvalid, lines[1])
	}
	size, err := strconv.ParseInt(lines[2], 10, 64)
	if err != nil || size < 0 {
		return Head{}, fmt.Errorf("%w: size %q is not a number", ErrInvalid, lines[2])
	}
	at, err := time.Parse(time.RFC3339Nano, lines[4])
	if err != nil {
		return Head{}, fmt.Errorf("%w: time %q is not an RFC 3339 time", ErrInvalid, lines[4])
	}
	want, err := HeadText(tenantID, size, lines[3], at)
	if err != nil {
		return Head{}, err
	}
	if want != text {
		return Head{}, fmt.Errorf("%w: tree head text is not in canonical form (want %q)", ErrInvalid, want)
	}
	return Head{TenantID: tenantID, Size: size, Root: lines[3], At: at.UTC()}, nil
}

// Frontier is the state an append needs: the hashes of the complete
// subtrees a log of size n splits into (one per bit set in n, largest
// first; tlog reads exactly these to compute the tree hash of size n and
// the stored hashes of leaf n). Stores keep it beside the size, so that
// an append reads one row.
type Frontier []tlog.Hash

// frontierIndexes are the stored-hash indexes of the frontier of size n,
// in Frontier's order (which is also ascending).
func frontierIndexes(n int64) []int64 {
	out := make([]int64, 0, bits.OnesCount64(uint64(n)))
	var lo int64
	for level := 62; level >= 0; level-- {
		if n&(1<<level) != 0 {
			out = append(out, tlog.StoredHashIndex(level, lo>>level))
			lo += 1 << level
		}
	}
	return out
}

// DecodeFrontier reads a frontier of a log of size n as Bytes wrote it.
func DecodeFrontier(n int64, b []byte) (Frontier, error) {
	k := bits.OnesCount64(uint64(n))
	if n < 0 || len(b) != k*tlog.HashSize {
		return nil, fmt.Errorf("%w: frontier of %d bytes for a log of %d leaves, want %d", ErrInvalid, len(b), n, k*tlog.HashSize)
	}
	f := make(Frontier, k)
	for i := range f {
		copy(f[i][:], b[i*tlog.HashSize:])
	}
	return f, nil
}

// Bytes is the frontier's hashes concatenated.
func (f Frontier) Bytes() []byte {
	b := make([]byte, 0, len(f)*tlog.HashSize)
	for _, h := range f {
		b = append(b, h[:]...)
	}
	return b
}

// reader serves the frontier of size n to tlog.
func (f Frontier) reader(n int64) tlog.HashReader {
	idx := frontierIndexes(n)
	return tlog.HashReaderFunc(func(want []int64) ([]tlog.Hash, error) {
		out := make([]tlog.Hash, len(want))
		for i, w := range want {
			j := -1
			for k, x := range idx {
				if x == w {
					j = k
					break
				}
			}
			if j < 0 || j >= len(f) {
				return nil, fmt.Errorf("%w: hash %d is not on the frontier of a log of %d leaves", ErrInvalid, w, n)
			}
			out[i] = f[j]
		}
		return out, nil
	})
}

// Root is the tree hash of the log of size n whose frontier f is.
func (f Frontier) Root(n int64) (tlog.Hash, error) {
	if len(f) != bits.OnesCount64(uint64(n)) {
		return tlog.Hash{}, fmt.Errorf("%w: frontier of %d hashes for a log of %d leaves", ErrInvalid, len(f), n)
	}
	return tlog.TreeHash(n, f.reader(n))
}

// Append appends the leaf hash h as leaf n of the log whose frontier (of
// size n) f is. It returns the hashes to store from stored-hash index
// tlog.StoredHashIndex(0, n) on (consecutive indexes, tlog.StoredHashes)
// and the frontier of size n+1.
func (f Frontier) Append(n int64, h tlog.Hash) (stored []tlog.Hash, next Frontier, err error) {
	if len(f) != bits.OnesCount64(uint64(n)) {
		return nil, nil, fmt.Errorf("%w: frontier of %d hashes for a log of %d leaves", ErrInvalid, len(f), n)
	}
	stored, err = tlog.StoredHashesForRecordHash(n, h, f.reader(n))
	if err != nil {
		return nil, nil, err
	}
	// The m trailing ones of n are the m smallest subtrees, which the new
	// leaf completes into one of level m: stored's last hash.
	m := bits.TrailingZeros64(uint64(n + 1))
	next = append(f[:len(f)-m:len(f)-m], stored[len(stored)-1])
	return stored, next, nil
}

// CheckInclusion checks that leaf (at leaf.Index) is in the tree of size
// size whose hash is root, by proof (tlog.CheckRecord).
func CheckInclusion(proof tlog.RecordProof, size int64, root tlog.Hash, leaf Leaf) error {
	h, err := leaf.Hash()
	if err != nil {
		return err
	}
	if leaf.Index < 0 || leaf.Index >= size {
		return fmt.Errorf("%w: leaf %d is outside a tree of %d leaves", ErrProof, leaf.Index, size)
	}
	if err := tlog.CheckRecord(proof, size, root, leaf.Index, h); err != nil {
		return fmt.Errorf("%w: leaf %d (%s of run %s) in the tree of %d leaves: %w", ErrProof, leaf.Index, leaf.Kind, leaf.RunID, size, err)
	}
	return nil
}
