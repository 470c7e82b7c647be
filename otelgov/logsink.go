package otelgov

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/sink"
)

// LogSink is a sink.Sink that emits each event — an incident, a run's end
// — as an OpenTelemetry log record, through the OpenTelemetry logs API:
// the program chooses the SDK, its processors and its exporters. The
// record is emitted when the sink.Dispatcher delivers the event from the
// outbox, never on a step's path; at least once into the LoggerProvider
// (what its processors do with it then is theirs: a batch processor
// exports it later, or drops it when its queue is full). A LogSink is
// safe for concurrent use.
//
// Records: event name "stopline.incident.created" (severity WARN, ERROR
// for an incident of severity critical) or "stopline.run.ended" (INFO,
// WARN when stopped by a policy, ERROR when failed); the time of the
// event (the run's end) as timestamp; a one-line body; attributes named
// as on the spans (stopline.run.id, stopline.tenant.id,
// stopline.snapshot.id, stopline.run.status, stopline.termination_reason,
// stopline.stopped_at_step, stopline.policy.id, stopline.incident.id,
// stopline.incident.severity, stopline.decision.reason,
// stopline.threshold, stopline.limit, stopline.observed,
// stopline.record.hash, stopline.run.steps, stopline.run.total_tokens,
// stopline.run.total_cost_cents) and stopline.event.id, the event's
// idempotency key. No step text and no run label is put on a record.
type LogSink struct {
	name   string
	logger log.Logger
}

var _ sink.Sink = (*LogSink)(nil)

// LogSinkOption configures a LogSink.
type LogSinkOption func(*logSinkConfig) error

type logSinkConfig struct {
	name string
	lp   log.LoggerProvider
}

// WithLoggerProvider sets where records go (default: the global
// LoggerProvider, otel.GetLoggerProvider).
func WithLoggerProvider(lp log.LoggerProvider) LogSinkOption {
	return func(c *logSinkConfig) error {
		if lp == nil {
			return errors.New("WithLoggerProvider: nil provider")
		}
		c.lp = lp
		return nil
	}
}

// WithSinkName names the sink in the outbox (default "otel-logs").
func WithSinkName(name string) LogSinkOption {
	return func(c *logSinkConfig) error {
		if name == "" {
			return errors.New("WithSinkName: empty name")
		}
		c.name = name
		return nil
	}
}

// NewLogSink returns a LogSink. Defaults: the global LoggerProvider, the
// name "otel-logs".
func NewLogSink(opts ...LogSinkOption) (*LogSink, error) {
	c := logSinkConfig{name: "otel-logs", lp: otel.GetLoggerProvider()}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return nil, fmt.Errorf("otelgov: NewLogSink: %w", err)
		}
	}
	return &LogSink{name: c.name, logger: c.lp.Logger(scopeName)}, nil
}

// Name implements sink.Sink.
func (s *LogSink) Name() string { return s.name }

// Deliver implements sink.Sink: it emits the event's record. An event
// whose body cannot be read fails for good (sink.ErrPermanent).
func (s *LogSink) Deliver(ctx context.Context, e sink.Event) error {
	p, err := e.Decode()
	if err != nil {
		return fmt.Errorf("otelgov: %w: %w", sink.ErrPermanent, err)
	}
	run := p.Data.Run
	var r log.Record
	r.SetEventName("stopline." + string(e.Type))
	r.SetTimestamp(p.Timestamp)
	r.SetObservedTimestamp(time.Now())
	attrs := []attribute.KeyValue{
		attribute.String("stopline.event.id", e.ID),
		keyTenantID.String(run.TenantID), keyRunID.String(run.RunID), keySnapshotID.String(run.SnapshotID),
		keyRunStatus.String(string(run.Status)), keyTerminationReason.String(string(run.TerminationReason)),
		keyRunSteps.Int(run.StepCount), keyRunTotalTokens.Int64(run.TotalTokens), keyRunTotalCost.Float64(run.TotalCostCents),
	}
	if run.StoppedAtStep != nil {
		attrs = append(attrs, keyStoppedAtStep.Int(*run.StoppedAtStep))
	}
	if run.ViolationPolicyID != "" {
		attrs = append(attrs, keyPolicyID.String(run.ViolationPolicyID))
	}
	if run.IncidentID != "" {
		attrs = append(attrs, keyIncidentID.String(run.IncidentID))
	}
	switch inc := p.Data.Incident; {
	case e.Type == sink.EventIncidentCreated && inc != nil:
		sev := log.SeverityWarn
		if inc.Severity == "critical" {
			sev = log.SeverityError
		}
		r.SetSeverity(sev)
		r.SetSeverityText(sev.String())
		r.SetBody(attribute.StringValue(fmt.Sprintf("incident %s: %s (run %s stopped at step %d)", inc.ID, inc.Title, run.RunID, inc.StepIndex)))
		attrs = append(attrs, attribute.String("stopline.incident.severity", string(inc.Severity)),
			keyReason.String(string(inc.Reason)), keyRecordHash.String(inc.RecordHash))
		if inc.Threshold != "" {
			attrs = append(attrs, keyThreshold.String(inc.Threshold), keyLimit.Float64(inc.Limit), keyObserved.Float64(inc.Observed))
		}
	default:
		sev := log.SeverityInfo
		switch run.Status {
		case governance.StatusFailedPolicy:
			sev = log.SeverityWarn
		case governance.StatusFailed:
			sev = log.SeverityError
		}
		r.SetSeverity(sev)
		r.SetSeverityText(sev.String())
		r.SetBody(attribute.StringValue(fmt.Sprintf("run %s ended: %s (%s) after %d steps", run.RunID, run.Status, run.TerminationReason, run.StepCount)))
		attrs = append(attrs, keyRecordHash.String(run.HeadHash))
	}
	r.AddAttributes(attrs...)
	s.logger.Emit(ctx, r)
	return nil
}
