package snapshot

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stopline/stopline/internal/strictjson"
)

// Enforcement says what a policy's Block does to the run.
type Enforcement string

// Enforcement modes. The zero value means EnforceBlock.
const (
	// EnforceBlock stops the run at the violating step (the default).
	EnforceBlock Enforcement = "block"
	// EnforceWarn records the violation as a warning; the run goes on.
	EnforceWarn Enforcement = "warn"
	// EnforceMonitor evaluates the policy and records what it would have
	// blocked, but never stops the run: for trying a policy in production.
	EnforceMonitor Enforcement = "monitor"
)

// Valid reports whether e is one of the three modes or empty (block).
func (e Enforcement) Valid() bool {
	switch e {
	case "", EnforceBlock, EnforceWarn, EnforceMonitor:
		return true
	}
	return false
}

// Effective returns e with the empty value resolved to EnforceBlock.
func (e Enforcement) Effective() Enforcement {
	if e == "" {
		return EnforceBlock
	}
	return e
}

// Policy is one entry of a policy set: an id unique within the set, a kind
// that the prevention engine knows how to compile, the kind's parameters as
// JSON, and an enforcement mode.
//
// A Policy is a value; the Params bytes it holds are canonical JSON and
// must not be modified (use ParamsJSON for a copy).
type Policy struct {
	ID          string          `json:"id"`
	Kind        string          `json:"kind"`
	Params      json.RawMessage `json:"params,omitempty"`
	Enforcement Enforcement     `json:"enforcement,omitempty"`
	Description string          `json:"description,omitempty"`
}

// ParamsJSON returns a copy of the policy's parameters ("{}" when absent).
func (p Policy) ParamsJSON() []byte {
	if len(p.Params) == 0 {
		return []byte("{}")
	}
	return bytes.Clone(p.Params)
}

// DecodeParams decodes the policy's parameters into the struct v points
// to, strictly: an unknown parameter, or one whose name differs from a
// field's only in case ("Metric" for "metric"), is an error naming it, so
// that a misspelt parameter is never a silent default. A policy kind
// decodes its parameters with it.
func (p Policy) DecodeParams(v any) error {
	err := strictjson.Unmarshal(p.ParamsJSON(), v, strictjson.Options{DisallowUnknownFields: true})
	var se *strictjson.Error
	if errors.As(err, &se) && !errors.Is(err, strictjson.ErrSyntax) {
		field := "params"
		if se.Path != "" {
			field += "." + se.Path
		}
		if se.Key != "" {
			field += "." + se.Key
		}
		return &FieldError{Field: field, Err: keyError(se)}
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &FieldError{Field: "params." + te.Field, Err: fmt.Errorf("got JSON %s, want %s", te.Value, te.Type)}
	}
	return err
}

func (p Policy) clone() Policy {
	if p.Params != nil {
		p.Params = bytes.Clone(p.Params)
	}
	return p
}

// Thresholds are the named limits of a policy set, such as
// "max_cost_cents": 150. Policies refer to them by name so that every
// decision can say which threshold applied.
type Thresholds map[string]float64

// Clone returns a copy of t.
func (t Thresholds) Clone() Thresholds {
	c := make(Thresholds, len(t))
	for k, v := range t {
		c[k] = v
	}
	return c
}

func (p Policy) String() string { return fmt.Sprintf("%s (%s)", p.ID, p.Kind) }
