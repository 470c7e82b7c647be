package prevention

import (
	"context"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"time"

	"github.com/stopline/stopline/prevention/internal/streammatch"
	"github.com/stopline/stopline/snapshot"
)

// The built-in policy kinds (kind.go registers them). doc.go describes
// their parameters and semantics.
const (
	kindBudget        = "budget"
	kindRateLimit     = "rate_limit"
	kindTimeout       = "timeout"
	kindContent       = "content"
	kindToolAllowlist = "tool_allowlist"
	kindToolDenylist  = "tool_denylist"
)

// budgetMetric is a cumulative value a budget limits.
type budgetMetric uint8

const (
	metricTokens budgetMetric = iota
	metricCostCents
	metricSteps
)

var metricNames = [...]string{metricTokens: "tokens", metricCostCents: "cost_cents", metricSteps: "steps"}

// budgetHook blocks the first step whose cumulative metric, this step
// included, is strictly greater than the limit.
type budgetHook struct {
	metric    budgetMetric
	threshold string
	limit     float64
}

func compileBudget(p snapshot.Policy, th snapshot.Thresholds) (Hook, error) {
	var params struct {
		Metric    *string `json:"metric"`
		Threshold *string `json:"threshold"`
	}
	if err := decodeParams(p, &params); err != nil {
		return nil, err
	}
	if params.Metric == nil {
		return nil, &snapshot.FieldError{Field: "params.metric", Err: errors.New("missing (want tokens, cost_cents or steps)")}
	}
	m := slices.Index(metricNames[:], *params.Metric)
	if m < 0 {
		return nil, &snapshot.FieldError{Field: "params.metric", Err: fmt.Errorf("unknown metric %q (want tokens, cost_cents or steps)", *params.Metric)}
	}
	name, limit, err := threshold(params.Threshold, th)
	if err != nil {
		return nil, err
	}
	return &budgetHook{metric: budgetMetric(m), threshold: name, limit: limit}, nil
}

func (h *budgetHook) Evaluate(_ context.Context, s *Step) (Decision, error) {
	var v float64
	switch h.metric {
	case metricTokens:
		if !exceeds(s.TotalTokens, h.limit) {
			return Allowed(), nil
		}
		v = float64(s.TotalTokens)
	case metricSteps:
		if !exceeds(int64(s.StepCount()), h.limit) {
			return Allowed(), nil
		}
		v = float64(s.StepCount())
	default:
		v = s.TotalCostCents
		if v <= h.limit { // NaN fails closed
			return Allowed(), nil
		}
	}
	return Decision{
		Action: Block, Reason: ReasonBudgetExceeded,
		Threshold: h.threshold, Limit: h.limit, Observed: v,
		Message: "cumulative " + metricNames[h.metric] + " " + num(v) + " exceeds " + h.threshold + " " + num(h.limit),
	}, nil
}

// exceeds reports whether the count n is strictly greater than limit,
// exactly: a count above 2^53 is not rounded to a float64 first (2^53+1
// tokens exceed a limit of 2^53).
func exceeds(n int64, limit float64) bool {
	if !(limit < 1<<63) { // beyond every int64, or NaN: NaN fails closed
		return limit != limit
	}
	return n > int64(math.Floor(limit))
}

func (*budgetHook) computeOnly()    {}
func (*rateLimitHook) computeOnly() {}
func (*timeoutHook) computeOnly()   {}
func (*contentHook) computeOnly()   {}
func (*toolListHook) computeOnly()  {}

// rateLimitHook blocks a step when more steps than the limit, this one
// included, lie in the trailing window.
type rateLimitHook struct {
	threshold string
	limit     float64
	window    time.Duration
}

// defaultWindowSeconds is the window of a rate_limit without
// window_seconds; minWindowSeconds is the shortest window a rate can be
// counted over (a shorter one would count no earlier step, and never
// block); maxWindowSeconds keeps a window within time.Duration.
const (
	defaultWindowSeconds = 60
	minWindowSeconds     = 0.001
	maxWindowSeconds     = float64(math.MaxInt64 / int64(time.Second))
)

// windowOf checks a window_seconds parameter and returns the window.
func windowOf(ws float64) (time.Duration, error) {
	if !(ws >= minWindowSeconds) || ws > maxWindowSeconds {
		return 0, &snapshot.FieldError{Field: "params.window_seconds", Err: fmt.Errorf("%s: want seconds from %s to %s", num(ws), num(minWindowSeconds), num(maxWindowSeconds))}
	}
	return time.Duration(ws * float64(time.Second)), nil
}

func compileRateLimit(p snapshot.Policy, th snapshot.Thresholds) (Hook, error) {
	var params struct {
		Threshold     *string  `json:"threshold"`
		WindowSeconds *float64 `json:"window_seconds"`
	}
	if err := decodeParams(p, &params); err != nil {
		return nil, err
	}
	name, limit, err := threshold(params.Threshold, th)
	if err != nil {
		return nil, err
	}
	ws := float64(defaultWindowSeconds)
	if params.WindowSeconds != nil {
		ws = *params.WindowSeconds
	}
	window, err := windowOf(ws)
	if err != nil {
		return nil, err
	}
	return &rateLimitHook{threshold: name, limit: limit, window: window}, nil
}

func (h *rateLimitHook) Evaluate(_ context.Context, s *Step) (Decision, error) {
	c := s.StepsInWindow(h.window)
	if !exceeds(int64(c), h.limit) {
		return Allowed(), nil
	}
	n := float64(c)
	return Decision{
		Action: Block, Reason: ReasonRateLimited,
		Threshold: h.threshold, Limit: h.limit, Observed: n,
		Message: num(n) + " steps in the last " + num(h.window.Seconds()) + "s exceed " + h.threshold + " " + num(h.limit),
	}, nil
}

// timeoutHook blocks a step taken more than the limit, in seconds, after
// the run's start.
type timeoutHook struct {
	threshold string
	limit     float64
}

func compileTimeout(p snapshot.Policy, th snapshot.Thresholds) (Hook, error) {
	var params struct {
		Threshold *string `json:"threshold"`
	}
	if err := decodeParams(p, &params); err != nil {
		return nil, err
	}
	name, limit, err := threshold(params.Threshold, th)
	if err != nil {
		return nil, err
	}
	return &timeoutHook{threshold: name, limit: limit}, nil
}

func (h *timeoutHook) Evaluate(_ context.Context, s *Step) (Decision, error) {
	v := s.Elapsed().Seconds()
	if v <= h.limit {
		return Allowed(), nil
	}
	return Decision{
		Action: Block, Reason: ReasonTimeout,
		Threshold: h.threshold, Limit: h.limit, Observed: v,
		Message: "run elapsed " + num(v) + "s exceeds " + h.threshold + " " + num(h.limit) + "s",
	}, nil
}

// stepField is a text field of a step that a content policy scans.
type stepField uint8

const (
	fieldOutput stepField = iota
	fieldInput
	fieldTool
	fieldModel
)

var stepFieldNames = [...]string{fieldOutput: "output", fieldInput: "input", fieldTool: "tool", fieldModel: "model"}

func (f stepField) text(s *Step) string {
	switch f {
	case fieldOutput:
		return s.Output
	case fieldInput:
		return s.Input
	case fieldTool:
		return s.Tool
	case fieldModel:
		return s.Model
	}
	return ""
}

// contentHook blocks a step whose fields match any of its patterns,
// compiled once with the snapshot.
type contentHook struct {
	fields   []stepField
	patterns []*regexp.Regexp
	// matchers are the patterns for streams (NewStreamState), nil if one
	// of them cannot be one (too large).
	matchers []*streammatch.Matcher
	reason   RunTerminationReason
}

func compileContent(p snapshot.Policy) (Hook, error) {
	var params struct {
		Fields   []string `json:"fields"`
		Patterns []string `json:"patterns"`
		Reason   *string  `json:"reason"`
	}
	if err := decodeParams(p, &params); err != nil {
		return nil, err
	}
	h := &contentHook{}
	if params.Fields == nil {
		h.fields = []stepField{fieldOutput}
	} else if len(params.Fields) == 0 {
		return nil, &snapshot.FieldError{Field: "params.fields", Err: errors.New("empty (want a subset of output, input, tool, model, or no fields for [\"output\"])")}
	}
	for i, name := range params.Fields {
		f := slices.Index(stepFieldNames[:], name)
		if f < 0 {
			return nil, &snapshot.FieldError{Field: fmt.Sprintf("params.fields[%d]", i), Err: fmt.Errorf("unknown field %q (want output, input, tool or model)", name)}
		}
		if slices.Contains(h.fields, stepField(f)) {
			return nil, &snapshot.FieldError{Field: fmt.Sprintf("params.fields[%d]", i), Err: fmt.Errorf("duplicate field %q", name)}
		}
		h.fields = append(h.fields, stepField(f))
	}
	if len(params.Patterns) == 0 {
		return nil, &snapshot.FieldError{Field: "params.patterns", Err: errors.New("missing (want at least one regular expression)")}
	}
	for i, src := range params.Patterns {
		field := fmt.Sprintf("params.patterns[%d]", i)
		if src == "" {
			return nil, &snapshot.FieldError{Field: field, Err: errors.New("empty pattern (it would match every step)")}
		}
		re, err := regexp.Compile(src)
		if err != nil {
			return nil, &snapshot.FieldError{Field: field, Err: err}
		}
		h.patterns = append(h.patterns, re)
	}
	h.matchers = streamMatchers(params.Patterns)
	var err error
	if h.reason, err = blockReason(params.Reason); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *contentHook) Evaluate(_ context.Context, s *Step) (Decision, error) {
	// Each pattern scans each field once per step. Go's regexp gains
	// nothing from one alternation of all patterns (measured slower: it
	// loses the literal-prefix fast path of each pattern).
	for _, f := range h.fields {
		text := f.text(s)
		if text == "" {
			continue
		}
		for i, re := range h.patterns {
			if !re.MatchString(text) {
				continue
			}
			return h.block(f, i), nil
		}
	}
	return Allowed(), nil
}

// block is the decision on a step whose field f matches pattern i. The
// message names the field and the pattern, never the matched text: it
// may be the very secret the policy keeps out of records.
func (h *contentHook) block(f stepField, i int) Decision {
	return Decision{
		Action: Block, Reason: h.reason,
		Message: fmt.Sprintf("%s matches content pattern #%d", stepFieldNames[f], i),
	}
}

// toolListHook checks the tool of tool_call steps against a list: an
// allowlist blocks tools not in it, a denylist blocks tools in it.
//
// The two compare differently, each in the direction that refuses more:
// an allowlist admits exactly the names it lists ("Search" is not
// "search"); a denylist refuses every name whose NormalizeName is that of
// a listed name (" Shell", "ｓｈｅｌｌ" are "shell").
type toolListHook struct {
	allow bool // true: allowlist, false: denylist
	tools map[string]struct{}
}

func compileToolList(p snapshot.Policy) (Hook, error) {
	allow := p.Kind == kindToolAllowlist
	var (
		name = "allow"
		list []string
	)
	if allow {
		var params struct {
			Allow []string `json:"allow"`
		}
		if err := decodeParams(p, &params); err != nil {
			return nil, err
		}
		list = params.Allow
	} else {
		var params struct {
			Deny []string `json:"deny"`
		}
		if err := decodeParams(p, &params); err != nil {
			return nil, err
		}
		name, list = "deny", params.Deny
	}
	if list == nil {
		return nil, &snapshot.FieldError{Field: "params." + name, Err: errors.New("missing (want a list of tool names)")}
	}
	h := &toolListHook{allow: allow, tools: make(map[string]struct{}, len(list))}
	for i, tool := range list {
		field := fmt.Sprintf("params.%s[%d]", name, i)
		if tool == "" {
			return nil, &snapshot.FieldError{Field: field, Err: errors.New("empty tool name")}
		}
		if err := CheckName(tool); err != nil {
			return nil, &snapshot.FieldError{Field: field, Err: err}
		}
		if !allow {
			tool = NormalizeName(tool)
		}
		h.tools[tool] = struct{}{}
	}
	return h, nil
}

func (h *toolListHook) Evaluate(_ context.Context, s *Step) (Decision, error) {
	if s.Type != StepToolCall {
		return Allowed(), nil
	}
	tool := s.Tool
	if !h.allow {
		tool = NormalizeName(tool)
	}
	if _, listed := h.tools[tool]; listed == h.allow {
		return Allowed(), nil
	}
	msg := fmt.Sprintf("tool %q is not in the allowlist", s.Tool)
	if !h.allow {
		msg = fmt.Sprintf("tool %q is in the denylist", s.Tool)
	}
	return Decision{Action: Block, Reason: ReasonPolicyBlock, Message: msg}, nil
}

// threshold resolves a params.threshold reference.
func threshold(name *string, th snapshot.Thresholds) (string, float64, error) {
	if name == nil || *name == "" {
		return "", 0, &snapshot.FieldError{Field: "params.threshold", Err: errors.New("missing (want the name of a threshold)")}
	}
	limit, ok := th[*name]
	if !ok {
		return "", 0, &snapshot.FieldError{Field: "params.threshold", Err: fmt.Errorf("names threshold %q, which is not defined in thresholds", *name)}
	}
	if !(limit >= 0) || math.IsInf(limit, 0) {
		return "", 0, &snapshot.FieldError{Field: "params.threshold", Err: fmt.Errorf("threshold %q has limit %v; want a finite, non-negative number", *name, limit)}
	}
	return *name, limit, nil
}

// blockReason resolves an optional params.reason; absent or empty means
// policy_block.
func blockReason(s *string) (RunTerminationReason, error) {
	if s == nil || *s == "" {
		return ReasonPolicyBlock, nil
	}
	r := RunTerminationReason(*s)
	if !r.Valid() || r == ReasonCompleted {
		return "", &snapshot.FieldError{Field: "params.reason", Err: fmt.Errorf("%q is not a reason a policy can stop a run with", *s)}
	}
	return r, nil
}

// decodeParams decodes a policy's params strictly into the struct v
// points to (snapshot.Policy.DecodeParams).
func decodeParams(p snapshot.Policy, v any) error { return p.DecodeParams(v) }

// num formats a value for a message, rounded to nine decimals so that
// float sums read as people wrote them (5.4, not 5.3999999999999995).
// Decisions keep the exact values.
func num(f float64) string {
	if math.Abs(f) < 1e12 {
		f = math.Round(f*1e9) / 1e9
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// Measure implements Measurer: the run's cumulative metric, this step
// included.
func (h *budgetHook) Measure(s *Step) Measurement {
	m := Measurement{Threshold: h.threshold, Limit: h.limit, Unit: metricNames[h.metric]}
	switch h.metric {
	case metricTokens:
		m.Observed = float64(s.TotalTokens)
	case metricSteps:
		m.Observed = float64(s.StepCount())
	default:
		m.Observed = s.TotalCostCents
	}
	return m
}

// Measure implements Measurer: the steps in the trailing window, this one
// included.
func (h *rateLimitHook) Measure(s *Step) Measurement {
	return Measurement{Threshold: h.threshold, Limit: h.limit, Observed: float64(s.StepsInWindow(h.window)),
		Unit: "steps", Window: Window{Rolling: h.window}}
}

// Measure implements Measurer: the seconds from the run's start to the
// step.
func (h *timeoutHook) Measure(s *Step) Measurement {
	return Measurement{Threshold: h.threshold, Limit: h.limit, Observed: s.Elapsed().Seconds(), Unit: "seconds"}
}
