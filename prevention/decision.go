package prevention

import (
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/stopline/stopline/snapshot"
)

// Decision is a hook's verdict on one step. The zero value is a Block with
// no policy: a hook must say Allow explicitly.
//
// For a Block, Reason says how the run ends (budget_exceeded,
// rate_limited, timeout, policy_block, ...). Threshold, Limit and Observed
// say which named threshold applied, its value in the snapshot, and the
// value observed at this step, when the policy has a threshold.
type Decision struct {
	Action    Action               `json:"action"`
	Reason    RunTerminationReason `json:"reason,omitempty"`
	PolicyID  string               `json:"policy_id,omitempty"`
	Source    Source               `json:"source,omitempty"`
	Threshold string               `json:"threshold,omitempty"`
	Limit     float64              `json:"limit,omitempty"`
	Observed  float64              `json:"observed,omitempty"`
	Message   string               `json:"message,omitempty"`
	// Enforcement is the policy's mode. A finding of a monitor-mode policy
	// has Action Block and Enforcement "monitor": it would have blocked.
	Enforcement snapshot.Enforcement `json:"enforcement,omitempty"`
	// HoldSeconds is, for a HoldForApproval, how long the step may wait
	// for a person's answer (0: the runner's default); the runner bounds
	// it (governance.WithHolds).
	HoldSeconds float64 `json:"hold_seconds,omitempty"`
}

// MaxMessageBytes bounds a decision's Message and Threshold text as the
// engine returns it, so that every decision fits the trace record that
// holds it: longer text is cut at a character boundary and ends in "…".
const MaxMessageBytes = 4 << 10

// RecordableText returns s as it is recorded: invalid UTF-8 replaced with
// U+FFFD, and cut to at most MaxMessageBytes bytes (ending in "…") when
// longer.
func RecordableText(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= MaxMessageBytes {
		return s
	}
	const ellipsis = "…"
	n := MaxMessageBytes - len(ellipsis)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ellipsis
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// Allowed returns an Allow decision.
func Allowed() Decision { return Decision{Action: Allow} }

// Source says where a decision came from.
type Source string

// Sources.
const (
	// SourcePolicy is a policy of the run's snapshot.
	SourcePolicy Source = "policy"
	// SourceHook is a Go hook registered with the runner, outside the snapshot.
	SourceHook Source = "hook"
	// SourceOperator is a person acting on the run from outside: the
	// kill switch (the decision's PolicyID is the switch's id).
	SourceOperator Source = "operator"
)

func (d Decision) String() string {
	if d.Action == Allow {
		return "allow"
	}
	s := fmt.Sprintf("%s by %s", d.Action, d.PolicyID)
	if d.Reason != "" {
		s += " (" + string(d.Reason) + ")"
	}
	if d.Threshold != "" {
		s += fmt.Sprintf(": %s observed %g, limit %g", d.Threshold, d.Observed, d.Limit)
	}
	if d.Message != "" {
		s += ": " + d.Message
	}
	return s
}

// Evaluation is the outcome of evaluating every policy and hook on one
// step. Decision is the deciding one: the first enforced Block, otherwise
// an Allow (with Action Warn when any warn-mode policy fired). Findings are
// every decision that was not a plain Allow, in evaluation order: warnings,
// monitor-mode would-blocks, and the Block itself.
type Evaluation struct {
	Decision Decision   `json:"decision"`
	Findings []Decision `json:"findings,omitempty"`
}
