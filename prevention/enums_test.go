package prevention_test

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/prevention"
)

func TestActionZeroIsBlock(t *testing.T) {
	var d prevention.Decision
	if d.Action != prevention.Block || d.Action.String() != "block" {
		t.Errorf("zero Decision has action %v, want block", d.Action)
	}
}

func TestActionText(t *testing.T) {
	for _, a := range []prevention.Action{prevention.Block, prevention.Warn, prevention.Allow} {
		t.Run(a.String(), func(t *testing.T) {
			b, err := a.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			var got prevention.Action
			if err := got.UnmarshalText(b); err != nil || got != a {
				t.Errorf("round trip of %v gave %v, %v", a, got, err)
			}
		})
	}
	if _, err := prevention.Action(9).MarshalText(); !errors.Is(err, prevention.ErrUnknownValue) {
		t.Errorf("MarshalText(Action(9)) error %v, want ErrUnknownValue", err)
	}
	for _, text := range []string{"", "Allow", "ALLOW", "permit", "deny", "allow "} {
		t.Run("reject "+text, func(t *testing.T) {
			a := prevention.Warn
			if err := a.UnmarshalText([]byte(text)); !errors.Is(err, prevention.ErrUnknownValue) {
				t.Errorf("UnmarshalText(%q) error %v, want ErrUnknownValue", text, err)
			}
			if a != prevention.Warn {
				t.Errorf("failed UnmarshalText changed the action to %v", a)
			}
		})
	}
}

func TestDecisionJSON(t *testing.T) {
	want := prevention.Decision{
		Action: prevention.Block, Reason: prevention.ReasonBudgetExceeded, PolicyID: "cost",
		Source: prevention.SourcePolicy, Threshold: "max_cost_cents", Limit: 150, Observed: 151,
		Message: "over", Enforcement: "block",
	}
	b, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var got prevention.Decision
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, doc := range []string{`{"action":"permit"}`, `{"action":"allow","reason":"because"}`} {
		if err := json.Unmarshal([]byte(doc), new(prevention.Decision)); !errors.Is(err, prevention.ErrUnknownValue) {
			t.Errorf("Unmarshal(%s) error %v, want ErrUnknownValue", doc, err)
		}
	}
}

func TestReasonText(t *testing.T) {
	for _, s := range []string{"", "completed", "policy_block", "budget_exceeded", "rate_limited", "user_abort", "system_failure", "timeout"} {
		r, err := prevention.ParseReason(s)
		if err != nil || string(r) != s {
			t.Errorf("ParseReason(%q) = %q, %v", s, r, err)
		}
		if b, err := r.MarshalText(); err != nil || string(b) != s {
			t.Errorf("MarshalText(%q) = %q, %v", s, b, err)
		}
	}
	for _, s := range []string{"blocked", "Timeout", "budget exceeded"} {
		if _, err := prevention.ParseReason(s); !errors.Is(err, prevention.ErrUnknownValue) {
			t.Errorf("ParseReason(%q) error %v, want ErrUnknownValue", s, err)
		}
		if _, err := prevention.RunTerminationReason(s).MarshalText(); !errors.Is(err, prevention.ErrUnknownValue) {
			t.Errorf("MarshalText(%q) error %v, want ErrUnknownValue", s, err)
		}
	}
}

func TestStepTypeText(t *testing.T) {
	for _, st := range []prevention.StepType{prevention.StepLLMResponse, prevention.StepToolCall, prevention.StepToolResult, prevention.StepMessage} {
		var got prevention.StepType
		b, err := st.MarshalText()
		if err == nil {
			err = got.UnmarshalText(b)
		}
		if err != nil || got != st {
			t.Errorf("round trip of %q gave %q, %v", st, got, err)
		}
	}
	for _, s := range []string{"", "tool", "TOOL_CALL", "llm"} {
		var st prevention.StepType
		if err := st.UnmarshalText([]byte(s)); !errors.Is(err, prevention.ErrUnknownValue) {
			t.Errorf("UnmarshalText(%q) error %v, want ErrUnknownValue", s, err)
		}
		if _, err := prevention.StepType(s).MarshalText(); !errors.Is(err, prevention.ErrUnknownValue) {
			t.Errorf("MarshalText(%q) error %v, want ErrUnknownValue", s, err)
		}
	}
}
