package sqlstore

import (
	"encoding/json"
	"math"
	"time"
)

// Times are stored as 64-bit integer unix nanoseconds, UTC (a record's
// time must read back exactly as it was hashed); NULL is the zero time.
// Times outside what int64 nanoseconds can hold (before 1678, after 2262)
// are refused rather than stored wrong. Column values are nil (NULL) or
// int64, float64, string, []byte and bool, which every driver binds.

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// Enc converts Go values to column values, keeping the first error.
type Enc struct {
	d   *Dialect
	Err error
}

// Enc returns a new encoder whose errors name the dialect.
func (d *Dialect) Enc() Enc { return Enc{d: d} }

// Time returns t as unix nanoseconds (an int64), or nil for the zero time.
func (e *Enc) Time(what string, t time.Time) any {
	if t.IsZero() {
		return nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		if e.Err == nil {
			e.Err = e.d.errorf("%s %v is outside the storable range (1678-2262)", what, t)
		}
		return nil
	}
	return t.UnixNano()
}

// TimePtr is Time for an optional time; nil is NULL.
func (e *Enc) TimePtr(what string, t *time.Time) any {
	if t == nil {
		return nil
	}
	return e.Time(what, *t)
}

// JSON returns v as JSON text.
func (e *Enc) JSON(what string, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		if e.Err == nil {
			e.Err = e.d.errorf("encoding %s: %w", what, err)
		}
		return nil
	}
	return string(b)
}

// nullString is s, or NULL when empty.
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// intPtr is *p as an int64, or NULL.
func intPtr(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

// TimeOf is the time stored in n (the zero time for NULL), in UTC.
func TimeOf(n *int64) time.Time {
	if n == nil {
		return time.Time{}
	}
	return time.Unix(0, *n).UTC()
}

// timePtrOf is TimeOf for an optional time.
func timePtrOf(n *int64) *time.Time {
	if n == nil {
		return nil
	}
	t := TimeOf(n)
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

// deref is *p, or the zero value for NULL.
func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
