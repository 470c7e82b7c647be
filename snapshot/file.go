package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"
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

// Load reads and validates the policy file at path and returns its
// snapshot, created at createdAt. Errors name the file, the policy and the
// field.
func Load(path string, createdAt time.Time) (*PolicySnapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("snapshot: reading %s: %w", path, err)
	}
	return Parse(path, data, createdAt)
}

// Parse validates a policy file's bytes and returns its snapshot. name is
// used in error messages (a file name, or "" when there is none).
func Parse(name string, data []byte, createdAt time.Time) (*PolicySnapshot, error) {
	fileErr := func(field string, err error) error {
		return &ValidationError{File: name, Index: -1, Field: field, Err: err}
	}
	if len(data) > MaxFileSize {
		return nil, fileErr("", fmt.Errorf("file larger than %d bytes", MaxFileSize))
	}
	var top struct {
		TenantID   *string                     `json:"tenant_id"`
		Thresholds map[string]*json.RawMessage `json:"thresholds"`
		Policies   []json.RawMessage           `json:"policies"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&top); err != nil {
		return nil, fileErr("", describeJSONError(data, err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fileErr("", errors.New("trailing data after the policy document"))
	}
	if top.TenantID == nil {
		return nil, fileErr("tenant_id", errors.New("missing"))
	}
	if top.Policies == nil {
		return nil, fileErr("policies", errors.New("missing"))
	}
	th := make(Thresholds, len(top.Thresholds))
	for tname, raw := range top.Thresholds {
		if raw == nil {
			return nil, &ValidationError{File: name, Index: -1, Threshold: tname, Err: errors.New("limit is null; want a number")}
		}
		var v float64
		if err := json.Unmarshal(*raw, &v); err != nil {
			return nil, &ValidationError{File: name, Index: -1, Threshold: tname, Err: fmt.Errorf("limit %s is not a number", *raw)}
		}
		th[tname] = v
	}
	ps := make([]Policy, len(top.Policies))
	for i, raw := range top.Policies {
		var p Policy
		d := json.NewDecoder(bytes.NewReader(raw))
		d.DisallowUnknownFields()
		if err := d.Decode(&p); err != nil {
			var probe struct {
				ID string `json:"id"`
			}
			_ = json.Unmarshal(raw, &probe)
			return nil, &ValidationError{File: name, PolicyID: probe.ID, Index: i, Err: describeJSONError(raw, err)}
		}
		ps[i] = p
	}
	return build(name, *top.TenantID, ps, th, createdAt)
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
	if errors.Is(err, io.EOF) {
		return errors.New("empty document")
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("malformed JSON: unexpected end of input")
	}
	return err
}
