package postgres

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Times are stored as bigint unix nanoseconds, UTC (timestamptz keeps
// only microseconds, and a record's time must read back as it was
// hashed); NULL is the zero time. Times outside what int64 nanoseconds
// can hold (before 1678, after 2262) are refused rather than stored wrong.

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// enc converts Go values to column values, keeping the first error.
type enc struct{ err error }

// time returns t as unix nanoseconds, or nil (NULL) for the zero time.
func (e *enc) time(what string, t time.Time) *int64 {
	if t.IsZero() {
		return nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		if e.err == nil {
			e.err = fmt.Errorf("postgres: %s %v is outside the storable range (1678-2262)", what, t)
		}
		return nil
	}
	n := t.UnixNano()
	return &n
}

// timePtr is time for an optional time; nil is NULL.
func (e *enc) timePtr(what string, t *time.Time) *int64 {
	if t == nil {
		return nil
	}
	return e.time(what, *t)
}

// json returns v as JSON text.
func (e *enc) json(what string, v any) *string {
	b, err := json.Marshal(v)
	if err != nil {
		if e.err == nil {
			e.err = fmt.Errorf("postgres: encoding %s: %w", what, err)
		}
		return nil
	}
	s := string(b)
	return &s
}

// nullString is s, or NULL when empty.
func nullString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// intPtr is *p as a bigint, or NULL.
func intPtr(p *int) *int64 {
	if p == nil {
		return nil
	}
	v := int64(*p)
	return &v
}

// timeOf is the time stored in n (the zero time for NULL), in UTC.
func timeOf(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// timePtrOf is timeOf for an optional time.
func timePtrOf(n *int64) *time.Time {
	if n == nil {
		return nil
	}
	t := time.Unix(0, *n).UTC()
	return &t
}

// intPtrOf is the optional int stored in n.
func intPtrOf(n *int64) *int {
	if n == nil {
		return nil
	}
	v := int(*n)
	return &v
}
