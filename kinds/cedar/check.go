package cedar

import (
	"fmt"
	"slices"
	"strings"

	"github.com/cedar-policy/cedar-go"
	"github.com/cedar-policy/cedar-go/types"
	// The policy AST is inspected through cedar-go's experimental ast
	// package, which cedar.Policy.AST's type is defined on; the module
	// pins cedar-go's version, and the tests cover every check.
	xast "github.com/cedar-policy/cedar-go/x/exp/ast"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// Every entity type a request can name.
var entityTypes = []types.EntityType{TypeAction, TypeModel, TypeRun, TypeStep, TypeTool}

// stepTypes are the ids of Action entities.
var stepTypes = []prevention.StepType{prevention.StepLLMResponse, prevention.StepMessage, prevention.StepToolCall, prevention.StepToolResult}

// check refuses, when the policy is compiled, what would make a policy
// quietly never apply or fail on every step: a scope or an entity of a
// type no request has (User::"alice", Action::"tool_cal"), an attribute
// the principal or the context never has (context.tokenz, or context has
// tokenz, which is always false), an attribute of an entity that has none
// (resource.name), a threshold the snapshot
// lacks or that no Long holds, and an extension literal that does not
// parse (decimal("1.23456")). Metadata keys are not known in advance:
// guard them with has.
func check(cp *cedar.Policy, th snapshot.Thresholds) error {
	p := (*xast.Policy)(cp.AST())
	if err := checkScope("principal", p.Principal, []types.EntityType{TypeRun}); err != nil {
		return err
	}
	if err := checkScope("action", p.Action, []types.EntityType{TypeAction}); err != nil {
		return err
	}
	if err := checkScope("resource", p.Resource, []types.EntityType{TypeModel, TypeStep, TypeTool}); err != nil {
		return err
	}
	for _, c := range p.Conditions {
		var err error
		xast.Inspect(xast.NewNode(c.Body), func(n xast.IsNode) bool {
			if err == nil {
				err = checkNode(n, th)
			}
			return err == nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func checkScope(what string, scope xast.IsScopeNode, want []types.EntityType) error {
	var uids []types.EntityUID
	var typ types.EntityType
	switch s := scope.(type) {
	case xast.ScopeTypeEq:
		uids = []types.EntityUID{s.Entity}
	case xast.ScopeTypeIn:
		uids = []types.EntityUID{s.Entity}
	case xast.ScopeTypeInSet:
		uids = s.Entities
	case xast.ScopeTypeIs:
		typ = s.Type
	case xast.ScopeTypeIsIn:
		typ, uids = s.Type, []types.EntityUID{s.Entity}
	}
	if typ != "" && !slices.Contains(want, typ) {
		return fmt.Errorf("the %s is never a %s (it is %s)", what, typ, typeList(want))
	}
	for _, uid := range uids {
		if err := checkEntity(uid); err != nil {
			return err
		}
		if !slices.Contains(want, uid.Type) {
			return fmt.Errorf("the %s is never %s (it is %s)", what, uid, typeList(want))
		}
	}
	return nil
}

func typeList(ts []types.EntityType) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = "a " + string(t)
	}
	return strings.Join(s, " or ")
}

func checkEntity(uid types.EntityUID) error {
	if !slices.Contains(entityTypes, uid.Type) {
		return fmt.Errorf("%s: no entity of type %s exists here (types: %s)", uid, uid.Type, typeNames())
	}
	if uid.Type == TypeAction && !slices.Contains(stepTypes, prevention.StepType(uid.ID)) {
		return fmt.Errorf("%s: no such action (actions are the step types: %s)", uid, actionNames())
	}
	return nil
}

func typeNames() string {
	s := make([]string, len(entityTypes))
	for i, t := range entityTypes {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

func actionNames() string {
	s := make([]string, len(stepTypes))
	for i, t := range stepTypes {
		s[i] = string(TypeAction) + `::"` + string(t) + `"`
	}
	return strings.Join(s, ", ")
}

func checkNode(n xast.IsNode, th snapshot.Thresholds) error {
	switch n := n.(type) {
	case xast.NodeTypeAccess:
		return checkAttr(n.Arg, string(n.Value), false, th)
	case xast.NodeTypeHas:
		return checkAttr(n.Arg, string(n.Value), true, th)
	case xast.NodeTypeGetTag:
		if v, ok := n.Left.(xast.NodeTypeVariable); ok {
			return fmt.Errorf("%s.getTag: no entity here has tags", v.Name)
		}
	case xast.NodeValue:
		return checkValue(n.Value)
	case xast.NodeTypeIs:
		return checkType(n.EntityType)
	case xast.NodeTypeIsIn:
		return checkType(n.EntityType)
	case xast.NodeTypeExtensionCall:
		return checkLiteral(n)
	}
	return nil
}

func checkType(t types.EntityType) error {
	if !slices.Contains(entityTypes, t) {
		return fmt.Errorf("is %s: no entity of type %s exists here (types: %s)", t, t, typeNames())
	}
	return nil
}

func checkValue(v types.Value) error {
	switch v := v.(type) {
	case types.EntityUID:
		return checkEntity(v)
	case types.Set:
		for e := range v.All() {
			if err := checkValue(e); err != nil {
				return err
			}
		}
	case types.Record:
		for _, e := range v.All() {
			if err := checkValue(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkAttr checks arg.attr (has false) or arg has attr (has true): an
// attribute that the principal or the context never has, or a has on an
// entity with no attributes, is always an error or always false.
func checkAttr(arg xast.IsNode, attr string, has bool, th snapshot.Thresholds) error {
	use := "." + attr
	if has {
		use = " has " + attr
	}
	switch arg := arg.(type) {
	case xast.NodeTypeVariable:
		switch arg.Name {
		case "context":
			if !slices.Contains(contextAttrs, attr) {
				return fmt.Errorf("context%s: context has no attribute %q (attributes: %s)", use, attr, strings.Join(contextAttrs, ", "))
			}
		case "principal":
			if !slices.Contains(runAttrs, attr) {
				return fmt.Errorf("principal%s: the principal (the Run) has no attribute %q (attributes: %s)", use, attr, strings.Join(runAttrs, ", "))
			}
		default:
			return fmt.Errorf("%s%s: %s has no attributes (the step's fields are in context)", arg.Name, use, arg.Name)
		}
	case xast.NodeTypeAccess:
		v, ok := arg.Arg.(xast.NodeTypeVariable)
		if !ok || v.Name != "context" || arg.Value != attrThresholds {
			return nil
		}
		limit, ok := th[attr]
		if !ok {
			return fmt.Errorf("context.thresholds%s: the snapshot has no threshold %q (thresholds: %s)", use, attr, strings.Join(sortedNames(th), ", "))
		}
		if _, ok := wholeLong(limit); !ok {
			return fmt.Errorf("context.thresholds%s: the threshold is %v, which is not a whole number, and Cedar compares Longs: write the limit in the policy, in the unit it compares (costs in millionths of a cent)", use, limit)
		}
	}
	return nil
}

// extension functions whose argument is text to parse.
var extensionParsers = map[types.Path]func(string) error{
	"decimal":  func(s string) error { _, err := types.ParseDecimal(s); return err },
	"ip":       func(s string) error { _, err := types.ParseIPAddr(s); return err },
	"datetime": func(s string) error { _, err := types.ParseDatetime(s); return err },
	"duration": func(s string) error { _, err := types.ParseDuration(s); return err },
}

func checkLiteral(n xast.NodeTypeExtensionCall) error {
	parse, ok := extensionParsers[n.Name]
	if !ok || len(n.Args) != 1 {
		return nil
	}
	v, ok := n.Args[0].(xast.NodeValue)
	if !ok {
		return nil
	}
	s, ok := v.Value.(types.String)
	if !ok {
		return nil
	}
	if err := parse(string(s)); err != nil {
		return fmt.Errorf("%s(%q): %w", n.Name, string(s), err)
	}
	return nil
}
