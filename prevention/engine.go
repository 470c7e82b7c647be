package prevention

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"

	"github.com/stopline/stopline/snapshot"
)

// ErrHookFailed is matched by the error of an evaluation whose policy or
// hook returned an error or panicked. The runner fails closed on it.
var ErrHookFailed = errors.New("prevention: hook failed")

// ErrUnknownReason is matched (with ErrHookFailed) when a hook blocks
// with a reason that is not a RunTerminationReason a run can stop with.
var ErrUnknownReason = errors.New("prevention: unknown termination reason")

// HookError says which policy or hook failed and how. It matches
// ErrHookFailed and unwraps to the hook's own error.
type HookError struct {
	PolicyID string
	Source   Source
	Err      error  // the hook's error, or a description of the panic
	Panic    bool   // the hook panicked
	Stack    string // the panic's stack, if it panicked
}

func (e *HookError) Error() string {
	what := "returned an error"
	if e.Panic {
		what = "panicked"
	}
	return fmt.Sprintf("%s %q %s: %v", e.Source, e.PolicyID, what, e.Err)
}

// Unwrap returns ErrHookFailed and the hook's error.
func (e *HookError) Unwrap() []error { return []error{ErrHookFailed, e.Err} }

// NamedHook is a Go hook that runs alongside a snapshot's policies. ID
// names it in every decision it makes (with Source "hook").
type NamedHook struct {
	ID   string
	Hook Hook
	// Enforcement applies to its Blocks as to a policy's; empty means block.
	Enforcement snapshot.Enforcement
}

type rule struct {
	id          string
	source      Source
	enforcement snapshot.Enforcement
	hook        Hook
}

// Engine evaluates a compiled snapshot (and any extra hooks) on steps.
// Compile it once per snapshot; it is safe for concurrent use.
type Engine struct {
	snap     *snapshot.PolicySnapshot
	rules    []rule
	mayBlock bool
}

// Compile verifies the snapshot, compiles each of its policies with its
// kind (regular expressions, expressions and queries are compiled here,
// once), and appends the given hooks after the policies. A policy whose
// kind is not in k, or with bad parameters, gives a
// *snapshot.ValidationError naming the policy and the field.
func (k *Kinds) Compile(snap *snapshot.PolicySnapshot, hooks ...NamedHook) (*Engine, error) {
	if snap == nil {
		return nil, errors.New("prevention: nil snapshot")
	}
	if err := snap.Verify(); err != nil {
		return nil, err
	}
	e := &Engine{snap: snap}
	th := snap.Thresholds()
	for i, p := range snap.Policies() {
		h, err := k.compile(p, th)
		if err != nil {
			ve := &snapshot.ValidationError{PolicyID: p.ID, Index: i, Err: err}
			var fe *snapshot.FieldError
			if errors.As(err, &fe) {
				ve.Field, ve.Err = fe.Field, fe.Err
			}
			return nil, ve
		}
		e.rules = append(e.rules, rule{id: p.ID, source: SourcePolicy, enforcement: p.Enforcement.Effective(), hook: h})
		if _, computes := h.(computeOnly); !computes {
			e.mayBlock = true // a tenant limit waits on the ledger; a plug-in may wait on anything
		}
	}
	seen := map[string]bool{}
	for _, r := range e.rules {
		seen[r.id] = true
	}
	for _, h := range hooks {
		if h.ID == "" || h.Hook == nil {
			return nil, errors.New("prevention: a NamedHook needs an ID and a Hook")
		}
		if seen[h.ID] {
			return nil, fmt.Errorf("prevention: hook id %q is already used by a policy or hook", h.ID)
		}
		if !h.Enforcement.Valid() {
			return nil, fmt.Errorf("prevention: hook %q: unknown enforcement %q", h.ID, h.Enforcement)
		}
		seen[h.ID] = true
		e.mayBlock = true
		e.rules = append(e.rules, rule{id: h.ID, source: SourceHook, enforcement: h.Enforcement.Effective(), hook: h.Hook})
	}
	return e, nil
}

// computeOnly is implemented by the hooks of built-in kinds that only
// compute over the step: they never wait, so the runner need not give
// their evaluation a deadline.
type computeOnly interface{ computeOnly() }

// MayBlock reports whether evaluation can wait on anything: true when the
// engine runs Go hooks, limits across runs (which wait on the store) or
// policies of kinds outside the core, which get the step's context; false
// when every policy is a built-in kind that only computes. The
// runner sets a deadline on the step's context only when it is true.
func (e *Engine) MayBlock() bool { return e.mayBlock }

// Snapshot returns the snapshot the engine was compiled from.
func (e *Engine) Snapshot() *snapshot.PolicySnapshot { return e.snap }

// Evaluate runs every policy, then every hook, in order, on the step. The
// first enforced Block decides and ends evaluation; warn-mode Blocks and
// Warns, and monitor-mode Blocks, are collected as findings. Without an
// enforced Block, the first enforced HoldForApproval decides (evaluation
// goes on, so that a later Block still wins); a hold of a warn-mode policy
// is a warning, of a monitor-mode policy a finding. An error or
// panic in any hook returns a *HookError (matching ErrHookFailed): the
// caller must not let the step pass.
//
// Evaluate does not allocate when every policy allows.
func (e *Engine) Evaluate(ctx context.Context, step *Step) (Evaluation, error) {
	return e.EvaluateCharged(ctx, step, nil)
}

// EvaluateCharged is Evaluate with the step's Charges: hooks that limit
// the tenant across its runs (ChargedHook, such as the tenant_budget and
// tenant_rate_limit kinds) count the step through ch, which the caller
// then commits or releases. With a nil ch it is Evaluate, and such hooks
// fail with ErrNoLedger.
func (e *Engine) EvaluateCharged(ctx context.Context, step *Step, ch *Charges) (Evaluation, error) {
	return e.evaluate(ctx, step, ch, nil)
}

// evaluate is EvaluateCharged, with the StreamHooks' states of st if it
// is not nil (EvaluateStream).
func (e *Engine) evaluate(ctx context.Context, step *Step, ch *Charges, st *Stream) (Evaluation, error) {
	var ev Evaluation
	warned := false
	held := -1 // the finding of the first enforced hold
	for i := range e.rules {
		r := &e.rules[i]
		var (
			d   Decision
			err error
		)
		if st == nil {
			d, err = callHook(ctx, r, step, ch)
		} else {
			d, err = st.call(ctx, i, r, step, ch)
		}
		if err != nil {
			return Evaluation{}, err
		}
		if d.Action == Allow {
			continue
		}
		d.PolicyID = r.id
		d.Source = r.source
		d.Enforcement = r.enforcement
		if d.Action != Warn && d.Action != Block && d.Action != HoldForApproval {
			d.Action = Block // unknown actions fail closed
		}
		if d.Action == HoldForApproval && (!finite(d.HoldSeconds) || d.HoldSeconds < 0) {
			return Evaluation{}, &HookError{PolicyID: r.id, Source: r.source,
				Err: fmt.Errorf("hold has hold_seconds %v; want a finite, non-negative number", d.HoldSeconds)}
		}
		if d.Action != HoldForApproval {
			d.HoldSeconds = 0
		}
		if d.Action == Block && d.Reason == "" {
			// A Block that gives no reason stops the run as policy_block.
			d.Reason = ReasonPolicyBlock
		}
		if d.Action == Block && (!d.Reason.Valid() || d.Reason == ReasonCompleted) {
			// A reason the runner does not know would be recorded as
			// something it is not: the check failed, closed.
			return Evaluation{}, &HookError{PolicyID: r.id, Source: r.source,
				Err: fmt.Errorf("%w: a Block with reason %q, which is not a reason a run can stop with", ErrUnknownReason, d.Reason)}
		}
		if !finite(d.Limit) || !finite(d.Observed) {
			// The trace cannot hold the number, so the check counts as
			// failed: closed.
			return Evaluation{}, &HookError{PolicyID: r.id, Source: r.source,
				Err: fmt.Errorf("decision has a non-finite limit (%v) or observed value (%v)", d.Limit, d.Observed)}
		}
		d.Message, d.Threshold = RecordableText(d.Message), RecordableText(d.Threshold)
		ev.Findings = append(ev.Findings, d)
		if d.Action == Block && r.enforcement == snapshot.EnforceBlock {
			ev.Decision = d
			return ev, nil
		}
		if d.Action == HoldForApproval && r.enforcement == snapshot.EnforceBlock {
			if held < 0 {
				held = len(ev.Findings) - 1
			}
			continue
		}
		if d.Action == Warn || r.enforcement == snapshot.EnforceWarn {
			warned = true
		}
	}
	if held >= 0 {
		// No enforced Block: the first enforced hold decides, and the
		// step waits for a person. Warnings stay findings.
		ev.Decision = ev.Findings[held]
		return ev, nil
	}
	if warned {
		ev.Decision = Decision{Action: Warn}
	} else {
		ev.Decision = Decision{Action: Allow}
	}
	return ev, nil
}

func isCharged(h Hook) bool {
	_, ok := h.(ChargedHook)
	return ok
}

func callHook(ctx context.Context, r *rule, step *Step, ch *Charges) (d Decision, err error) {
	defer func() {
		if p := recover(); p != nil {
			perr, ok := p.(error)
			if !ok {
				perr = fmt.Errorf("%v", p)
			}
			err = &HookError{PolicyID: r.id, Source: r.source, Err: perr, Panic: true, Stack: string(debug.Stack())}
		}
	}()
	if ch != nil { // [tenant limits]
		if c, ok := r.hook.(ChargedHook); ok {
			d, err = c.EvaluateCharged(ctx, step, ch)
		} else {
			d, err = r.hook.Evaluate(ctx, step)
		}
	} else {
		d, err = r.hook.Evaluate(ctx, step)
	}
	if err != nil {
		return Decision{}, &HookError{PolicyID: r.id, Source: r.source, Err: err}
	}
	return d, nil
}
