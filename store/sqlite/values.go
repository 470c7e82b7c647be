package sqlite

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Times are stored as INTEGER unix nanoseconds, UTC; NULL is the zero
// time. Times outside what int64 nanoseconds can hold (before 1678, after
// 2262) are refused rather than stored wrong.

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// enc converts Go values to column values, keeping the first error.
type enc struct{ err error }

// time returns t as unix nanoseconds, or nil for the zero time.
func (e *enc) time(what string, t time.Time) any {
	if t.IsZero() {
		return nil
	}
	if t.Before(minTime) || t.After(maxTime) {
		if e.err == nil {
			e.err = fmt.Errorf("sqlite: %s %v is outside the storable range (1678-2262)", what, t)
		}
		return nil
	}
	return t.UnixNano()
}

// timePtr is time for an optional time; nil is NULL.
func (e *enc) timePtr(what string, t *time.Time) any {
	if t == nil {
		return nil
	}
	return e.time(what, *t)
}

// json returns v as JSON text.
func (e *enc) json(what string, v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		if e.err == nil {
			e.err = fmt.Errorf("sqlite: encoding %s: %w", what, err)
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

// intPtr is *p, or NULL.
func intPtr(p *int) any {
	if p == nil {
		return nil
	}
	return int64(*p)
}

// timeOf is the time stored in n (the zero time for NULL), in UTC.
func timeOf(n sql.NullInt64) time.Time {
	if !n.Valid {
		return time.Time{}
	}
	return time.Unix(0, n.Int64).UTC()
}

// timePtrOf is timeOf for an optional time.
func timePtrOf(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := time.Unix(0, n.Int64).UTC()
	return &t
}

// intPtrOf is the optional int stored in n.
func intPtrOf(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	v := int(n.Int64)
	return &v
}

// rowScanner is *sql.Row or *sql.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}
