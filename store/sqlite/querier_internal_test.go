package sqlite

import "testing"

// The shared layer's numbered placeholders become SQLite's, and nothing
// else changes: not a '$' in a string literal, not a '$' without a digit.
func TestRebind(t *testing.T) {
	var rb rebinder
	for _, tc := range []struct{ in, want string }{
		{`SELECT 1`, `SELECT 1`},
		{`WHERE a = $1 AND b = $12`, `WHERE a = ?1 AND b = ?12`},
		{`VALUES ($1, '$2', 'it''s $3', $4)`, `VALUES (?1, '$2', 'it''s $3', ?4)`},
		{`SELECT $ FROM t WHERE x = $2`, `SELECT $ FROM t WHERE x = ?2`},
	} {
		for range 2 { // the second time from the cache
			if got := rb.rebind(tc.in); got != tc.want {
				t.Errorf("rebind(%q) = %q, want %q", tc.in, got, tc.want)
			}
		}
	}
}
