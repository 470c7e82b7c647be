package prevention

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/stopline/stopline/snapshot"
)

// kindRequiresApproval is the kind whose steps wait for a person.
const kindRequiresApproval = "requires_approval"

// MaxHoldSeconds bounds a requires_approval policy's hold_seconds (7
// days). A runner bounds every hold further (governance.WithHolds).
const MaxHoldSeconds = 7 * 24 * 3600

// approvalHook holds the steps that match every condition it has: a
// step type, a tool, an argument pattern, a cost above a threshold.
type approvalHook struct {
	types     []StepType
	tools     map[string]struct{} // normalized names; nil: any tool
	arguments []*regexp.Regexp    // any matches the step's input; nil: any input
	threshold string
	limit     float64
	hasLimit  bool
	seconds   float64
}

func (*approvalHook) computeOnly() {}

func compileRequiresApproval(p snapshot.Policy, th snapshot.Thresholds) (Hook, error) {
	var params struct {
		StepTypes   []string `json:"step_types"`
		Tools       []string `json:"tools"`
		Arguments   []string `json:"arguments"`
		Threshold   *string  `json:"threshold"`
		HoldSeconds *float64 `json:"hold_seconds"`
	}
	if err := decodeParams(p, &params); err != nil {
		return nil, err
	}
	h := &approvalHook{}
	if params.Tools == nil && params.Arguments == nil && params.Threshold == nil {
		return nil, &snapshot.FieldError{Field: "params", Err: errors.New("want at least one of tools, arguments or threshold (a policy that holds every step is a budget of zero)")}
	}
	if params.StepTypes == nil {
		h.types = []StepType{StepToolCall}
	} else if len(params.StepTypes) == 0 {
		return nil, &snapshot.FieldError{Field: "params.step_types", Err: errors.New("empty (want step types, or no step_types for [\"tool_call\"])")}
	}
	for i, s := range params.StepTypes {
		t := StepType(s)
		field := fmt.Sprintf("params.step_types[%d]", i)
		if !t.Valid() {
			return nil, &snapshot.FieldError{Field: field, Err: fmt.Errorf("unknown step type %q (want llm_response, tool_call, tool_result or message)", s)}
		}
		if slices.Contains(h.types, t) {
			return nil, &snapshot.FieldError{Field: field, Err: fmt.Errorf("duplicate step type %q", s)}
		}
		h.types = append(h.types, t)
	}
	if params.Tools != nil {
		if len(params.Tools) == 0 {
			return nil, &snapshot.FieldError{Field: "params.tools", Err: errors.New("empty (want tool names, or no tools for any tool)")}
		}
		h.tools = make(map[string]struct{}, len(params.Tools))
		for i, tool := range params.Tools {
			field := fmt.Sprintf("params.tools[%d]", i)
			if tool == "" {
				return nil, &snapshot.FieldError{Field: field, Err: errors.New("empty tool name")}
			}
			if err := CheckName(tool); err != nil {
				return nil, &snapshot.FieldError{Field: field, Err: err}
			}
			// As a denylist: a name that differs only in case or width
			// is the same tool, so that a held tool is not let through
			// under another spelling.
			h.tools[NormalizeName(tool)] = struct{}{}
		}
	}
	if params.Arguments != nil && len(params.Arguments) == 0 {
		return nil, &snapshot.FieldError{Field: "params.arguments", Err: errors.New("empty (want regular expressions, or no arguments for any input)")}
	}
	for i, src := range params.Arguments {
		field := fmt.Sprintf("params.arguments[%d]", i)
		if src == "" {
			return nil, &snapshot.FieldError{Field: field, Err: errors.New("empty pattern (leave arguments out to hold any input)")}
		}
		re, err := regexp.Compile(src)
		if err != nil {
			return nil, &snapshot.FieldError{Field: field, Err: err}
		}
		h.arguments = append(h.arguments, re)
	}
	if params.Threshold != nil {
		name, limit, err := threshold(params.Threshold, th)
		if err != nil {
			return nil, err
		}
		h.threshold, h.limit, h.hasLimit = name, limit, true
	}
	if s := params.HoldSeconds; s != nil {
		if !(*s > 0) || math.IsInf(*s, 0) || *s > MaxHoldSeconds {
			return nil, &snapshot.FieldError{Field: "params.hold_seconds", Err: fmt.Errorf("%v; want a number of seconds above 0 and at most %d", *s, MaxHoldSeconds)}
		}
		h.seconds = *s
	}
	return h, nil
}

func (h *approvalHook) Evaluate(_ context.Context, s *Step) (Decision, error) {
	if !slices.Contains(h.types, s.Type) {
		return Allowed(), nil
	}
	if h.tools != nil {
		if _, listed := h.tools[NormalizeName(s.Tool)]; !listed {
			return Allowed(), nil
		}
	}
	arg, unread := -1, false
	if h.arguments != nil {
		arg, unread = h.matchArguments(s.Input)
		if arg < 0 && !unread {
			return Allowed(), nil
		}
	}
	if h.hasLimit && !(s.CostCents > h.limit) {
		return Allowed(), nil
	}
	d := Decision{Action: HoldForApproval, HoldSeconds: h.seconds, Message: "needs a person's approval"}
	switch {
	case h.hasLimit:
		d.Threshold, d.Limit, d.Observed = h.threshold, h.limit, s.CostCents
		d.Message = fmt.Sprintf("cost_cents %s is above %s %s: needs a person's approval", num(s.CostCents), h.threshold, num(h.limit))
	case unread:
		d.Message = "input looks like JSON but has no one reading (invalid, or a key written twice): needs a person's approval"
	case arg >= 0:
		// The pattern's number, never the text: it may be a secret.
		d.Message = fmt.Sprintf("input matches argument pattern #%d: needs a person's approval", arg)
	case s.Tool != "":
		d.Message = fmt.Sprintf("tool %q needs a person's approval", s.Tool)
	}
	return d, nil
}

// matchArguments returns the first argument pattern that matches input as
// written or, when input is JSON, as its canonical form (RFC 8785: escapes
// resolved, numbers in their shortest form), so that arguments a tool
// reads as the same JSON cannot slip past a pattern by their spelling
// (`"am\u006funt": 1e5` is `"amount":100000`). unread reports input that
// looks like JSON (an object or array) but has no one reading — invalid,
// or a key written twice, which one tool reads first and another last —:
// the step is held, a person decides.
func (h *approvalHook) matchArguments(input string) (arg int, unread bool) {
	for i, re := range h.arguments {
		if re.MatchString(input) {
			return i, false
		}
	}
	t := strings.TrimSpace(input)
	if t == "" || (t[0] != '{' && t[0] != '[') {
		return -1, false
	}
	canon, err := snapshot.Canonical([]byte(t))
	if err != nil {
		return -1, true
	}
	for i, re := range h.arguments {
		if re.Match(canon) {
			return i, false
		}
	}
	return -1, false
}
