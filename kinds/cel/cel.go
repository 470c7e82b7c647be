package cel

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/operators"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// KindName is the kind policies name to be CEL expressions.
const KindName = "expression"

// Kind returns the "expression" policy kind. Add it to the kinds a runner
// uses (governance.WithKinds(prevention.NewKinds(cel.Kind()))) and to the
// kinds a policy file is loaded with.
func Kind() prevention.Kind { return prevention.KindFunc(KindName, compileExpression) }

// Bounds on one evaluation of an expression policy. celCostLimit is in
// cel-go's abstract cost units (roughly one per operation, more for string
// and list work proportional to their size); an expression that exceeds it
// fails, and the step fails closed. celInterruptCheckFrequency is how many
// comprehension iterations run between checks of the step's context.
const (
	celCostLimit               = 1_000_000
	celInterruptCheckFrequency = 100
)

// The keys of the step and run maps an expression sees, in the order
// documented in doc.go.
var (
	celStepKeys = []string{"index", "type", "tool", "model", "input", "output", "tokens", "cost_cents", "metadata"}
	celRunKeys  = []string{"run_id", "tenant_id", "snapshot_id", "total_tokens", "total_cost_cents", "steps", "elapsed_seconds"}
)

// newCELEnv returns the environment expression policies are compiled in.
func newCELEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("step", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("run", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("thresholds", cel.MapType(cel.StringType, cel.DoubleType)),
		cel.CrossTypeNumericComparisons(true),
	)
}

// expressionHook blocks a step for which its CEL expression is true.
type expressionHook struct {
	prg        cel.Program
	thresholds ref.Val
	message    string
	reason     prevention.RunTerminationReason
}

func compileExpression(p snapshot.Policy, th snapshot.Thresholds) (prevention.Hook, error) {
	var params struct {
		Expr    *string `json:"expr"`
		Message *string `json:"message"`
		Reason  *string `json:"reason"`
	}
	if err := p.DecodeParams(&params); err != nil {
		return nil, err
	}
	if params.Expr == nil || strings.TrimSpace(*params.Expr) == "" {
		return nil, &snapshot.FieldError{Field: "params.expr", Err: errors.New("missing (want a CEL expression that is true on a violation)")}
	}
	env, err := newCELEnv()
	if err != nil {
		return nil, fmt.Errorf("prevention: building the CEL environment: %w", err)
	}
	checked, iss := env.Compile(*params.Expr)
	if err := iss.Err(); err != nil {
		return nil, &snapshot.FieldError{Field: "params.expr", Err: err}
	}
	if t := checked.OutputType(); !t.IsExactType(cel.BoolType) {
		return nil, &snapshot.FieldError{Field: "params.expr", Err: fmt.Errorf("has type %s, want bool (true means a violation)", t)}
	}
	if err := checkCELKeys(checked); err != nil {
		return nil, &snapshot.FieldError{Field: "params.expr", Err: err}
	}
	prg, err := env.Program(checked,
		cel.CostLimit(celCostLimit),
		cel.InterruptCheckFrequency(celInterruptCheckFrequency),
		cel.EvalOptions(cel.OptOptimize),
	)
	if err != nil {
		return nil, &snapshot.FieldError{Field: "params.expr", Err: err}
	}
	h := &expressionHook{
		prg:        prg,
		thresholds: env.CELTypeAdapter().NativeToValue(map[string]float64(th)),
		message:    "expression is true: " + *params.Expr,
	}
	if params.Message != nil && *params.Message != "" {
		h.message = *params.Message
	}
	if h.reason, err = stopReason(params.Reason); err != nil {
		return nil, err
	}
	return h, nil
}

// checkCELKeys rejects a constant key of step or run (step.tokenz,
// run['stepz']) that those maps never hold: the type checker sees them as
// maps of dyn and cannot, and such an expression would fail at every step.
func checkCELKeys(a *cel.Ast) error {
	var err error
	ast.PreOrderVisit(a.NativeRep().Expr(), ast.NewExprVisitor(func(e ast.Expr) {
		if err != nil {
			return
		}
		var operand ast.Expr
		var key string
		switch e.Kind() {
		case ast.SelectKind:
			operand, key = e.AsSelect().Operand(), e.AsSelect().FieldName()
		case ast.CallKind:
			c := e.AsCall()
			if c.FunctionName() != operators.Index || len(c.Args()) != 2 || c.Args()[1].Kind() != ast.LiteralKind {
				return
			}
			s, ok := c.Args()[1].AsLiteral().(types.String)
			if !ok {
				return
			}
			operand, key = c.Args()[0], string(s)
		default:
			return
		}
		if operand.Kind() != ast.IdentKind {
			return
		}
		var keys []string
		switch operand.AsIdent() {
		case "step":
			keys = celStepKeys
		case "run":
			keys = celRunKeys
		default:
			return
		}
		if !slices.Contains(keys, key) {
			loc := a.NativeRep().SourceInfo().GetStartLocation(e.ID())
			err = fmt.Errorf("%d:%d: %s has no key %q (keys: %s)", loc.Line(), loc.Column()+1, operand.AsIdent(), key, strings.Join(keys, ", "))
		}
	}))
	return err
}

func (h *expressionHook) Evaluate(ctx context.Context, s *prevention.Step) (prevention.Decision, error) {
	// One activation per step for every expression policy: the step and
	// run maps are built once, whatever the number of policies. The
	// thresholds are the snapshot's, the same for all of them.
	act := s.Memo(activationKey{}, func() any { return &celActivation{step: s, thresholds: h.thresholds} }).(*celActivation)
	out, _, err := h.prg.ContextEval(ctx, act)
	if err != nil {
		return prevention.Decision{}, fmt.Errorf("evaluating expression: %w", err)
	}
	violated, ok := out.(types.Bool)
	if !ok {
		return prevention.Decision{}, fmt.Errorf("expression gave %s, want bool", out.Type())
	}
	if !violated {
		return prevention.Allowed(), nil
	}
	return prevention.Decision{Action: prevention.Block, Reason: h.reason, Message: h.message}, nil
}

// activationKey keys a step's shared activation (prevention.Step.Memo).
type activationKey struct{}

// celActivation resolves the variables of an expression from the step,
// building the step and run maps only if the expression refers to them.
type celActivation struct {
	step       *prevention.Step
	thresholds ref.Val
	stepVars   map[string]any
	runVars    map[string]any
}

// ResolveName implements cel.Activation.
func (a *celActivation) ResolveName(name string) (any, bool) {
	s := a.step
	switch name {
	case "step":
		if a.stepVars == nil {
			md := s.Metadata
			if md == nil {
				md = map[string]string{}
			}
			a.stepVars = map[string]any{
				"index": s.Index, "type": string(s.Type), "tool": s.Tool, "model": s.Model,
				"input": s.Input, "output": s.Output, "tokens": s.Tokens, "cost_cents": s.CostCents,
				"metadata": md,
			}
		}
		return a.stepVars, true
	case "run":
		if a.runVars == nil {
			a.runVars = map[string]any{
				"run_id": s.RunID, "tenant_id": s.TenantID, "snapshot_id": s.SnapshotID,
				"total_tokens": s.TotalTokens, "total_cost_cents": s.TotalCostCents,
				"steps": s.StepCount(), "elapsed_seconds": s.Elapsed().Seconds(),
			}
		}
		return a.runVars, true
	case "thresholds":
		return a.thresholds, true
	}
	return nil, false
}

// Parent implements cel.Activation; there is none.
func (a *celActivation) Parent() cel.Activation { return nil }

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
