package prevention_test

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

func withEnforcement(p snapshot.Policy, e snapshot.Enforcement) snapshot.Policy {
	p.Enforcement = e
	return p
}

var shellCall = prevention.Step{Index: 0, Type: prevention.StepToolCall, Tool: "shell"}

func TestEnforcementModes(t *testing.T) {
	deny := policy("no-shell", "tool_denylist", `{"deny":["shell"]}`)
	allow := policy("tools", "tool_allowlist", `{"allow":["search"]}`)
	finding := func(id string, e snapshot.Enforcement, msg string) prevention.Decision {
		return prevention.Decision{
			Action: prevention.Block, Reason: prevention.ReasonPolicyBlock, PolicyID: id,
			Source: prevention.SourcePolicy, Message: msg, Enforcement: e,
		}
	}
	denyMsg, allowMsg := `tool "shell" is in the denylist`, `tool "shell" is not in the allowlist`
	tests := []struct {
		name      string
		policies  []snapshot.Policy
		want      prevention.Evaluation
		wantCalls int // calls of the hook that runs after the policies
	}{
		{
			name:     "warn records and goes on",
			policies: []snapshot.Policy{withEnforcement(deny, snapshot.EnforceWarn)},
			want: prevention.Evaluation{
				Decision: prevention.Decision{Action: prevention.Warn},
				Findings: []prevention.Decision{finding("no-shell", snapshot.EnforceWarn, denyMsg)},
			},
			wantCalls: 1,
		},
		{
			name:     "monitor allows and records a would-block",
			policies: []snapshot.Policy{withEnforcement(deny, snapshot.EnforceMonitor)},
			want: prevention.Evaluation{
				Decision: prevention.Allowed(),
				Findings: []prevention.Decision{finding("no-shell", snapshot.EnforceMonitor, denyMsg)},
			},
			wantCalls: 1,
		},
		{
			name:     "monitor and warn",
			policies: []snapshot.Policy{withEnforcement(deny, snapshot.EnforceMonitor), withEnforcement(allow, snapshot.EnforceWarn)},
			want: prevention.Evaluation{
				Decision: prevention.Decision{Action: prevention.Warn},
				Findings: []prevention.Decision{
					finding("no-shell", snapshot.EnforceMonitor, denyMsg),
					finding("tools", snapshot.EnforceWarn, allowMsg),
				},
			},
			wantCalls: 1,
		},
		{
			name:     "first enforced block decides",
			policies: []snapshot.Policy{withEnforcement(deny, snapshot.EnforceWarn), allow, policy("no-shell-2", "tool_denylist", `{"deny":["shell"]}`)},
			want: prevention.Evaluation{
				Decision: finding("tools", snapshot.EnforceBlock, allowMsg),
				Findings: []prevention.Decision{
					finding("no-shell", snapshot.EnforceWarn, denyMsg),
					finding("tools", snapshot.EnforceBlock, allowMsg),
				},
			},
			wantCalls: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &counter{}
			e, err := kinds.Compile(newSnapshot(t, nil, tt.policies...), prevention.NamedHook{ID: "count", Hook: c})
			if err != nil {
				t.Fatal(err)
			}
			step := shellCall
			ev, err := e.Evaluate(context.Background(), &step)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ev); diff != "" {
				t.Errorf("Evaluate (-want +got):\n%s", diff)
			}
			if c.n != tt.wantCalls {
				t.Errorf("hook after the policies called %d times, want %d", c.n, tt.wantCalls)
			}
		})
	}
}

func TestHooks(t *testing.T) {
	errCheck := errors.New("check unavailable")
	hook := func(d prevention.Decision, err error) prevention.Hook {
		return prevention.HookFunc(func(context.Context, *prevention.Step) (prevention.Decision, error) { return d, err })
	}
	hookDecision := func(a prevention.Action, r prevention.RunTerminationReason, msg string, e snapshot.Enforcement) prevention.Decision {
		return prevention.Decision{Action: a, Reason: r, PolicyID: "guard", Source: prevention.SourceHook, Message: msg, Enforcement: e}
	}
	tests := []struct {
		name string
		hook prevention.NamedHook
		want prevention.Evaluation
	}{
		{
			name: "allow",
			hook: prevention.NamedHook{ID: "guard", Hook: prevention.AllowAll},
			want: prevention.Evaluation{Decision: prevention.Allowed()},
		},
		{
			name: "block carries source hook and id",
			hook: prevention.NamedHook{ID: "guard", Hook: prevention.BlockAll(prevention.ReasonRateLimited)},
			want: prevention.Evaluation{
				Decision: hookDecision(prevention.Block, prevention.ReasonRateLimited, "blocked by BlockAll", snapshot.EnforceBlock),
				Findings: []prevention.Decision{hookDecision(prevention.Block, prevention.ReasonRateLimited, "blocked by BlockAll", snapshot.EnforceBlock)},
			},
		},
		{
			name: "zero decision blocks",
			hook: prevention.NamedHook{ID: "guard", Hook: hook(prevention.Decision{}, nil)},
			want: prevention.Evaluation{
				Decision: hookDecision(prevention.Block, prevention.ReasonPolicyBlock, "", snapshot.EnforceBlock),
				Findings: []prevention.Decision{hookDecision(prevention.Block, prevention.ReasonPolicyBlock, "", snapshot.EnforceBlock)},
			},
		},
		{
			name: "unknown action blocks",
			hook: prevention.NamedHook{ID: "guard", Hook: hook(prevention.Decision{Action: 7}, nil)},
			want: prevention.Evaluation{
				Decision: hookDecision(prevention.Block, prevention.ReasonPolicyBlock, "", snapshot.EnforceBlock),
				Findings: []prevention.Decision{hookDecision(prevention.Block, prevention.ReasonPolicyBlock, "", snapshot.EnforceBlock)},
			},
		},
		{
			name: "hook warn",
			hook: prevention.NamedHook{ID: "guard", Hook: hook(prevention.Decision{Action: prevention.Warn, Message: "odd"}, nil)},
			want: prevention.Evaluation{
				Decision: prevention.Decision{Action: prevention.Warn},
				Findings: []prevention.Decision{hookDecision(prevention.Warn, "", "odd", snapshot.EnforceBlock)},
			},
		},
		{
			name: "hook in monitor mode",
			hook: prevention.NamedHook{ID: "guard", Hook: prevention.BlockAll(prevention.ReasonPolicyBlock), Enforcement: snapshot.EnforceMonitor},
			want: prevention.Evaluation{
				Decision: prevention.Allowed(),
				Findings: []prevention.Decision{hookDecision(prevention.Block, prevention.ReasonPolicyBlock, "blocked by BlockAll", snapshot.EnforceMonitor)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := kinds.Compile(newSnapshot(t, nil, policy("roomy", "budget", `{"metric":"steps","threshold":"max_steps"}`)), tt.hook)
			if err != nil {
				t.Fatal(err)
			}
			step := shellCall
			ev, err := e.Evaluate(context.Background(), &step)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, ev); diff != "" {
				t.Errorf("Evaluate (-want +got):\n%s", diff)
			}
		})
	}

	failures := []struct {
		name      string
		hook      prevention.Hook
		wantPanic bool
		wantErr   error
	}{
		{"error", hook(prevention.Allowed(), errCheck), false, errCheck},
		{"panic", prevention.HookFunc(func(context.Context, *prevention.Step) (prevention.Decision, error) { panic("boom") }), true, nil},
	}
	for _, tt := range failures {
		t.Run(tt.name, func(t *testing.T) {
			e, err := kinds.Compile(newSnapshot(t, nil, policy("roomy", "budget", `{"metric":"steps","threshold":"max_steps"}`)),
				prevention.NamedHook{ID: "guard", Hook: tt.hook})
			if err != nil {
				t.Fatal(err)
			}
			step := shellCall
			ev, err := e.Evaluate(context.Background(), &step)
			if !errors.Is(err, prevention.ErrHookFailed) {
				t.Fatalf("Evaluate error %v, want ErrHookFailed", err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("Evaluate error %v does not match %v", err, tt.wantErr)
			}
			var he *prevention.HookError
			if !errors.As(err, &he) {
				t.Fatalf("Evaluate error %T, want *HookError", err)
			}
			if he.PolicyID != "guard" || he.Source != prevention.SourceHook || he.Panic != tt.wantPanic || (he.Stack != "") != tt.wantPanic {
				t.Errorf("HookError %+v: want policy guard, source hook, panic %v", he, tt.wantPanic)
			}
			if diff := cmp.Diff(prevention.Evaluation{}, ev); diff != "" {
				t.Errorf("failed Evaluate returned a non-zero evaluation:\n%s", diff)
			}
		})
	}
}

func TestCompileHookErrors(t *testing.T) {
	snap := newSnapshot(t, nil, policy("roomy", "budget", `{"metric":"steps","threshold":"max_steps"}`))
	tests := []struct {
		name  string
		hooks []prevention.NamedHook
	}{
		{"no id", []prevention.NamedHook{{Hook: prevention.AllowAll}}},
		{"no hook", []prevention.NamedHook{{ID: "h"}}},
		{"id of a policy", []prevention.NamedHook{{ID: "roomy", Hook: prevention.AllowAll}}},
		{"duplicate id", []prevention.NamedHook{{ID: "h", Hook: prevention.AllowAll}, {ID: "h", Hook: prevention.AllowAll}}},
		{"bad enforcement", []prevention.NamedHook{{ID: "h", Hook: prevention.AllowAll, Enforcement: "audit"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := kinds.Compile(snap, tt.hooks...); err == nil {
				t.Error("Compile succeeded")
			}
		})
	}
	if _, err := kinds.Compile(nil); err == nil {
		t.Error("Compile(nil) succeeded")
	}
}
