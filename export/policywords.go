package export

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/stopline/stopline/export/internal/words"
	"github.com/stopline/stopline/snapshot"
)

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
		return fmt.Sprintf("Safeguard %s, built into the application (not part of the published policy set).", words.Quote(policyID))
	}
	pp := paramsOf(p)
	limit, _ := snap.Threshold(pp.Threshold)
	var s string
	switch p.Kind {
	case "budget":
		switch pp.Metric {
		case "tokens":
			s = fmt.Sprintf("Usage limit %s: a run may process at most %s tokens of text.", words.Quote(p.ID), words.Count(int64(limit)))
		case "cost_cents":
			s = fmt.Sprintf("Spending limit %s: a run may cost at most %s.", words.Quote(p.ID), words.Money(limit))
		case "steps":
			s = fmt.Sprintf("Step limit %s: a run may take at most %s.", words.Quote(p.ID), words.Plural(int(limit), "step", "steps"))
		default:
			s = fmt.Sprintf("Budget %s: a run may use at most %s %s.", words.Quote(p.ID), words.Number(limit), pp.Metric)
		}
	case "rate_limit":
		window := 60.0
		if pp.WindowSeconds != nil {
			window = *pp.WindowSeconds
		}
		s = fmt.Sprintf("Pace limit %s: at most %s in any %s.", words.Quote(p.ID), words.Plural(int(limit), "step", "steps"), words.Seconds(window))
	case "timeout":
		s = fmt.Sprintf("Time limit %s: a run may last at most %s.", words.Quote(p.ID), words.Seconds(limit))
	case "content":
		fields := pp.Fields
		if len(fields) == 0 {
			fields = []string{"output"}
		}
		s = fmt.Sprintf("Content rule %s: forbidden text must not appear in the agent's %s.", words.Quote(p.ID), words.List(fields))
	case "tool_allowlist":
		s = fmt.Sprintf("Tool allow-list %s: the agent may only use %s.", words.Quote(p.ID), words.List(quoted(pp.Allow)))
		if len(pp.Allow) == 0 {
			s = fmt.Sprintf("Tool allow-list %s: the agent may not use any tool.", words.Quote(p.ID))
		}
	case "tool_denylist":
		s = fmt.Sprintf("Tool deny-list %s: the agent must not use %s.", words.Quote(p.ID), words.List(quoted(pp.Deny)))
	case "expression":
		s = fmt.Sprintf("Custom rule %s.", words.Quote(p.ID))
	default:
		s = fmt.Sprintf("Rule %s (%s).", words.Quote(p.ID), p.Kind)
	}
	if p.Description != "" {
		s = strings.TrimSuffix(s, ".") + " (" + p.Description + ")."
	}
	return s
}

func quoted(names []string) []string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = words.Quote(n)
	}
	return out
}
