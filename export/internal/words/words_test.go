package words

import (
	"testing"
	"time"
)

func TestStamp(t *testing.T) {
	base := time.Date(2026, 3, 1, 9, 0, 6, 0, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{base, "2026-03-01 08:00:06 UTC"},
		{base.Add(123456789), "2026-03-01 08:00:06.123 UTC"}, // cut, not rounded
		{base.Add(999999999), "2026-03-01 08:00:06.999 UTC"},
		{base.Add(999), "2026-03-01 08:00:06 UTC"}, // under a millisecond
		{base.Add(500 * time.Millisecond), "2026-03-01 08:00:06.500 UTC"},
	} {
		if got := Stamp(tc.in); got != tc.want {
			t.Errorf("Stamp(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
