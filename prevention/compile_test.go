package prevention_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name   string
		policy snapshot.Policy
		field  string
	}{
		{"unknown kind", policy("p", "budjet", `{}`), "kind"},
		{"unknown param", policy("p", "budget", `{"metric":"tokens","threshold":"max_tokens","limit":5}`), "params.limit"},
		{"param spelt in another case", policy("p", "budget", `{"Metric":"tokens","threshold":"max_tokens"}`), "params.Metric"},
		{"param of another kind", policy("p", "content", `{"patterns":["x"],"threshold":"max_tokens"}`), "params.threshold"},
		{"param of the wrong type", policy("p", "budget", `{"metric":5,"threshold":"max_tokens"}`), "params.metric"},
		{"missing metric", policy("p", "budget", `{"threshold":"max_tokens"}`), "params.metric"},
		{"unknown metric", policy("p", "budget", `{"metric":"dollars","threshold":"max_tokens"}`), "params.metric"},
		{"budget without threshold", policy("p", "budget", `{"metric":"tokens"}`), "params.threshold"},
		{"rate limit without threshold", policy("p", "rate_limit", `{"window_seconds":60}`), "params.threshold"},
		{"timeout without threshold", policy("p", "timeout", `{}`), "params.threshold"},
		{"zero window", policy("p", "rate_limit", `{"threshold":"max_steps","window_seconds":0}`), "params.window_seconds"},
		{"negative window", policy("p", "rate_limit", `{"threshold":"max_steps","window_seconds":-1}`), "params.window_seconds"},
		{"window too long", policy("p", "rate_limit", `{"threshold":"max_steps","window_seconds":1e12}`), "params.window_seconds"},
		{"window too short to count anything", policy("p", "rate_limit", `{"threshold":"max_steps","window_seconds":1e-10}`), "params.window_seconds"},
		{"tenant window too short", policy("p", "tenant_rate_limit", `{"threshold":"max_steps","window_seconds":0.0000001}`), "params.window_seconds"},
		{"invisible character in a denied name", policy("p", "tool_denylist", `{"deny":["sh\u200bell"]}`), "params.deny[0]"},
		{"control character in an allowed name", policy("p", "tool_allowlist", `{"allow":["search\u0000"]}`), "params.allow[0]"},
		{"content without patterns", policy("p", "content", `{"fields":["output"]}`), "params.patterns"},
		{"content with no fields", policy("p", "content", `{"fields":[],"patterns":["x"]}`), "params.fields"},
		{"content unknown field", policy("p", "content", `{"fields":["output","metadata"],"patterns":["x"]}`), "params.fields[1]"},
		{"content duplicate field", policy("p", "content", `{"fields":["output","output"],"patterns":["x"]}`), "params.fields[1]"},
		{"bad regex", policy("p", "content", `{"patterns":["ok","(unclosed"]}`), "params.patterns[1]"},
		{"empty regex", policy("p", "content", `{"patterns":[""]}`), "params.patterns[0]"},
		{"patterns not a list", policy("p", "content", `{"patterns":"x"}`), "params.patterns"},
		{"unknown reason", policy("p", "content", `{"patterns":["x"],"reason":"oops"}`), "params.reason"},
		{"completed is no block reason", policy("p", "content", `{"patterns":["x"],"reason":"completed"}`), "params.reason"},
		{"allowlist without allow", policy("p", "tool_allowlist", `{}`), "params.allow"},
		{"allowlist with deny", policy("p", "tool_allowlist", `{"deny":["shell"]}`), "params.deny"},
		{"denylist without deny", policy("p", "tool_denylist", `{"deny":null}`), "params.deny"},
		{"empty tool name", policy("p", "tool_denylist", `{"deny":["shell",""]}`), "params.deny[1]"},
		{"expression missing", policy("p", "expression", `{"message":"m"}`), "params.expr"},
		{"expression syntax", policy("p", "expression", `{"expr":"step.tool == "}`), "params.expr"},
		{"expression not bool", policy("p", "expression", `{"expr":"'a' + 'b'"}`), "params.expr"},
		{"expression of type dyn", policy("p", "expression", `{"expr":"step.tool"}`), "params.expr"},
		{"expression undeclared variable", policy("p", "expression", `{"expr":"steps.tool == 'shell'"}`), "params.expr"},
		{"expression unknown step key", policy("p", "expression", `{"expr":"step.tokenz > 5"}`), "params.expr"},
		{"expression unknown run key", policy("p", "expression", `{"expr":"has(run.cost)"}`), "params.expr"},
		{"expression unknown indexed key", policy("p", "expression", `{"expr":"step['tol'] == 'shell'"}`), "params.expr"},
		{"expression unknown function", policy("p", "expression", `{"expr":"step.tool.startsWith('sh') && now() > 0"}`), "params.expr"},
		{"expression bad reason", policy("p", "expression", `{"expr":"true","reason":"blocked"}`), "params.reason"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok := policy("first", "budget", `{"metric":"steps","threshold":"max_steps"}`)
			_, err := kinds.Compile(newSnapshot(t, nil, ok, tt.policy))
			if !errors.Is(err, snapshot.ErrInvalid) {
				t.Fatalf("Compile error %v, want snapshot.ErrInvalid", err)
			}
			var ve *snapshot.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Compile error %T, want *snapshot.ValidationError", err)
			}
			if ve.PolicyID != tt.policy.ID || ve.Index != 1 || ve.Field != tt.field {
				t.Errorf("ValidationError{PolicyID: %q, Index: %d, Field: %q}, want {%q, 1, %q}: %v",
					ve.PolicyID, ve.Index, ve.Field, tt.policy.ID, tt.field, err)
			}
			if err := newSnapshot(t, nil, ok, tt.policy).Check(kinds); err == nil {
				t.Error("Check succeeded")
			}
		})
	}
}

// TestCompileAccepts checks the valid corners of each kind's parameters.
func TestCompileAccepts(t *testing.T) {
	ps := []snapshot.Policy{
		policy("a", "budget", `{"metric":"cost_cents","threshold":"max_cost_cents"}`),
		policy("b", "rate_limit", `{"threshold":"max_steps","window_seconds":0.5}`),
		policy("c", "content", `{"fields":["model","tool","input","output"],"patterns":["(?i)secret","x{2,}"],"reason":"system_failure"}`),
		policy("d", "tool_allowlist", `{"allow":[]}`),
		policy("e", "expression", `{"expr":"thresholds.max_steps > 2 && step.tokens > 1.5","message":"","reason":""}`),
		policy("f", "expression", `{"expr":"run['steps'] > 1 && [1, 2].exists(x, x == step.index)"}`),
		policy("g", "timeout", `{"threshold":"max_duration_seconds"}`),
	}
	if err := newSnapshot(t, nil, ps...).Check(kinds); err != nil {
		t.Fatal(err)
	}
}

// TestKindNotEnabled: a kind stopline ships outside the core, or any
// other kind, is refused by a set that lacks it, naming what enables it.
func TestKindNotEnabled(t *testing.T) {
	for kind, want := range map[string]string{
		"expression": `import "github.com/stopline/stopline/kinds/cel"`,
		"rego":       `import "github.com/stopline/stopline/kinds/rego"`,
		"cedar":      `import "github.com/stopline/stopline/kinds/cedar"`,
		"budjet":     "want one of budget, content, rate_limit",
	} {
		snap := newSnapshot(t, nil, policy("p", kind, `{}`))
		_, err := prevention.Builtin().Compile(snap)
		var ve *snapshot.ValidationError
		if !errors.As(err, &ve) || ve.Field != "kind" || !errors.Is(err, prevention.ErrUnknownKind) || !strings.Contains(err.Error(), want) {
			t.Errorf("kind %q: %v, want a ValidationError on kind saying %q", kind, err, want)
		}
	}
	if _, err := kinds.Compile(newSnapshot(t, nil, policy("p", "expression", `{"expr":"true"}`))); err != nil {
		t.Errorf("with cel.Kind(): %v", err)
	}
}

func TestNewKindsRefusesDuplicates(t *testing.T) {
	dup := prevention.KindFunc("budget", func(snapshot.Policy, snapshot.Thresholds) (prevention.Hook, error) { return prevention.AllowAll, nil })
	if _, err := prevention.NewKinds(dup); err == nil {
		t.Error("a second kind named budget was accepted")
	}
	if _, err := prevention.NewKinds(nil); err == nil {
		t.Error("a nil kind was accepted")
	}
	custom := prevention.KindFunc("always", func(snapshot.Policy, snapshot.Thresholds) (prevention.Hook, error) { return prevention.AllowAll, nil })
	k, err := prevention.NewKinds(custom)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Compile(newSnapshot(t, nil, policy("p", "always", `{}`))); err != nil {
		t.Errorf("custom kind: %v", err)
	}
	if _, err := prevention.Builtin().Compile(newSnapshot(t, nil, policy("p", "always", `{}`))); err == nil {
		t.Error("Builtin() compiled a kind it does not hold")
	}
}
