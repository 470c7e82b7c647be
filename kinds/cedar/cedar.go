package cedar

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// KindName is the kind policies name to be Cedar policy sets.
const KindName = "cedar"

// Kind returns the "cedar" policy kind. Add it to the kinds a runner uses
// (governance.WithKinds(prevention.NewKinds(cedar.Kind()))) and to the
// kinds a policy file is loaded with.
func Kind() prevention.Kind { return prevention.KindFunc(KindName, compileCedar) }

// The entity types of a request (see doc.go).
const (
	TypeRun    types.EntityType = "Run"
	TypeAction types.EntityType = "Action"
	TypeTool   types.EntityType = "Tool"
	TypeModel  types.EntityType = "Model"
	TypeStep   types.EntityType = "Step"
)

// MicroCentsPerCent is the unit of the cost attributes: a cost in cents
// times MicroCentsPerCent, rounded to the nearest integer, as a Cedar
// Long (prevention.CostUnitsPerCent, the unit of tenant budgets).
const MicroCentsPerCent = prevention.CostUnitsPerCent

// The attributes of the principal and the context, in the order
// documented in doc.go.
var (
	runAttrs     = []string{"tenant_id", "snapshot_id", "total_tokens", "total_cost_micro_cents", "steps", "elapsed_seconds"}
	contextAttrs = []string{"index", "type", "tool", "model", "input", "output", "tokens", "cost_micro_cents", "metadata", "thresholds"}
)

// policy is one forbid policy of a compiled set.
type policy struct {
	id      cedar.PolicyID
	message string // its @message annotation, if any
	p       *cedar.Policy
}

// forbids is the set Authorize evaluates: the forbid policies, in the
// order of the text.
type forbids []policy

// All implements cedar.PolicyIterator.
func (f forbids) All() iter.Seq2[cedar.PolicyID, *cedar.Policy] {
	return func(yield func(cedar.PolicyID, *cedar.Policy) bool) {
		for _, p := range f {
			if !yield(p.id, p.p) {
				return
			}
		}
	}
}

// cedarHook blocks a step that a forbid policy of its set forbids.
type cedarHook struct {
	forbids    forbids
	byID       map[cedar.PolicyID]*policy
	thresholds types.Record
	reason     prevention.RunTerminationReason
}

func compileCedar(p snapshot.Policy, th snapshot.Thresholds) (prevention.Hook, error) {
	var params struct {
		Policies *string `json:"policies"`
		Reason   *string `json:"reason"`
	}
	if err := p.DecodeParams(&params); err != nil {
		return nil, err
	}
	if params.Policies == nil || strings.TrimSpace(*params.Policies) == "" {
		return nil, &snapshot.FieldError{Field: "params.policies", Err: errors.New("missing (want Cedar policy text with at least one forbid policy)")}
	}
	reason, err := stopReason(params.Reason)
	if err != nil {
		return nil, err
	}
	list, err := cedar.NewPolicyListFromBytes("", []byte(*params.Policies))
	if err != nil {
		return nil, &snapshot.FieldError{Field: "params.policies", Err: parseError(err)}
	}
	h := &cedarHook{byID: map[cedar.PolicyID]*policy{}, reason: reason}
	ids := map[cedar.PolicyID]int{}
	for i, cp := range list {
		pos := cp.Position()
		id := cedar.PolicyID("policy" + strconv.Itoa(i))
		ann := cp.Annotations()
		if v, ok := ann["id"]; ok {
			id = cedar.PolicyID(v)
		}
		if line, dup := ids[id]; dup {
			return nil, &snapshot.FieldError{Field: "params.policies", Err: fmt.Errorf("line %d, column %d: a second policy with id %q (the first is on line %d)", pos.Line, pos.Column, id, line)}
		}
		ids[id] = pos.Line
		if err := check(cp, th); err != nil {
			return nil, &snapshot.FieldError{Field: "params.policies", Err: fmt.Errorf("line %d, column %d (policy %s): %w", pos.Line, pos.Column, id, err)}
		}
		if cp.Effect() == cedar.Permit {
			// Only forbid decides (see doc.go): a permit is checked, never
			// evaluated, so it can neither allow nor fail a step.
			continue
		}
		h.forbids = append(h.forbids, policy{id: id, message: string(ann["message"]), p: cp})
	}
	if len(h.forbids) == 0 {
		return nil, &snapshot.FieldError{Field: "params.policies", Err: errors.New("has no forbid policy: in this kind only forbid policies decide, so the set would allow every step")}
	}
	for i := range h.forbids {
		h.byID[h.forbids[i].id] = &h.forbids[i]
	}
	h.thresholds = thresholdsRecord(th)
	return h, nil
}

// thresholdsRecord is context.thresholds: every whole-numbered threshold,
// as a Long. check has refused a policy that uses any other.
func thresholdsRecord(th snapshot.Thresholds) types.Record {
	m := make(types.RecordMap, len(th))
	for name, v := range th {
		if l, ok := wholeLong(v); ok {
			m[types.String(name)] = l
		}
	}
	return types.NewRecord(m)
}

// wholeLong returns f as a Long when it is a whole number a Long holds.
func wholeLong(f float64) (types.Long, bool) {
	if f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return types.Long(f), true
}

var parsePos = regexp.MustCompile(`^(?:parser error: )?parse error at [^:]*:(\d+):(\d+) "(?:[^"\\]|\\.)*": `)

// parseError rewrites cedar-go's parse error as "line L, column C: ...".
// The position is that of the token at which the parser stopped.
func parseError(err error) error {
	msg := err.Error()
	m := parsePos.FindStringSubmatchIndex(msg)
	if m == nil {
		return err
	}
	return fmt.Errorf("line %s, column %s: %s", msg[m[2]:m[3]], msg[m[4]:m[5]], msg[m[1]:])
}

// Evaluate implements prevention.Hook.
func (h *cedarHook) Evaluate(ctx context.Context, s *prevention.Step) (prevention.Decision, error) {
	// Evaluating a Cedar policy set takes microseconds and cannot be
	// interrupted: the context is checked before it starts.
	if err := ctx.Err(); err != nil {
		return prevention.Decision{}, fmt.Errorf("evaluating cedar policies: %w", err)
	}
	req, ents, err := h.request(s)
	if err != nil {
		return prevention.Decision{}, err
	}
	_, diag := cedar.Authorize(h.forbids, ents, req)
	if len(diag.Errors) > 0 {
		// cedar-go skips a policy whose condition errors; a forbid that
		// could not be evaluated might have held, so the check failed.
		msgs := make([]string, len(diag.Errors))
		for i, e := range diag.Errors {
			msgs[i] = fmt.Sprintf("policy %s (line %d): %s", e.PolicyID, e.Position.Line, e.Message)
		}
		return prevention.Decision{}, fmt.Errorf("evaluating cedar policies: %s", strings.Join(msgs, "; "))
	}
	if len(diag.Reasons) == 0 {
		return prevention.Allowed(), nil
	}
	parts := make([]string, 0, len(diag.Reasons))
	for _, r := range diag.Reasons {
		p := h.byID[r.PolicyID]
		if p == nil {
			return prevention.Decision{}, fmt.Errorf("evaluating cedar policies: policy %s decided but is not in the set", r.PolicyID)
		}
		part := string(p.id)
		if p.message != "" {
			part += ": " + p.message
		}
		parts = append(parts, part)
	}
	return prevention.Decision{Action: prevention.Block, Reason: h.reason, Message: "forbidden by " + strings.Join(parts, "; ")}, nil
}

// runEntity is the only entity of a request's store: the run, the
// principal.
type runEntity struct{ e types.Entity }

// Get implements types.EntityGetter.
func (r *runEntity) Get(uid types.EntityUID) (types.Entity, bool) {
	if uid == r.e.UID {
		return r.e, true
	}
	return types.Entity{}, false
}

// Interned attribute names.
var (
	attrTenantID, attrSnapshotID, attrTotalTokens, attrTotalCost, attrSteps, attrElapsed = types.String(runAttrs[0]), types.String(runAttrs[1]),
		types.String(runAttrs[2]), types.String(runAttrs[3]), types.String(runAttrs[4]), types.String(runAttrs[5])
	attrIndex, attrType, attrTool, attrModel, attrInput, attrOutput, attrTokens, attrCost, attrMetadata, attrThresholds = types.String(contextAttrs[0]),
		types.String(contextAttrs[1]), types.String(contextAttrs[2]), types.String(contextAttrs[3]), types.String(contextAttrs[4]),
		types.String(contextAttrs[5]), types.String(contextAttrs[6]), types.String(contextAttrs[7]), types.String(contextAttrs[8]),
		types.String(contextAttrs[9])
)

// microCents converts a cost in cents to a Long of millionths of a cent.
func microCents(what string, cents float64) (types.Long, error) {
	v := math.Round(cents * MicroCentsPerCent)
	if math.IsNaN(v) || v < math.MinInt64 || v >= math.MaxInt64 {
		return 0, fmt.Errorf("cedar: %s %v cents is not a cost a Cedar Long holds in millionths of a cent", what, cents)
	}
	return types.Long(v), nil
}

// resource returns the entity a step names (see doc.go).
func resource(s *prevention.Step) types.EntityUID {
	switch s.Type {
	case prevention.StepToolCall, prevention.StepToolResult:
		return types.NewEntityUID(TypeTool, types.String(s.Tool))
	case prevention.StepLLMResponse:
		return types.NewEntityUID(TypeModel, types.String(s.Model))
	}
	return types.NewEntityUID(TypeStep, types.String(strconv.Itoa(s.Index)))
}

// request builds the authorization request of a step and the entities it
// refers to.
func (h *cedarHook) request(s *prevention.Step) (types.Request, types.EntityGetter, error) {
	cost, err := microCents("step cost", s.CostCents)
	if err != nil {
		return types.Request{}, nil, err
	}
	totalCost, err := microCents("run total cost", s.TotalCostCents)
	if err != nil {
		return types.Request{}, nil, err
	}
	md := make(types.RecordMap, len(s.Metadata))
	for k, v := range s.Metadata {
		md[types.String(k)] = types.String(v)
	}
	run := &runEntity{types.Entity{
		UID: types.NewEntityUID(TypeRun, types.String(s.RunID)),
		Attributes: types.NewRecord(types.RecordMap{
			attrTenantID:    types.String(s.TenantID),
			attrSnapshotID:  types.String(s.SnapshotID),
			attrTotalTokens: types.Long(s.TotalTokens),
			attrTotalCost:   totalCost,
			attrSteps:       types.Long(s.StepCount()),
			attrElapsed:     types.Long(s.Elapsed() / 1e9),
		}),
	}}
	req := types.Request{
		Principal: run.e.UID,
		Action:    types.NewEntityUID(TypeAction, types.String(s.Type)),
		Resource:  resource(s),
		Context: types.NewRecord(types.RecordMap{
			attrIndex:      types.Long(s.Index),
			attrType:       types.String(s.Type),
			attrTool:       types.String(s.Tool),
			attrModel:      types.String(s.Model),
			attrInput:      types.String(s.Input),
			attrOutput:     types.String(s.Output),
			attrTokens:     types.Long(s.Tokens),
			attrCost:       cost,
			attrMetadata:   types.NewRecord(md),
			attrThresholds: h.thresholds,
		}),
	}
	return req, run, nil
}

// stopReason resolves an optional params.reason; absent or empty means
// policy_block.
func stopReason(s *string) (prevention.RunTerminationReason, error) {
	if s == nil || *s == "" {
		return prevention.ReasonPolicyBlock, nil
	}
	r, err := prevention.ParseReason(*s)
	if err != nil || r == prevention.ReasonCompleted {
		return "", &snapshot.FieldError{Field: "params.reason", Err: fmt.Errorf("%q is not a reason a policy can stop a run with", *s)}
	}
	return r, nil
}

// sortedNames returns the keys of m, sorted.
func sortedNames[V any](m map[string]V) []string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}
