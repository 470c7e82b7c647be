package otelgov

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

// durationBuckets are the advised histogram boundaries, in seconds: from
// 10 µs (policies alone) to 10 s (the runner's default step timeout).
var durationBuckets = []float64{
	0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// instruments are the metrics an Observer records.
type instruments struct {
	steps      metric.Int64Counter
	decisions  metric.Int64Counter
	runs       metric.Int64Counter
	active     metric.Int64UpDownCounter
	stepDur    metric.Float64Histogram
	evalDur    metric.Float64Histogram
	stepSets   map[stepSetKey]metric.MeasurementOption
	evalSets   map[prevention.StepType]metric.MeasurementOption
	activeSets metric.MeasurementOption
}

// stepSetKey selects the attributes of a step's measurements.
type stepSetKey struct {
	typ      prevention.StepType
	action   prevention.Action
	recorded bool
}

var stepTypes = []prevention.StepType{
	prevention.StepLLMResponse, prevention.StepToolCall, prevention.StepToolResult, prevention.StepMessage,
}

func newInstruments(m metric.Meter) (*instruments, error) {
	var ins instruments
	var errs []error
	check := func(name string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("instrument %s: %w", name, err))
		}
	}
	var err error
	ins.steps, err = m.Int64Counter("stopline.steps", metric.WithUnit("{step}"),
		metric.WithDescription("Steps evaluated and recorded (or not recordable), by step type and decision."))
	check("stopline.steps", err)
	ins.decisions, err = m.Int64Counter("stopline.decisions", metric.WithUnit("{decision}"),
		metric.WithDescription("Findings of policies and hooks (warnings, monitor-mode would-blocks, blocks), by action, enforcement, source and policy."))
	check("stopline.decisions", err)
	ins.runs, err = m.Int64Counter("stopline.runs", metric.WithUnit("{run}"),
		metric.WithDescription("Runs ended, by status and termination reason."))
	check("stopline.runs", err)
	ins.active, err = m.Int64UpDownCounter("stopline.runs.active", metric.WithUnit("{run}"),
		metric.WithDescription("Runs started (or queued) and not yet ended."))
	check("stopline.runs.active", err)
	ins.stepDur, err = m.Float64Histogram("stopline.step.duration", metric.WithUnit("s"),
		metric.WithDescription("How long a step took in Run.Step: evaluating, recording durably, checkpoints."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check("stopline.step.duration", err)
	ins.evalDur, err = m.Float64Histogram("stopline.evaluation.duration", metric.WithUnit("s"),
		metric.WithDescription("How long the policies and hooks took to evaluate a step."),
		metric.WithExplicitBucketBoundaries(durationBuckets...))
	check("stopline.evaluation.duration", err)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	// The attribute sets of the step measurements are few and fixed:
	// built once, so that a step allocates none.
	ins.stepSets = make(map[stepSetKey]metric.MeasurementOption, len(stepTypes)*3*2)
	ins.evalSets = make(map[prevention.StepType]metric.MeasurementOption, len(stepTypes))
	for _, t := range stepTypes {
		ins.evalSets[t] = metric.WithAttributeSet(attribute.NewSet(keyStepType.String(string(t))))
		for _, a := range []prevention.Action{prevention.Allow, prevention.Warn, prevention.Block} {
			for _, rec := range []bool{true, false} {
				ins.stepSets[stepSetKey{t, a, rec}] = metric.WithAttributeSet(stepSet(t, a, rec))
			}
		}
	}
	ins.activeSets = metric.WithAttributeSet(attribute.NewSet())
	return &ins, nil
}

func stepSet(t prevention.StepType, a prevention.Action, recorded bool) attribute.Set {
	kv := []attribute.KeyValue{keyStepType.String(string(t)), keyDecision.String(a.String())}
	if !recorded {
		kv = append(kv, keyErrorType.String(errorRecordFailed))
	}
	return attribute.NewSet(kv...)
}

// step records the metrics of a step event. ctx carries the step's span,
// for exemplars.
func (ins *instruments) step(ctx context.Context, e *governance.StepEvent) {
	action := e.Evaluation.Decision.Action
	set, ok := ins.stepSets[stepSetKey{e.Input.Type, action, e.Recorded}]
	if !ok {
		set = metric.WithAttributeSet(stepSet(e.Input.Type, action, e.Recorded))
	}
	ins.steps.Add(ctx, 1, set)
	// A step stopped by Run.Check or Withhold is not timed by the runner.
	if e.Duration > 0 {
		ins.stepDur.Record(ctx, seconds(e.Duration), set)
		eset, ok := ins.evalSets[e.Input.Type]
		if !ok {
			eset = metric.WithAttributes(keyStepType.String(string(e.Input.Type)))
		}
		ins.evalDur.Record(ctx, seconds(e.EvaluationTime), eset)
	}
	for i := range e.Evaluation.Findings {
		f := &e.Evaluation.Findings[i]
		kv := []attribute.KeyValue{
			keyDecision.String(f.Action.String()), keyPolicyID.String(f.PolicyID),
			keySource.String(string(f.Source)), keyEnforcement.String(enforcementOf(f)),
		}
		ins.decisions.Add(ctx, 1, metric.WithAttributes(kv...))
	}
}

// runEnded records the metrics of a run's end; first reports that the
// run was still open (its first end event).
func (ins *instruments) runEnded(ctx context.Context, e *governance.RunEvent, first bool) {
	kv := []attribute.KeyValue{
		keyRunStatus.String(string(e.Run.Status)), keyTerminationReason.String(string(e.Run.TerminationReason)),
	}
	if e.Err != nil {
		kv = append(kv, keyErrorType.String(errorRecordFailed))
	}
	ins.runs.Add(ctx, 1, metric.WithAttributes(kv...))
	if first {
		ins.active.Add(ctx, -1, ins.activeSets)
	}
}

func seconds(d time.Duration) float64 { return d.Seconds() }

// enforcementOf is a finding's enforcement as recorded: a hook's
// decisions have none, and enforce what their action says.
func enforcementOf(d *prevention.Decision) string {
	if d.Enforcement != "" {
		return string(d.Enforcement)
	}
	if d.Action == prevention.Warn {
		return "warn"
	}
	return "block"
}
