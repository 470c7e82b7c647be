// Package words spells figures and times for people, deterministically
// and independently of locale: the plain-language text of executive
// debriefs and SOC 2 attestations (package export) and the PDFs that
// show them (package export/pdf) share it.
package words

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Number spells f in the canonical decimal form ("1.5", "150").
func Number(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// Decimal spells f for display, rounded to 10 significant digits
// ("7.989" for 7.988999999999, "15" for 15.000000000000162), hiding the
// float noise of sums; bundles keep the exact values.
func Decimal(f float64) string {
	v, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 10, 64), 64)
	if err != nil {
		v = f
	}
	return Number(v)
}

// Count spells a whole number with thousands separators ("20,412").
func Count(n int64) string {
	neg := n < 0
	if neg {
		n = -n
	}
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// Money spells an amount in cents as dollars ("$1.53"); stopline's costs
// are what the model providers bill, in US cents.
func Money(cents float64) string {
	switch {
	case cents == 0:
		return "$0.00"
	case cents < 1:
		return "less than $0.01"
	}
	whole := math.Round(cents)
	if math.Abs(cents-whole) < 1e-9 {
		return fmt.Sprintf("$%s.%02d", Count(int64(whole)/100), int64(whole)%100)
	}
	return fmt.Sprintf("$%.2f", cents/100)
}

// Seconds spells a duration for people ("1.5 seconds", "2 minutes 5
// seconds", "1 hour 3 minutes").
func Seconds(s float64) string {
	switch {
	case s < 0:
		return "0 seconds"
	case s < 60:
		v := math.Round(s*10) / 10
		if v == 1 {
			return "1 second"
		}
		return Number(v) + " seconds"
	case s < 3600:
		m, sec := int64(s)/60, int64(s)%60
		if sec == 0 {
			return Plural(int(m), "minute", "minutes")
		}
		return Plural(int(m), "minute", "minutes") + " " + Plural(int(sec), "second", "seconds")
	default:
		h, m := int64(s)/3600, (int64(s)%3600)/60
		if m == 0 {
			return Plural(int(h), "hour", "hours")
		}
		return Plural(int(h), "hour", "hours") + " " + Plural(int(m), "minute", "minutes")
	}
}

// Plural spells "1 run" or "3 runs".
func Plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return Count(int64(n)) + " " + many
}

// When spells an instant for people: "1 March 2026 at 09:00:01 UTC".
func When(t time.Time) string {
	return t.UTC().Format("2 January 2006 at 15:04:05 UTC")
}

// Quote puts a name in typographic quotes.
func Quote(s string) string { return "\u201c" + s + "\u201d" }

// List joins names for a sentence: "a", "a and b", "a, b and c".
func List(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// Capitalize upper-cases the first letter of an ASCII word ("critical"
// → "Critical").
func Capitalize(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// Stamp spells an instant for prose and key facts, in UTC to the
// second, or to the millisecond when it has a fraction of a second
// ("2026-03-01 09:00:06 UTC", "2026-03-01 09:00:06.123 UTC"): never
// nanoseconds, which tables and bundles keep. The fraction is cut, not
// rounded, so that a stamp never reads later than the instant.
func Stamp(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/int(time.Millisecond) == 0 {
		return t.Format("2006-01-02 15:04:05 UTC")
	}
	return t.Format("2006-01-02 15:04:05.000 UTC")
}

// RFC3339 spells an instant in UTC, RFC 3339 with as many fractional
// digits as it has.
func RFC3339(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }
