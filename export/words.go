package export

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/stopline/stopline/snapshot"
)

// Plain-language formatting, deterministic and independent of locale.

// number spells f in the canonical decimal form ("1.5", "150").
func number(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// decimal spells f for display, rounded to 10 significant digits
// ("7.989" for 7.988999999999, "15" for 15.000000000000162), hiding the
// float noise of sums; bundles keep the exact values.
func decimal(f float64) string {
	v, err := strconv.ParseFloat(strconv.FormatFloat(f, 'g', 10, 64), 64)
	if err != nil {
		v = f
	}
	return number(v)
}

// count spells a whole number with thousands separators ("20,412").
func count(n int64) string {
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

// money spells an amount in cents as dollars ("$1.53"); stopline's costs
// are what the model providers bill, in US cents.
func money(cents float64) string {
	switch {
	case cents == 0:
		return "$0.00"
	case cents < 1:
		return "less than $0.01"
	}
	whole := math.Round(cents)
	if math.Abs(cents-whole) < 1e-9 {
		return fmt.Sprintf("$%s.%02d", count(int64(whole)/100), int64(whole)%100)
	}
	return fmt.Sprintf("$%.2f", cents/100)
}

// seconds spells a duration for people ("1.5 seconds", "2 minutes 5
// seconds", "1 hour 3 minutes").
func seconds(s float64) string {
	switch {
	case s < 0:
		return "0 seconds"
	case s < 60:
		v := math.Round(s*10) / 10
		if v == 1 {
			return "1 second"
		}
		return number(v) + " seconds"
	case s < 3600:
		m, sec := int64(s)/60, int64(s)%60
		if sec == 0 {
			return plural(int(m), "minute", "minutes")
		}
		return plural(int(m), "minute", "minutes") + " " + plural(int(sec), "second", "seconds")
	default:
		h, m := int64(s)/3600, (int64(s)%3600)/60
		if m == 0 {
			return plural(int(h), "hour", "hours")
		}
		return plural(int(h), "hour", "hours") + " " + plural(int(m), "minute", "minutes")
	}
}

// plural spells "1 run" or "3 runs".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return count(int64(n)) + " " + many
}

// when spells an instant for people: "1 March 2026 at 09:00:01 UTC".
func when(t time.Time) string {
	return t.UTC().Format("2 January 2006 at 15:04:05 UTC")
}

// quote puts a name in typographic quotes.
func quote(s string) string { return "\u201c" + s + "\u201d" }

// list joins names for a sentence: "a", "a and b", "a, b and c".
func list(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// policyParams holds the parameters policy kinds use, for describing them.
type policyParams struct {
	Metric        string   `json:"metric"`
	Threshold     string   `json:"threshold"`
	WindowSeconds *float64 `json:"window_seconds"`
	Fields        []string `json:"fields"`
	Allow         []string `json:"allow"`
	Deny          []string `json:"deny"`
}

func paramsOf(p snapshot.Policy) policyParams {
	var pp policyParams
	_ = json.Unmarshal(p.ParamsJSON(), &pp) // unknown fields and kinds just say less
	return pp
}

// policyInWords describes a policy of the snapshot in one sentence for a
// reader with no technical background.
func policyInWords(snap *snapshot.PolicySnapshot, policyID string) string {
	p, ok := snap.Policy(policyID)
	if !ok {
		return fmt.Sprintf("Safeguard %s, built into the application (not part of the published policy set).", quote(policyID))
	}
	pp := paramsOf(p)
	limit, _ := snap.Threshold(pp.Threshold)
	var s string
	switch p.Kind {
	case "budget":
		switch pp.Metric {
		case "tokens":
			s = fmt.Sprintf("Usage limit %s: a run may process at most %s tokens of text.", quote(p.ID), count(int64(limit)))
		case "cost_cents":
			s = fmt.Sprintf("Spending limit %s: a run may cost at most %s.", quote(p.ID), money(limit))
		case "steps":
			s = fmt.Sprintf("Step limit %s: a run may take at most %s.", quote(p.ID), plural(int(limit), "step", "steps"))
		default:
			s = fmt.Sprintf("Budget %s: a run may use at most %s %s.", quote(p.ID), number(limit), pp.Metric)
		}
	case "rate_limit":
		window := 60.0
		if pp.WindowSeconds != nil {
			window = *pp.WindowSeconds
		}
		s = fmt.Sprintf("Pace limit %s: at most %s in any %s.", quote(p.ID), plural(int(limit), "step", "steps"), seconds(window))
	case "timeout":
		s = fmt.Sprintf("Time limit %s: a run may last at most %s.", quote(p.ID), seconds(limit))
	case "content":
		fields := pp.Fields
		if len(fields) == 0 {
			fields = []string{"output"}
		}
		s = fmt.Sprintf("Content rule %s: forbidden text must not appear in the agent's %s.", quote(p.ID), list(fields))
	case "tool_allowlist":
		s = fmt.Sprintf("Tool allow-list %s: the agent may only use %s.", quote(p.ID), list(quoted(pp.Allow)))
		if len(pp.Allow) == 0 {
			s = fmt.Sprintf("Tool allow-list %s: the agent may not use any tool.", quote(p.ID))
		}
	case "tool_denylist":
		s = fmt.Sprintf("Tool deny-list %s: the agent must not use %s.", quote(p.ID), list(quoted(pp.Deny)))
	case "expression":
		s = fmt.Sprintf("Custom rule %s.", quote(p.ID))
	default:
		s = fmt.Sprintf("Rule %s (%s).", quote(p.ID), p.Kind)
	}
	if p.Description != "" {
		s = strings.TrimSuffix(s, ".") + " (" + p.Description + ")."
	}
	return s
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = quote(n)
	}
	return out
}
