package snapshot

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/stopline/stopline/internal/strictjson"
)

// IDPrefix begins every snapshot id.
const IDPrefix = "SNAP-"

// PolicySnapshot is an immutable, content-hashed policy set of one tenant:
// the policies, in evaluation order, and the named thresholds they apply.
//
// Its content hash is sha256(canonical(policies) || canonical(thresholds))
// in hex, and its id is "SNAP-" followed by the first 12 hex digits of the
// hash, so the same policy set always has the same id whatever the order
// of keys or the spelling of numbers it was written with. The tenant and
// the creation time are not part of the hash.
//
// A PolicySnapshot cannot be changed after New; accessors return copies.
// It is safe for concurrent use.
type PolicySnapshot struct {
	id         string
	tenantID   string
	hash       string
	policies   []Policy
	thresholds Thresholds
	createdAt  time.Time
}

// New validates the policy set and returns its snapshot. Every problem is
// reported as a *ValidationError (matching ErrInvalid) naming the policy id
// or threshold and the field.
func New(tenantID string, policies []Policy, thresholds Thresholds, createdAt time.Time) (*PolicySnapshot, error) {
	return build("", tenantID, policies, thresholds, createdAt)
}

func build(file, tenantID string, policies []Policy, thresholds Thresholds, createdAt time.Time) (*PolicySnapshot, error) {
	verr := func(id string, idx int, field string, err error) error {
		return &ValidationError{File: file, PolicyID: id, Index: idx, Field: field, Err: err}
	}
	if tenantID == "" {
		return nil, verr("", -1, "tenant_id", errors.New("missing"))
	}
	// Ids and names are compared byte for byte after a round trip through
	// JSON, which would replace invalid UTF-8: refuse it (a file read with
	// Parse never has any).
	if !utf8.ValidString(tenantID) {
		return nil, verr("", -1, "tenant_id", errors.New("is not valid UTF-8"))
	}
	th := make(Thresholds, len(thresholds))
	for _, name := range sortedKeys(thresholds) {
		v := thresholds[name]
		if name == "" {
			return nil, &ValidationError{File: file, Index: -1, Field: "thresholds", Err: errors.New("empty threshold name")}
		}
		if !utf8.ValidString(name) {
			return nil, &ValidationError{File: file, Index: -1, Field: "thresholds", Err: fmt.Errorf("threshold name %q is not valid UTF-8", name)}
		}
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return nil, &ValidationError{File: file, Index: -1, Threshold: name, Err: fmt.Errorf("limit %v is not a finite number", v)}
		}
		if v < 0 {
			return nil, &ValidationError{File: file, Index: -1, Threshold: name, Err: fmt.Errorf("limit %v is negative", v)}
		}
		th[name] = v
	}
	if len(policies) == 0 {
		return nil, verr("", -1, "policies", errors.New("a policy set needs at least one policy"))
	}
	seen := make(map[string]int, len(policies))
	ps := make([]Policy, len(policies))
	for i, p := range policies {
		if p.ID == "" {
			return nil, verr("", i, "id", errors.New("missing"))
		}
		for _, f := range [...]struct{ name, v string }{{"id", p.ID}, {"kind", p.Kind}, {"description", p.Description}} {
			if !utf8.ValidString(f.v) {
				return nil, verr("", i, f.name, fmt.Errorf("%q is not valid UTF-8", f.v))
			}
		}
		if j, dup := seen[p.ID]; dup {
			return nil, verr(p.ID, i, "id", fmt.Errorf("duplicate policy id (also policy #%d)", j))
		}
		seen[p.ID] = i
		if p.Kind == "" {
			return nil, verr(p.ID, i, "kind", errors.New("missing"))
		}
		if !p.Enforcement.Valid() {
			return nil, verr(p.ID, i, "enforcement", fmt.Errorf("unknown mode %q (want block, warn or monitor)", p.Enforcement))
		}
		p.Enforcement = p.Enforcement.Effective()
		params := p.Params
		if len(bytes.TrimSpace(params)) == 0 {
			params = []byte("{}")
		}
		canon, err := Canonical(params)
		if err != nil {
			return nil, verr(p.ID, i, "params", err)
		}
		if canon[0] != '{' {
			return nil, verr(p.ID, i, "params", errors.New("must be a JSON object"))
		}
		p.Params = canon
		// A policy names the threshold it applies in params.threshold; it
		// must exist, so that every decision can cite its limit.
		var ref struct {
			Threshold *string `json:"threshold"`
		}
		if err := json.Unmarshal(canon, &ref); err != nil {
			return nil, verr(p.ID, i, "params.threshold", fmt.Errorf("must be a threshold name: %v", err))
		}
		if ref.Threshold != nil {
			if _, ok := th[*ref.Threshold]; !ok {
				return nil, verr(p.ID, i, "params.threshold", fmt.Errorf("names threshold %q, which is not defined in thresholds", *ref.Threshold))
			}
		}
		ps[i] = p
	}
	s := &PolicySnapshot{tenantID: tenantID, policies: ps, thresholds: th, createdAt: createdAt.UTC()}
	hash, err := s.computeHash()
	if err != nil {
		return nil, err
	}
	s.hash = hash
	s.id = IDPrefix + hash[:12]
	return s, nil
}

func sortedKeys(t Thresholds) []string {
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// computeHash returns sha256(canonical(policies) || canonical(thresholds)).
func (s *PolicySnapshot) computeHash() (string, error) {
	pj, th, err := s.canonicalParts()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(pj)
	h.Write(th)
	return hex.EncodeToString(h.Sum(nil)), nil
}

func (s *PolicySnapshot) canonicalParts() (policies, thresholds []byte, err error) {
	policies, err = CanonicalOf(s.policies)
	if err != nil {
		return nil, nil, err
	}
	thresholds, err = CanonicalOf(s.thresholds)
	if err != nil {
		return nil, nil, err
	}
	return policies, thresholds, nil
}

// ID returns the snapshot id, "SNAP-" and 12 hex digits.
func (s *PolicySnapshot) ID() string { return s.id }

// TenantID returns the tenant the snapshot belongs to.
func (s *PolicySnapshot) TenantID() string { return s.tenantID }

// ContentHash returns the hex SHA-256 of the canonical policies and thresholds.
func (s *PolicySnapshot) ContentHash() string { return s.hash }

// CreatedAt returns the creation time (UTC).
func (s *PolicySnapshot) CreatedAt() time.Time { return s.createdAt }

// PolicyCount returns the number of policies.
func (s *PolicySnapshot) PolicyCount() int { return len(s.policies) }

// Policies returns a copy of the policies in evaluation order.
func (s *PolicySnapshot) Policies() []Policy {
	out := make([]Policy, len(s.policies))
	for i, p := range s.policies {
		out[i] = p.clone()
	}
	return out
}

// Policy returns a copy of the policy with the given id.
func (s *PolicySnapshot) Policy(id string) (Policy, bool) {
	for _, p := range s.policies {
		if p.ID == id {
			return p.clone(), true
		}
	}
	return Policy{}, false
}

// Thresholds returns a copy of the thresholds.
func (s *PolicySnapshot) Thresholds() Thresholds { return s.thresholds.Clone() }

// Threshold returns the limit of the named threshold.
func (s *PolicySnapshot) Threshold(name string) (float64, bool) {
	v, ok := s.thresholds[name]
	return v, ok
}

// Verify recomputes the content hash from the snapshot's policies and
// thresholds and checks it against the hash, id and policy count the
// snapshot carries. A snapshot decoded from a store or a bundle whose
// content was changed fails with a *HashMismatchError.
func (s *PolicySnapshot) Verify() error {
	got, err := s.computeHash()
	if err != nil {
		return err
	}
	if got != s.hash {
		return &HashMismatchError{SnapshotID: s.id, Field: "content_hash", Want: s.hash, Got: got}
	}
	if want := IDPrefix + got[:12]; s.id != want {
		return &HashMismatchError{SnapshotID: s.id, Field: "snapshot_id", Want: s.id, Got: want}
	}
	return nil
}

// wire is the JSON form of a snapshot, with the design's field names.
type wire struct {
	SnapshotID  string          `json:"snapshot_id"`
	TenantID    string          `json:"tenant_id"`
	ContentHash string          `json:"content_hash"`
	PolicyCount int             `json:"policy_count"`
	CreatedAt   time.Time       `json:"created_at"`
	Policies    json.RawMessage `json:"policies"`
	Thresholds  json.RawMessage `json:"thresholds"`
}

// MarshalJSON encodes the snapshot with fields snapshot_id, tenant_id,
// content_hash, policy_count, created_at, policies and thresholds.
func (s *PolicySnapshot) MarshalJSON() ([]byte, error) {
	pj, th, err := s.canonicalParts()
	if err != nil {
		return nil, err
	}
	return json.Marshal(wire{
		SnapshotID: s.id, TenantID: s.tenantID, ContentHash: s.hash, PolicyCount: len(s.policies),
		CreatedAt: s.createdAt, Policies: pj, Thresholds: th,
	})
}

// UnmarshalJSON decodes the form MarshalJSON writes. It keeps the id and
// hash as written, so that Verify can tell whether the content matches
// them; it rejects a policy count that does not match the policies.
func (s *PolicySnapshot) UnmarshalJSON(data []byte) error {
	var w wire
	if err := strictjson.Unmarshal(data, &w, strictjson.Options{DisallowUnknownFields: true}); err != nil {
		return fmt.Errorf("snapshot: decoding: %w", err)
	}
	r, err := Restore(w.SnapshotID, w.TenantID, w.ContentHash, w.PolicyCount, w.Policies, w.Thresholds, w.CreatedAt)
	if err != nil {
		return err
	}
	*s = *r
	return nil
}

// Restore rebuilds a snapshot from the parts a store keeps: its id,
// tenant, content hash and policy count as stored, the policies' JSON
// array and the thresholds' JSON object. Like UnmarshalJSON it keeps the
// id and hash as given, so that Verify can tell whether the content
// still matches them; it rejects a policy count that does not match the
// policies.
func Restore(snapshotID, tenantID, contentHash string, policyCount int, policies, thresholds []byte, createdAt time.Time) (*PolicySnapshot, error) {
	// Strictly: a stored snapshot whose JSON a reader could read two ways
	// (a key twice, in two cases) is refused, not read the last way.
	var ps []Policy
	if err := strictjson.Unmarshal(policies, &ps, strictjson.Options{DisallowUnknownFields: true}); err != nil {
		return nil, fmt.Errorf("snapshot %s: decoding policies: %w", snapshotID, err)
	}
	var th Thresholds
	if err := strictjson.Unmarshal(thresholds, &th, strictjson.Options{}); err != nil {
		return nil, fmt.Errorf("snapshot %s: decoding thresholds: %w", snapshotID, err)
	}
	if len(ps) != policyCount {
		return nil, &HashMismatchError{SnapshotID: snapshotID, Field: "policy_count", Want: fmt.Sprint(policyCount), Got: fmt.Sprint(len(ps))}
	}
	for i := range ps {
		if len(ps[i].Params) > 0 {
			c, err := Canonical(ps[i].Params)
			if err != nil {
				return nil, fmt.Errorf("snapshot %s: policy %q params: %w", snapshotID, ps[i].ID, err)
			}
			ps[i].Params = c
		}
	}
	if th == nil {
		th = Thresholds{}
	}
	return &PolicySnapshot{id: snapshotID, tenantID: tenantID, hash: contentHash, policies: ps, thresholds: th, createdAt: createdAt.UTC()}, nil
}

// Decode decodes a snapshot from its JSON form and verifies it.
func Decode(data []byte) (*PolicySnapshot, error) {
	s := new(PolicySnapshot)
	if err := s.UnmarshalJSON(data); err != nil {
		return nil, err
	}
	if err := s.Verify(); err != nil {
		return nil, err
	}
	return s, nil
}
