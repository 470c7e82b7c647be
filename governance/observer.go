package governance

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// Observer is told what the runs of a Runner do, for tracing, metrics and
// logs (package otelgov is one; WithLogger installs another). Each method
// is called once the event is in the store — or, for an event the store
// could not take, once the runner has acted on the failure (Err is set) —
// synchronously, in the goroutine of the call that made it, before that
// call returns.
//
// An observer must return quickly and must not block: the step that
// calls it waits for it. It must not call back into the run. It may be
// called concurrently for different runs. A panic in an observer is
// recovered and dropped, and an observer has no way to change a run's
// outcome: what was decided and recorded stays so. The events hold the
// step's text (input, output, metadata), which may be personal data: an
// observer that exports it must say so. An event shares its maps and
// slices (metadata, labels, findings) with the run and the caller: an
// observer must not modify them, and must copy what it keeps past the
// call.
type Observer interface {
	// RunStarted: the run and its run_start record are stored.
	RunStarted(ctx context.Context, e RunEvent)
	// StepDone: a step was evaluated and recorded — allowed, allowed with
	// warnings, or blocked as the run's inflection point — or it could
	// not be recorded (Err), in which case it was not allowed (unless the
	// runner fails open) and the run has ended.
	StepDone(ctx context.Context, e StepEvent)
	// RunEnded: the run's end is recorded, or could not be (Err).
	RunEnded(ctx context.Context, e RunEvent)
}

// RunEvent is the start or the end of a run.
type RunEvent struct {
	// Run is the run as the runner knows it after the event.
	Run RunRecord
	// SnapshotHash is the content hash of the run's snapshot.
	SnapshotHash string
	// Violation is what stopped the run, when a policy or hook did.
	Violation *Violation
	// Err is why the event could not be recorded (RunEnded only).
	Err error
	// At is the event's time on the runner's clock.
	At time.Time
}

// StepEvent is a step evaluated and recorded (or not recordable).
type StepEvent struct {
	RunID, TenantID, SnapshotID, SnapshotHash string
	// Index is the step's index in the run; At its time on the runner's
	// clock.
	Index int
	At    time.Time
	// Input is the step as the agent reported it (text included).
	Input StepInput
	// Evaluation is what the policies and hooks decided.
	Evaluation prevention.Evaluation
	Status     trace.Status
	// Recorded reports that the step is in the run's chain, as the record
	// with hash RecordHash. Inflection reports that it stopped the run,
	// with incident IncidentID.
	Recorded   bool
	RecordHash string
	Inflection bool
	IncidentID string
	// The run's totals with this step.
	TotalTokens    int64
	TotalCostCents float64
	// EvaluationTime is how long the policies and hooks took; Duration how
	// long the whole call took (evaluating, recording, checkpoints),
	// measured on the system clock.
	EvaluationTime, Duration time.Duration
	// Err is why the step could not be recorded, or the check failed.
	Err error
}

// WithObserver adds observers of every run of the runner (see Observer).
func WithObserver(obs ...Observer) Option {
	return func(cfg *config) error {
		for _, o := range obs {
			if o == nil {
				return errors.New("WithObserver: nil observer")
			}
			cfg.observers = append(cfg.observers, o)
		}
		return nil
	}
}

// WithLogger makes the runner log what its runs do through l: a run's
// start and each allowed step at Debug, a warning at Info, a stop by a
// policy at Warn, a failure (a step or an end the store could not
// record, a hook that failed) at Error, a run's end at Info. Records are
// attributes (run_id, tenant_id, step_index, policy_id, reason, ...),
// never the step's text. Without it the library logs nothing.
func WithLogger(l *slog.Logger) Option {
	return func(cfg *config) error {
		if l == nil {
			return errors.New("WithLogger: nil logger")
		}
		cfg.observers = append(cfg.observers, logObserver{l})
		return nil
	}
}

// notify calls f for each observer, dropping their panics.
func (r *Runner) notify(f func(Observer)) {
	for _, o := range r.cfg.observers {
		func() {
			defer func() { _ = recover() }()
			f(o)
		}()
	}
}

// observed reports whether the runner has observers, so that the step
// path measures and builds events only then.
func (r *Runner) observed() bool { return len(r.cfg.observers) > 0 }

// logObserver is the observer WithLogger installs.
type logObserver struct{ l *slog.Logger }

func (o logObserver) RunStarted(ctx context.Context, e RunEvent) {
	o.l.LogAttrs(ctx, slog.LevelDebug, "run started",
		slog.String("run_id", e.Run.RunID), slog.String("tenant_id", e.Run.TenantID),
		slog.String("snapshot_id", e.Run.SnapshotID), slog.String("status", string(e.Run.Status)))
}

func (o logObserver) StepDone(ctx context.Context, e StepEvent) {
	d := e.Evaluation.Decision
	attrs := []slog.Attr{
		slog.String("run_id", e.RunID), slog.String("tenant_id", e.TenantID),
		slog.Int("step_index", e.Index), slog.String("type", string(e.Input.Type)),
	}
	if e.Input.Tool != "" {
		attrs = append(attrs, slog.String("tool", e.Input.Tool))
	}
	switch {
	case e.Err != nil && !e.Inflection:
		attrs = append(attrs, slog.String("error", e.Err.Error()))
		o.l.LogAttrs(ctx, slog.LevelError, "step not recorded; the run failed closed", attrs...)
	case d.Action == prevention.Block:
		attrs = append(attrs, slog.String("policy_id", d.PolicyID), slog.String("source", string(d.Source)),
			slog.String("reason", string(d.Reason)), slog.String("incident_id", e.IncidentID), slog.String("message", d.Message))
		if d.Threshold != "" {
			attrs = append(attrs, slog.String("threshold", d.Threshold), slog.Float64("limit", d.Limit), slog.Float64("observed", d.Observed))
		}
		level := slog.LevelWarn
		if d.Reason == prevention.ReasonSystemFailure {
			level = slog.LevelError
		}
		if e.Err != nil {
			attrs = append(attrs, slog.String("error", e.Err.Error()))
			level = slog.LevelError
		}
		o.l.LogAttrs(ctx, level, "run stopped at a step", attrs...)
	case len(e.Evaluation.Findings) > 0:
		f := e.Evaluation.Findings[0]
		attrs = append(attrs, slog.Int("findings", len(e.Evaluation.Findings)), slog.String("policy_id", f.PolicyID),
			slog.String("enforcement", string(f.Enforcement)), slog.String("message", f.Message))
		o.l.LogAttrs(ctx, slog.LevelInfo, "step allowed with findings", attrs...)
	default:
		o.l.LogAttrs(ctx, slog.LevelDebug, "step allowed", attrs...)
	}
}

func (o logObserver) RunEnded(ctx context.Context, e RunEvent) {
	attrs := []slog.Attr{
		slog.String("run_id", e.Run.RunID), slog.String("tenant_id", e.Run.TenantID),
		slog.String("status", string(e.Run.Status)), slog.String("reason", string(e.Run.TerminationReason)),
		slog.Int("steps", e.Run.StepCount), slog.Int64("total_tokens", e.Run.TotalTokens),
		slog.Float64("total_cost_cents", e.Run.TotalCostCents),
	}
	if e.Err != nil {
		attrs = append(attrs, slog.String("error", e.Err.Error()))
		o.l.LogAttrs(ctx, slog.LevelError, "run end not recorded; the store shows it unfinished", attrs...)
		return
	}
	o.l.LogAttrs(ctx, slog.LevelInfo, "run ended", attrs...)
}
