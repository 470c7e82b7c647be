package prevention

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/stopline/stopline/snapshot"
)

// Kind is a kind of policy: it turns a policy's parameters into the Hook
// that evaluates it. The built-in kinds (Builtin) are Kinds; so are the
// kinds of packages a program imports to enable them, such as
// github.com/stopline/stopline/kinds/cel ("expression").
//
// Compile is called once per snapshot, when a runner first uses it or a
// policy file is loaded, never per step; it must not keep p's params
// slice. It reports a problem with a parameter as a *snapshot.FieldError
// naming it ("params.expr"), so that the error a user sees names the file,
// the policy and the field; Policy.DecodeParams decodes parameters
// strictly and reports them so. The Hook it returns is shared by every run
// of the snapshot and must be safe for concurrent use; it gets the step's
// context and must return when it is done.
type Kind interface {
	// Name is the kind as policy files write it ("budget", "rego").
	Name() string
	// Compile validates p's parameters against the snapshot's thresholds
	// and returns the policy's hook.
	Compile(p snapshot.Policy, th snapshot.Thresholds) (Hook, error)
}

// KindFunc makes a Kind of a name and a compile function.
func KindFunc(name string, compile func(p snapshot.Policy, th snapshot.Thresholds) (Hook, error)) Kind {
	return kindFunc{name: name, compile: compile}
}

type kindFunc struct {
	name    string
	compile func(p snapshot.Policy, th snapshot.Thresholds) (Hook, error)
}

func (k kindFunc) Name() string { return k.name }

func (k kindFunc) Compile(p snapshot.Policy, th snapshot.Thresholds) (Hook, error) {
	return k.compile(p, th)
}

// Kinds is a set of policy kinds: the built-in ones and those a program
// adds. A snapshot that names a kind outside the set is refused, when a
// policy file is loaded (snapshot.Parse, with the set as its Checker) and
// when a run starts. A Kinds is immutable and safe for concurrent use.
type Kinds struct {
	byName map[string]Kind
	names  []string
}

// Builtin returns the built-in kinds: budget, rate_limit, timeout,
// content, tool_allowlist, tool_denylist, tenant_budget,
// tenant_rate_limit and requires_approval (see the package documentation).
func Builtin() *Kinds { return builtin }

var builtin = mustKinds(nil, builtinKinds()...)

// NewKinds returns the built-in kinds and the given ones. Two kinds of
// the same name are an error.
func NewKinds(kinds ...Kind) (*Kinds, error) {
	return newKinds(builtin, kinds...)
}

// With returns a set holding k's kinds and the given ones.
func (k *Kinds) With(kinds ...Kind) (*Kinds, error) { return newKinds(k, kinds...) }

func newKinds(base *Kinds, kinds ...Kind) (*Kinds, error) {
	out := &Kinds{byName: map[string]Kind{}}
	if base != nil {
		for _, name := range base.names {
			out.byName[name] = base.byName[name]
		}
		out.names = slices.Clone(base.names)
	}
	for _, kind := range kinds {
		if kind == nil {
			return nil, errors.New("prevention: NewKinds: nil kind")
		}
		name := kind.Name()
		if name == "" {
			return nil, fmt.Errorf("prevention: NewKinds: a kind (%T) has an empty name", kind)
		}
		if _, dup := out.byName[name]; dup {
			return nil, fmt.Errorf("prevention: NewKinds: two kinds named %q", name)
		}
		out.byName[name] = kind
		out.names = append(out.names, name)
	}
	slices.Sort(out.names)
	return out, nil
}

func mustKinds(base *Kinds, kinds ...Kind) *Kinds {
	k, err := newKinds(base, kinds...)
	if err != nil {
		panic(err)
	}
	return k
}

// Names returns the names of the kinds in the set, sorted.
func (k *Kinds) Names() []string { return slices.Clone(k.names) }

// pluginHints says which import enables a kind that stopline ships
// outside the core.
var pluginHints = map[string]string{
	"expression": `import "github.com/stopline/stopline/kinds/cel" and add cel.Kind()`,
	"rego":       `import "github.com/stopline/stopline/kinds/rego" (its own module) and add rego.Kind()`,
	"cedar":      `import "github.com/stopline/stopline/kinds/cedar" (its own module) and add cedar.Kind()`,
}

// ErrUnknownKind is matched by the error for a policy whose kind is not
// in the set.
var ErrUnknownKind = errors.New("prevention: unknown policy kind")

// compile compiles one policy with its kind.
func (k *Kinds) compile(p snapshot.Policy, th snapshot.Thresholds) (Hook, error) {
	kind, ok := k.byName[p.Kind]
	if !ok {
		if hint, known := pluginHints[p.Kind]; known {
			return nil, &snapshot.FieldError{Field: "kind", Err: fmt.Errorf("%w: %q is not enabled in this program: %s to the kinds the runner uses (governance.WithKinds; prevention.NewKinds)", ErrUnknownKind, p.Kind, hint)}
		}
		return nil, &snapshot.FieldError{Field: "kind", Err: fmt.Errorf("%w %q (want one of %s)", ErrUnknownKind, p.Kind, strings.Join(k.names, ", "))}
	}
	h, err := kind.Compile(p, th)
	if err == nil && h == nil {
		err = fmt.Errorf("kind %q compiled the policy to a nil hook", p.Kind)
	}
	return h, err
}

// CheckPolicy compiles p with its kind and reports the first problem; it
// makes a Kinds the snapshot.Checker of snapshot.Parse and Load.
func (k *Kinds) CheckPolicy(p snapshot.Policy, th snapshot.Thresholds) error {
	_, err := k.compile(p, th)
	return err
}

// builtinKinds are the kinds the core compiles (kinds.go, tenant.go).
func builtinKinds() []Kind {
	return []Kind{
		KindFunc(kindBudget, compileBudget),
		KindFunc(kindRateLimit, compileRateLimit),
		KindFunc(kindTimeout, compileTimeout),
		KindFunc(kindContent, func(p snapshot.Policy, _ snapshot.Thresholds) (Hook, error) { return compileContent(p) }),
		KindFunc(kindToolAllowlist, func(p snapshot.Policy, _ snapshot.Thresholds) (Hook, error) { return compileToolList(p) }),
		KindFunc(kindToolDenylist, func(p snapshot.Policy, _ snapshot.Thresholds) (Hook, error) { return compileToolList(p) }),
		KindFunc(kindTenantBudget, compileTenantBudget),
		KindFunc(kindTenantRateLimit, compileTenantRateLimit),
		KindFunc(kindRequiresApproval, compileRequiresApproval),
	}
}
