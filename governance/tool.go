package governance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/stopline/stopline/prevention"
)

// ErrNoRun is matched when a governed call finds no run in its context:
// the call is refused, never made ungoverned.
var ErrNoRun = errors.New("governance: no governed run in the context")

type runKey struct{}

// ContextWithRun returns a copy of ctx that carries run, so that code far
// from the agent loop — an SDK client created once (llmhttp), a tool
// wrapped with WrapTool, a framework callback — governs its work as a step
// of that run. A nil run returns ctx itself.
func ContextWithRun(ctx context.Context, run *Run) context.Context {
	if run == nil {
		return ctx
	}
	return context.WithValue(ctx, runKey{}, run)
}

// RunFromContext returns the run ctx carries, if any.
func RunFromContext(ctx context.Context) (*Run, bool) {
	run, ok := ctx.Value(runKey{}).(*Run)
	return run, ok && run != nil
}

// MetadataToolError is the metadata key of a tool_result step that holds
// the error a wrapped tool returned.
const MetadataToolError = "stopline.tool_error"

// WrapTool governs fn, a Go function an agent calls as the tool name:
// each call is reported as a tool_call step of the run its context
// carries (ContextWithRun) before fn runs, with the input as the step's
// input, and fn's result is reported as a tool_result step, with the
// output as the step's output (or, when fn fails, its error in the
// metadata MetadataToolError), before the result is returned.
//
// If a policy blocks the tool_call step, fn is not called; if one blocks
// the tool_result step, its output is not returned. Either way the call
// returns the zero Out and the *Violation (errors.As), and the run has
// stopped. A call whose context carries no run returns ErrNoRun without
// calling fn. Errors recording a step are returned as Step returns them;
// fn's own error is returned as it is, after its tool_result is recorded.
//
// The input and output are recorded as text: a string or []byte as it
// is, anything else as its JSON encoding (an input that cannot be encoded
// refuses the call). A name prevention.CheckName refuses, or one longer
// than MaxNameBytes, is an error here. The returned function is safe for
// concurrent use; calls on one run are recorded one at a time.
func WrapTool[In, Out any](name string, fn func(ctx context.Context, in In) (Out, error)) (func(ctx context.Context, in In) (Out, error), error) {
	if fn == nil {
		return nil, errors.New("governance: WrapTool: nil function")
	}
	if name == "" || len(name) > MaxNameBytes {
		return nil, fmt.Errorf("governance: WrapTool: tool name %q: want 1 to %d bytes", name, MaxNameBytes)
	}
	if err := prevention.CheckName(name); err != nil {
		return nil, fmt.Errorf("governance: WrapTool: %w", err)
	}
	return func(ctx context.Context, in In) (Out, error) {
		var zero Out
		run, ok := RunFromContext(ctx)
		if !ok {
			return zero, fmt.Errorf("%w: tool %s was not called", ErrNoRun, name)
		}
		input, err := toolText(in)
		if err != nil {
			return zero, fmt.Errorf("governance: tool %s: encoding its input: %w", name, err)
		}
		if _, err := run.Step(ctx, StepInput{Type: prevention.StepToolCall, Tool: name, Input: input}); err != nil {
			return zero, err
		}
		out, ferr := fn(ctx, in)
		result := StepInput{Type: prevention.StepToolResult, Tool: name}
		if ferr != nil {
			result.Metadata = map[string]string{MetadataToolError: ferr.Error()}
		} else if result.Output, err = toolText(out); err != nil {
			// The output cannot be recorded as it is: it is not returned.
			result.Metadata = map[string]string{MetadataToolError: "output not recordable: " + err.Error()}
			ferr = fmt.Errorf("governance: tool %s: encoding its output: %w", name, err)
		}
		// The tool ran: its result is recorded even if the caller gave up.
		if _, err := run.Step(context.WithoutCancel(ctx), result); err != nil {
			return zero, err
		}
		if ferr != nil {
			return zero, ferr
		}
		return out, nil
	}, nil
}

// toolText is v as a step records it: a string or []byte as it is,
// anything else as JSON.
func toolText(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return x, nil
	case []byte:
		return string(x), nil
	case nil:
		return "", nil
	}
	b, err := json.Marshal(v)
	return string(b), err
}
