package rego

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// KindName is the kind policies name to be Rego modules.
const KindName = "rego"

// Kind returns the "rego" policy kind. Add it to the kinds a runner uses
// (governance.WithKinds(prevention.NewKinds(rego.Kind()))) and to the
// kinds a policy file is loaded with.
func Kind() prevention.Kind { return prevention.KindFunc(KindName, compileRego) }

// DefaultRule is the rule the default query names in the module's
// package: data.<package>.deny.
const DefaultRule = "deny"

// removedBuiltins are the built-in functions a module may not call: they
// reach the network or read the process's environment, and a policy that
// runs on every step of every run must do neither. A module that calls one
// does not compile.
var removedBuiltins = []string{"http.send", "net.lookup_ip_addr", "opa.runtime"}

// capabilities is OPA's capability set for this version without
// removedBuiltins, and with no host a schema may be fetched from.
var capabilities = func() *ast.Capabilities {
	c := ast.CapabilitiesForThisVersion()
	c.Builtins = slices.DeleteFunc(c.Builtins, func(b *ast.Builtin) bool { return slices.Contains(removedBuiltins, b.Name) })
	c.AllowNet = []string{}
	return c
}()

// regoHook blocks a step for which its query gives a non-empty set of
// messages.
type regoHook struct {
	query      string
	pq         rego.PreparedEvalQuery
	thresholds *ast.Term
	reason     prevention.RunTerminationReason
}

func compileRego(p snapshot.Policy, th snapshot.Thresholds) (prevention.Hook, error) {
	var params struct {
		Module *string `json:"module"`
		Query  *string `json:"query"`
		Reason *string `json:"reason"`
	}
	if err := p.DecodeParams(&params); err != nil {
		return nil, err
	}
	if params.Module == nil || strings.TrimSpace(*params.Module) == "" {
		return nil, &snapshot.FieldError{Field: "params.module", Err: errors.New("missing (want a Rego module whose deny rule holds a message for each violation)")}
	}
	reason, err := stopReason(params.Reason)
	if err != nil {
		return nil, err
	}
	thresholds, err := thresholdsTerm(th)
	if err != nil {
		return nil, err
	}

	// Parse and compile the module here, rather than in PrepareForEval,
	// so that the query can be checked against its rules and every error
	// names the param it is in.
	mod, err := ast.ParseModuleWithOpts("", *params.Module, ast.ParserOptions{RegoVersion: ast.RegoV1, Capabilities: capabilities})
	if err != nil {
		return nil, &snapshot.FieldError{Field: "params.module", Err: regoErrors(err)}
	}
	schemas := ast.NewSchemaSet()
	schemas.Put(ast.SchemaRootRef, inputSchema(th))
	compiler := ast.NewCompiler().
		WithCapabilities(capabilities).
		WithSchemas(schemas)
	compiler.Compile(map[string]*ast.Module{"module": mod})
	if compiler.Failed() {
		return nil, &snapshot.FieldError{Field: "params.module", Err: regoErrors(compiler.Errors)}
	}
	if err := checkDataRefs(compiler); err != nil {
		return nil, &snapshot.FieldError{Field: "params.module", Err: err}
	}

	query, field := mod.Package.Path.String()+"."+DefaultRule, "params.module"
	if params.Query != nil {
		query, field = strings.TrimSpace(*params.Query), "params.query"
	}
	if err := checkQuery(compiler, query); err != nil {
		if field == "params.module" && errors.Is(err, errNoRule) {
			err = fmt.Errorf("has no rule %s (the default query %s names none; set params.query to name another rule)", DefaultRule, query)
		}
		return nil, &snapshot.FieldError{Field: field, Err: err}
	}

	pq, err := rego.New(
		rego.Compiler(compiler),
		rego.Query(query),
		rego.Capabilities(capabilities),
		// A built-in function that fails (to_number("x"), a bad regular
		// expression) is an evaluation error, not an undefined value that
		// would quietly make a deny rule's condition false.
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(context.Background())
	if err != nil {
		return nil, &snapshot.FieldError{Field: field, Err: regoErrors(err)}
	}
	return &regoHook{query: query, pq: pq, thresholds: thresholds, reason: reason}, nil
}

// checkQuery accepts a query that is a reference to rules of the module
// (data.<package>.<rule>), and refuses one that names no rule or names
// only rules whose value is a constant that is not a collection (deny if
// {...}: true), which could never be a set of messages.
func checkQuery(c *ast.Compiler, query string) error {
	ref, err := ast.ParseRef(query)
	if err != nil {
		return fmt.Errorf("%q is not a reference to a rule (want data.<package>.<rule>): %w", query, regoErrors(err))
	}
	if !ref.HasPrefix(ast.DefaultRootRef) || !ref.IsGround() {
		return fmt.Errorf("%q is not a reference to a rule (want data.<package>.<rule>)", query)
	}
	rules := c.GetRulesExact(ref)
	if len(rules) == 0 {
		return fmt.Errorf("%s %w", query, errNoRule)
	}
	for _, r := range rules {
		if r.Head.RuleKind() == ast.MultiValue || r.Head.Value == nil {
			return nil
		}
		switch r.Head.Value.Value.(type) {
		case ast.Boolean, ast.Number, ast.String, ast.Null:
		default:
			return nil
		}
	}
	name := ref[len(ref)-1].String()
	if s, ok := ref[len(ref)-1].Value.(ast.String); ok {
		name = string(s)
	}
	return fmt.Errorf("%s is a rule whose value is a %s, not a set of messages (write: %s contains msg if { ... })",
		query, ast.ValueName(rules[0].Head.Value.Value), name)
}

var errNoRule = errors.New("names no rule of the module")

// checkDataRefs refuses a reference into the data document that no rule
// of the module defines (data.other.allowed, an import of another
// package, a misspelt rule name): the data document holds nothing but
// the module's rules, so such a reference is always undefined, and a
// deny rule that depends on it would quietly never fire.
func checkDataRefs(c *ast.Compiler) error {
	var err error
	for _, m := range c.Modules {
		ast.WalkRefs(m, func(ref ast.Ref) bool {
			if err != nil || !ref.HasPrefix(ast.DefaultRootRef) {
				return err != nil
			}
			prefix := ref.GroundPrefix()
			if len(c.GetRulesForVirtualDocument(prefix)) > 0 || len(c.GetRulesWithPrefix(prefix)) > 0 {
				return false
			}
			where := ""
			if loc := ref[0].Location; loc != nil {
				where = fmt.Sprintf("line %d, column %d: ", loc.Row, loc.Col)
			}
			err = fmt.Errorf("%s%s: no rule of the module defines it, and the data document holds only the module's rules", where, prefix)
			return true
		})
	}
	return err
}

// regoErrors renders OPA's errors one a line, with their line and column
// in the module, without the "N errors occurred" preamble.
func regoErrors(err error) error {
	var errs ast.Errors
	if !errors.As(err, &errs) || len(errs) == 0 {
		return err
	}
	lines := make([]string, 0, len(errs))
	for _, e := range errs {
		var b strings.Builder
		if e.Location != nil {
			fmt.Fprintf(&b, "line %d, column %d: ", e.Location.Row, e.Location.Col)
		}
		b.WriteString(e.Code)
		b.WriteString(": ")
		b.WriteString(e.Message)
		if e.Details != nil {
			for _, l := range e.Details.Lines() {
				b.WriteString("\n\t")
				b.WriteString(l)
			}
		}
		lines = append(lines, b.String())
	}
	return errors.New(strings.Join(lines, "\n"))
}

// The keys of input.step and input.run, in the order documented in
// doc.go.
var (
	stepKeys = []string{"index", "type", "tool", "model", "input", "output", "tokens", "cost_cents", "metadata"}
	runKeys  = []string{"run_id", "tenant_id", "snapshot_id", "total_tokens", "total_cost_cents", "steps", "elapsed_seconds"}
)

// inputSchema is the JSON schema of the input document, with which the
// compiler type-checks the module: a reference to a key the input never
// has (input.step.tokenz, input.thresholds.max_tokenz) is a compile error
// rather than an undefined value that would make a deny rule never fire.
func inputSchema(th snapshot.Thresholds) map[string]any {
	str := map[string]any{"type": "string"}
	integer := map[string]any{"type": "integer"}
	number := map[string]any{"type": "number"}
	object := func(props map[string]any) map[string]any {
		required := make([]string, 0, len(props))
		for k := range props {
			required = append(required, k)
		}
		slices.Sort(required)
		return map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
	}
	thProps := make(map[string]any, len(th))
	for name := range th {
		thProps[name] = number
	}
	return object(map[string]any{
		"step": object(map[string]any{
			"index": integer, "type": str, "tool": str, "model": str, "input": str, "output": str,
			"tokens": integer, "cost_cents": number,
			"metadata": map[string]any{"type": "object", "additionalProperties": str},
		}),
		"run": object(map[string]any{
			"run_id": str, "tenant_id": str, "snapshot_id": str,
			"total_tokens": integer, "total_cost_cents": number, "steps": integer, "elapsed_seconds": number,
		}),
		"thresholds": object(thProps),
	})
}

// Interned keys of the input document.
var (
	keyStep, keyRun, keyThresholds = ast.StringTerm("step"), ast.StringTerm("run"), ast.StringTerm("thresholds")
	stepKeyTerms                   = stringTerms(stepKeys)
	runKeyTerms                    = stringTerms(runKeys)
)

func stringTerms(ss []string) []*ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ts
}

func thresholdsTerm(th snapshot.Thresholds) (*ast.Term, error) {
	names := make([]string, 0, len(th))
	for name := range th {
		names = append(names, name)
	}
	slices.Sort(names)
	obj := ast.NewObjectWithCapacity(len(names))
	for _, name := range names {
		v, err := numberTerm(th[name])
		if err != nil {
			return nil, fmt.Errorf("threshold %q: %w", name, err)
		}
		obj.Insert(ast.StringTerm(name), v)
	}
	return ast.NewTerm(obj), nil
}

func intTerm(i int64) *ast.Term {
	if i >= -1 && i <= 512 {
		return ast.IntNumberTerm(int(i))
	}
	return ast.NumberTerm(json.Number(strconv.FormatInt(i, 10)))
}

func numberTerm(f float64) (*ast.Term, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, fmt.Errorf("%v is not a number the input can hold", f)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1<<53 {
		return intTerm(int64(f)), nil
	}
	return ast.FloatNumberTerm(f), nil
}

func stringTerm(s string) *ast.Term {
	if s == "" {
		return emptyString
	}
	return ast.StringTerm(s)
}

var emptyString = ast.StringTerm("")

// input builds the input document of a step (see doc.go).
func (h *regoHook) input(s *prevention.Step) (ast.Value, error) {
	cost, err := numberTerm(s.CostCents)
	if err != nil {
		return nil, fmt.Errorf("step cost_cents: %w", err)
	}
	totalCost, err := numberTerm(s.TotalCostCents)
	if err != nil {
		return nil, fmt.Errorf("run total_cost_cents: %w", err)
	}
	md := ast.NewObjectWithCapacity(len(s.Metadata))
	for k, v := range s.Metadata {
		md.Insert(ast.StringTerm(k), stringTerm(v))
	}
	step := ast.NewObject(
		ast.Item(stepKeyTerms[0], intTerm(int64(s.Index))),
		ast.Item(stepKeyTerms[1], stringTerm(string(s.Type))),
		ast.Item(stepKeyTerms[2], stringTerm(s.Tool)),
		ast.Item(stepKeyTerms[3], stringTerm(s.Model)),
		ast.Item(stepKeyTerms[4], stringTerm(s.Input)),
		ast.Item(stepKeyTerms[5], stringTerm(s.Output)),
		ast.Item(stepKeyTerms[6], intTerm(s.Tokens)),
		ast.Item(stepKeyTerms[7], cost),
		ast.Item(stepKeyTerms[8], ast.NewTerm(md)),
	)
	run := ast.NewObject(
		ast.Item(runKeyTerms[0], stringTerm(s.RunID)),
		ast.Item(runKeyTerms[1], stringTerm(s.TenantID)),
		ast.Item(runKeyTerms[2], stringTerm(s.SnapshotID)),
		ast.Item(runKeyTerms[3], intTerm(s.TotalTokens)),
		ast.Item(runKeyTerms[4], totalCost),
		ast.Item(runKeyTerms[5], intTerm(int64(s.StepCount()))),
		ast.Item(runKeyTerms[6], ast.FloatNumberTerm(s.Elapsed().Seconds())),
	)
	return ast.NewObject(
		ast.Item(keyStep, ast.NewTerm(step)),
		ast.Item(keyRun, ast.NewTerm(run)),
		ast.Item(keyThresholds, h.thresholds),
	), nil
}

// Evaluate implements prevention.Hook.
func (h *regoHook) Evaluate(ctx context.Context, s *prevention.Step) (prevention.Decision, error) {
	if err := ctx.Err(); err != nil {
		return prevention.Decision{}, fmt.Errorf("evaluating %s: %w", h.query, err)
	}
	in, err := h.input(s)
	if err != nil {
		return prevention.Decision{}, err
	}
	rs, err := h.pq.Eval(ctx, rego.EvalParsedInput(in))
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return prevention.Decision{}, fmt.Errorf("evaluating %s: %w: %w", h.query, cerr, err)
		}
		return prevention.Decision{}, fmt.Errorf("evaluating %s: %w", h.query, err)
	}
	msgs, err := messages(rs)
	if err != nil {
		return prevention.Decision{}, fmt.Errorf("evaluating %s: %w", h.query, err)
	}
	if len(msgs) == 0 {
		return prevention.Allowed(), nil
	}
	msg := strings.Join(msgs, "; ")
	if strings.TrimSpace(msg) == "" {
		msg = h.query + " holds an empty message"
	}
	return prevention.Decision{Action: prevention.Block, Reason: h.reason, Message: msg}, nil
}

// messages returns the sorted messages of the query's value: none when it
// is undefined or empty; an error when it is not a set or array of
// strings.
func messages(rs rego.ResultSet) ([]string, error) {
	switch {
	case len(rs) == 0:
		return nil, nil
	case len(rs) > 1 || len(rs[0].Expressions) != 1:
		return nil, fmt.Errorf("the query gave %d results, want one", len(rs))
	}
	v := rs[0].Expressions[0].Value
	elems, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("the query gave %s, want a set of strings", describe(v))
	}
	msgs := make([]string, 0, len(elems))
	for _, e := range elems {
		s, ok := e.(string)
		if !ok {
			return nil, fmt.Errorf("the query's set holds %s, want strings", describe(e))
		}
		msgs = append(msgs, s)
	}
	slices.Sort(msgs)
	return msgs, nil
}

// describe names a JSON value's type for an error, without its content.
func describe(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number, float64, int, int64:
		return "a number"
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return fmt.Sprintf("a %T", v)
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
