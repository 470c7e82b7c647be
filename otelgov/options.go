package otelgov

import (
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Option configures an Observer.
type Option func(*config) error

type config struct {
	tp       trace.TracerProvider
	mp       metric.MeterProvider
	content  bool
	labels   []string
	maxQueue int
}

func defaultConfig() config {
	return config{tp: otel.GetTracerProvider(), mp: otel.GetMeterProvider(), maxQueue: DefaultMaxQueue}
}

// WithTracerProvider sets where spans go (default: the global
// TracerProvider, otel.GetTracerProvider, as it is when New is called;
// until a program sets one, the global provider delegates to the one set
// later).
//
// The Observer's goroutine, not the step, waits for its span processors;
// a batch processor (sdktrace.WithBatcher) keeps that goroutine from
// waiting for the exporter.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(cfg *config) error {
		if tp == nil {
			return errors.New("WithTracerProvider: nil provider")
		}
		cfg.tp = tp
		return nil
	}
}

// WithMeterProvider sets where metrics go (default: the global
// MeterProvider, otel.GetMeterProvider).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return func(cfg *config) error {
		if mp == nil {
			return errors.New("WithMeterProvider: nil provider")
		}
		cfg.mp = mp
		return nil
	}
}

// WithContent puts each step's text on its span: stopline.step.input,
// stopline.step.output and stopline.step.metadata.KEY, as recorded (cut
// at the runner's WithMaxContentBytes, and then at the span limits of the
// TracerProvider). That text is whatever the agent, the model and the
// tools exchanged: it may be personal data, and with this option it
// leaves the process for wherever the spans are exported. Without it
// (the default) no step text, no metadata value and no run label is put
// on a span.
func WithContent() Option {
	return func(cfg *config) error {
		cfg.content = true
		return nil
	}
}

// WithLabels puts the run labels named by keys on the run's span, as
// stopline.run.label.KEY (default: none). Labels are what the caller
// passed in governance.StartOptions.Labels: name only labels that may be
// exported. A key must not be empty.
func WithLabels(keys ...string) Option {
	return func(cfg *config) error {
		for _, k := range keys {
			if strings.TrimSpace(k) == "" {
				return fmt.Errorf("WithLabels: empty key")
			}
			cfg.labels = append(cfg.labels, k)
		}
		return nil
	}
}

// WithMaxQueue sets how many events may wait for the Observer's
// goroutine (default DefaultMaxQueue, 2048). Beyond it events are dropped
// (and counted, through otel.Handle), never waited for: the start of a
// run, with all its steps, or a step. n must be positive.
func WithMaxQueue(n int) Option {
	return func(cfg *config) error {
		if n <= 0 {
			return fmt.Errorf("WithMaxQueue: %d is not positive", n)
		}
		cfg.maxQueue = n
		return nil
	}
}
