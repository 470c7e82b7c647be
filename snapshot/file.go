package snapshot

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stopline/stopline/internal/strictjson"
)

// MaxFileSize bounds a policy file; larger files are rejected unread.
const MaxFileSize = 4 << 20

// File is the JSON document users write: a tenant, named thresholds and an
// ordered list of policies.
type File struct {
	TenantID   string     `json:"tenant_id"`
	Thresholds Thresholds `json:"thresholds"`
	Policies   []Policy   `json:"policies"`
}

// Checker checks what this package cannot know: that a policy's kind is
// one the program can run, and that its parameters make sense for that
// kind (a regular expression compiles, a metric exists). An error naming
// a field of the policy is a *FieldError. *prevention.Kinds implements it:
// pass the kinds the runner will run the snapshot with.
type Checker interface {
	CheckPolicy(p Policy, th Thresholds) error
}

// FieldError is a problem with one field of a policy, as a Checker or a
// policy kind reports it: Field is its path within the policy, such as
// "kind" or "params.patterns[0]".
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// Load reads the policy file at path and returns its snapshot, created at
// createdAt, as Parse does.
func Load(path string, createdAt time.Time, kinds Checker) (*PolicySnapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("snapshot: reading %s: %w", path, err)
	}
	return Parse(path, data, createdAt, kinds)
}

// Parse validates a policy file's bytes and returns its snapshot. name is
// used in error messages (a file name, or "" when there is none).
//
// Everything is checked before any run can start, and every problem is a
// *ValidationError naming the file, the policy (id and position) or the
// threshold, and the field: the document's structure; keys — an unknown
// key, a key written twice, or two keys that differ only in case (one
// reader would take the first and another the last, so that a reviewer
// approves one policy and another runs) are refused, as is invalid UTF-8;
// thresholds (finite, non-negative numbers; an integer above 2^53 that a
// float64 cannot hold exactly is refused rather than rounded); ids and
// enforcement modes; and, through kinds, each policy's kind and
// parameters. kinds must not be nil.
func Parse(name string, data []byte, createdAt time.Time, kinds Checker) (*PolicySnapshot, error) {
	fileErr := func(field string, err error) error {
		return &ValidationError{File: name, Index: -1, Field: field, Err: err}
	}
	if kinds == nil {
		return nil, errors.New("snapshot: Parse needs the policy kinds the snapshot will run with (prevention.Builtin(), or the runner's Kinds())")
	}
	if len(data) > MaxFileSize {
		return nil, fileErr("", fmt.Errorf("file larger than %d bytes", MaxFileSize))
	}
	var top struct {
		TenantID   *string                    `json:"tenant_id"`
		Thresholds map[string]json.RawMessage `json:"thresholds"`
		Policies   []json.RawMessage          `json:"policies"`
	}
	if err := strictjson.Unmarshal(data, &top, strictjson.Options{DisallowUnknownFields: true}); err != nil {
		return nil, placeJSONError(name, data, err)
	}
	if top.TenantID == nil {
		return nil, fileErr("tenant_id", errors.New("missing"))
	}
	if top.Policies == nil {
		return nil, fileErr("policies", errors.New("missing"))
	}
	th := make(Thresholds, len(top.Thresholds))
	for tname, raw := range top.Thresholds {
		v, err := parseLimit(raw)
		if err != nil {
			return nil, &ValidationError{File: name, Index: -1, Threshold: tname, Err: err}
		}
		th[tname] = v
	}
	ps := make([]Policy, len(top.Policies))
	for i, raw := range top.Policies {
		var p Policy
		if err := strictjson.Unmarshal(raw, &p, strictjson.Options{DisallowUnknownFields: true}); err != nil {
			ve := &ValidationError{File: name, PolicyID: probeID(raw), Index: i, Err: describeJSONError(raw, err)}
			var se *strictjson.Error
			if errors.As(err, &se) && !errors.Is(err, strictjson.ErrSyntax) {
				ve.Field, ve.Err = fieldOf(se), se.Err
			}
			return nil, ve
		}
		ps[i] = p
	}
	snap, err := build(name, *top.TenantID, ps, th, createdAt)
	if err != nil {
		return nil, err
	}
	if err := snap.Check(kinds); err != nil {
		var ve *ValidationError
		if errors.As(err, &ve) {
			ve.File = name
		}
		return nil, err
	}
	return snap, nil
}

// Check checks each policy of the snapshot with kinds, and returns the
// first problem as a *ValidationError naming the policy and the field.
func (s *PolicySnapshot) Check(kinds Checker) error {
	if kinds == nil {
		return errors.New("snapshot: Check needs the policy kinds")
	}
	for i, p := range s.policies {
		if err := kinds.CheckPolicy(p.clone(), s.thresholds.Clone()); err != nil {
			ve := &ValidationError{PolicyID: p.ID, Index: i, Err: err}
			var fe *FieldError
			if errors.As(err, &fe) {
				ve.Field, ve.Err = fe.Field, fe.Err
			}
			return ve
		}
	}
	return nil
}

// parseLimit reads a threshold's limit: a JSON number that a float64
// holds exactly if it is an integer.
func parseLimit(raw json.RawMessage) (float64, error) {
	if string(raw) == "null" {
		return 0, errors.New("limit is null; want a number")
	}
	var num json.Number
	if len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &num) != nil {
		return 0, fmt.Errorf("limit %s is not a number", raw)
	}
	v, err := num.Float64()
	if err != nil {
		return 0, fmt.Errorf("limit %s is not a finite number", num)
	}
	// Steps and tokens are counted as integers and compared as integers:
	// a limit that is an integer must be the one written, not the float
	// it rounds to (9007199254740993 would become 9007199254740992).
	if r, ok := new(big.Rat).SetString(string(num)); ok && r.IsInt() {
		if f := new(big.Rat).SetFloat64(v); f == nil || f.Cmp(r) != 0 {
			return 0, fmt.Errorf("limit %s is an integer above 2^53 that cannot be held exactly; use at most 9007199254740992", num)
		}
	}
	return v, nil
}

// placeJSONError turns an error in the document into a ValidationError
// that names the policy (and the key) when the problem lies in one.
func placeJSONError(name string, data []byte, err error) error {
	ve := &ValidationError{File: name, Index: -1, Err: describeJSONError(data, err)}
	var se *strictjson.Error
	if !errors.As(err, &se) || errors.Is(err, strictjson.ErrSyntax) {
		return ve
	}
	ve.Err = se.Err
	path := se.Path
	switch {
	case strings.HasPrefix(path, "policies["):
		idx, rest, _ := strings.Cut(path[len("policies["):], "]")
		if i, err := strconv.Atoi(idx); err == nil {
			ve.Index = i
			// Read leniently to name the policy: the strict read failed.
			var lenient struct {
				Policies []json.RawMessage `json:"policies"`
			}
			if json.Unmarshal(data, &lenient) == nil && i < len(lenient.Policies) {
				ve.PolicyID = probeID(lenient.Policies[i])
			}
		}
		ve.Field = joinField(strings.TrimPrefix(rest, "."), se.Key)
	case path == "thresholds" && se.Key != "":
		ve.Threshold = se.Key
	default:
		ve.Field = joinField(path, se.Key)
	}
	ve.Err = keyError(se)
	return ve
}

// fieldOf is the field a strictjson error in a policy names.
func fieldOf(se *strictjson.Error) string {
	se.Err = keyError(se)
	return joinField(se.Path, se.Key)
}

// keyError says what is wrong with the key a strictjson error names.
func keyError(se *strictjson.Error) error {
	switch {
	case se.Other != "" && se.Other != se.Key:
		return fmt.Errorf("%w: %q and %q", se.Err, se.Other, se.Key)
	case se.Key != "":
		return fmt.Errorf("%w %q", se.Err, se.Key)
	}
	return se.Err
}

func joinField(path, key string) string {
	switch {
	case path == "":
		return key
	case key == "":
		return path
	}
	return path + "." + key
}

// probeID reads a policy's id for an error message, leniently: the
// policy is already known to be bad.
func probeID(raw json.RawMessage) string {
	var probe struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &probe)
	return probe.ID
}

// describeJSONError turns encoding/json errors into messages that say
// where: line and column for syntax errors, the field for type errors.
func describeJSONError(data []byte, err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		line, col := 1, 1
		for _, b := range data[:min(int(se.Offset), len(data))] {
			if b == '\n' {
				line++
				col = 1
			} else {
				col++
			}
		}
		return fmt.Errorf("malformed JSON at line %d, column %d: %v", line, col, se)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("field %s: got JSON %s, want %s", te.Field, te.Value, te.Type)
	}
	if errors.Is(err, strictjson.ErrSyntax) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	if errors.Is(err, io.EOF) {
		return errors.New("empty document")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("malformed JSON: unexpected end of input")
	}
	return err
}
