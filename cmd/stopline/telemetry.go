package main

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutlog"
	"go.opentelemetry.io/otel/exporters/stdout/stdoutmetric"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/otelgov"
	"github.com/stopline/stopline/sink"
)

// telemetry is what run and serve log and export: the command's logger,
// and the OpenTelemetry tracing and metrics the standard environment
// variables ask for.
//
//	OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER, OTEL_LOGS_EXPORTER  a
//	    comma-separated list of otlp (OTLP over HTTP/protobuf:
//	    otlptracehttp, otlpmetrichttp and otlploghttp, which read
//	    OTEL_EXPORTER_OTLP_* themselves), console (JSON on stderr) and
//	    none; unset: none. An unknown value is a warning. Logs are the
//	    incidents and run ends, delivered from the outbox as log records
//	    (otelgov.LogSink).
//	OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES  the resource (default
//	    service.name stopline).
//	OTEL_SDK_DISABLED=true  no telemetry at all.
//	TRACEPARENT, TRACESTATE  (run) the trace the run's span joins.
//	OTEL_BSP_*, OTEL_METRIC_EXPORT_*  read by the SDK.
//
// Spans go through a batch processor and metrics through a periodic
// reader, so that an exporter that blocks or fails holds back neither
// otelgov's goroutine nor serve's requests (a step never waits for them:
// otelgov, "Bounded delay"). shutdown flushes both, for at most
// telemetryShutdown.
type telemetry struct {
	log   *slog.Logger
	level slog.Level
	tp    *sdktrace.TracerProvider // nil: no traces
	mp    *sdkmetric.MeterProvider // nil: no metrics
	lp    *sdklog.LoggerProvider   // nil: no log records
	obs   *otelgov.Observer        // run's, if any: shut down first
	env   func(string) string      // OTEL_* variables the SDK reads itself come from the process's environment
}

// telemetryShutdown bounds how long a command waits, when it ends, for
// its spans and metrics to be exported.
const telemetryShutdown = 5 * time.Second

// startTelemetry sets up the logger of the command cmd and the
// OpenTelemetry providers its environment asks for. Stop it with
// shutdown.
func startTelemetry(ctx context.Context, e *env, cmd string) (*telemetry, error) {
	log, level, err := newLogger(e, cmd)
	if err != nil {
		return nil, err
	}
	t := &telemetry{log: log, level: level, env: e.getenv}
	if strings.EqualFold(strings.TrimSpace(e.getenv("OTEL_SDK_DISABLED")), "true") {
		return t, nil
	}
	traces := t.exporters("OTEL_TRACES_EXPORTER")
	metrics := t.exporters("OTEL_METRICS_EXPORTER")
	logs := t.exporters("OTEL_LOGS_EXPORTER")
	if len(traces) == 0 && len(metrics) == 0 && len(logs) == 0 {
		return t, nil
	}
	// Exporters report what they could not send to otel's error handler:
	// a warning on stderr, never the command's failure.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("telemetry: export failed", "error", oneLine(err.Error()))
	}))
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "stopline"), attribute.String("service.version", buildVersion().Version)),
		resource.WithTelemetrySDK(),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES: after the defaults, so that they win
	)
	if err != nil {
		log.Warn("telemetry: resource", "error", oneLine(err.Error()))
	}
	var procs []sdktrace.TracerProviderOption
	for _, name := range traces {
		var exp sdktrace.SpanExporter
		switch name {
		case "console":
			exp, err = stdouttrace.New(stdouttrace.WithWriter(e.stderr))
		case "otlp":
			t.checkProtocol("TRACES")
			exp, err = otlptracehttp.New(ctx)
		}
		if err != nil {
			t.shutdown(ctx)
			return nil, err
		}
		procs = append(procs, sdktrace.WithBatcher(exp))
	}
	if len(procs) > 0 {
		t.tp = sdktrace.NewTracerProvider(append(procs, sdktrace.WithResource(res))...)
	}
	var readers []sdkmetric.Option
	for _, name := range metrics {
		var exp sdkmetric.Exporter
		switch name {
		case "console":
			exp, err = stdoutmetric.New(stdoutmetric.WithWriter(e.stderr))
		case "otlp":
			t.checkProtocol("METRICS")
			exp, err = otlpmetrichttp.New(ctx)
		}
		if err != nil {
			t.shutdown(ctx)
			return nil, err
		}
		readers = append(readers, sdkmetric.WithReader(sdkmetric.NewPeriodicReader(exp)))
	}
	if len(readers) > 0 {
		t.mp = sdkmetric.NewMeterProvider(append(readers, sdkmetric.WithResource(res))...)
	}
	var lprocs []sdklog.LoggerProviderOption
	for _, name := range logs {
		var exp sdklog.Exporter
		switch name {
		case "console":
			exp, err = stdoutlog.New(stdoutlog.WithWriter(e.stderr))
		case "otlp":
			t.checkProtocol("LOGS")
			exp, err = otlploghttp.New(ctx)
		}
		if err != nil {
			t.shutdown(ctx)
			return nil, err
		}
		lprocs = append(lprocs, sdklog.WithProcessor(sdklog.NewBatchProcessor(exp)))
	}
	if len(lprocs) > 0 {
		t.lp = sdklog.NewLoggerProvider(append(lprocs, sdklog.WithResource(res))...)
	}
	return t, nil
}

// sinks are the sinks telemetry adds: the OpenTelemetry log sink when
// OTEL_LOGS_EXPORTER names an exporter.
func (t *telemetry) sinks() ([]sink.Sink, error) {
	if t.lp == nil {
		return nil, nil
	}
	ls, err := otelgov.NewLogSink(otelgov.WithLoggerProvider(t.lp))
	if err != nil {
		return nil, err
	}
	return []sink.Sink{ls}, nil
}

// exporters reads an OTEL_*_EXPORTER variable: the exporters it names
// that the command has, in order, once each. Unset is none (the
// specification's default is otlp: the command sends nothing unless
// asked).
func (t *telemetry) exporters(name string) []string {
	var out []string
	for _, v := range strings.Split(t.env(name), ",") {
		v = strings.ToLower(strings.TrimSpace(v))
		switch v {
		case "":
		case "none":
			return nil
		case "otlp", "console":
			if !contains(out, v) {
				out = append(out, v)
			}
		default:
			t.log.Warn("telemetry: unknown exporter, ignored (want otlp, console or none)", "variable", name, "value", v)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// checkProtocol warns when OTEL_EXPORTER_OTLP_[SIGNAL_]PROTOCOL asks for
// another protocol than HTTP/protobuf, the one the command sends.
func (t *telemetry) checkProtocol(signal string) {
	for _, name := range []string{"OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"} {
		if v := strings.TrimSpace(t.env(name)); v != "" {
			if v != "http/protobuf" {
				t.log.Warn("telemetry: unsupported OTLP protocol, ignored: sending http/protobuf", "variable", name, "value", v)
			}
			return
		}
	}
}

// runnerOptions are the options that make a runner log (at info and
// debug: at warn and error the command's own output already says what
// the runner would log) and export its runs.
func (t *telemetry) runnerOptions() ([]governance.Option, error) {
	var opts []governance.Option
	if t.level <= slog.LevelInfo {
		opts = append(opts, governance.WithLogger(t.log))
	}
	if t.tp == nil && t.mp == nil {
		return opts, nil
	}
	var tp trace.TracerProvider = tracenoop.NewTracerProvider()
	var mp metric.MeterProvider = metricnoop.NewMeterProvider()
	if t.tp != nil {
		tp = t.tp
	}
	if t.mp != nil {
		mp = t.mp
	}
	obs, err := otelgov.New(otelgov.WithTracerProvider(tp), otelgov.WithMeterProvider(mp))
	if err != nil {
		return nil, err
	}
	t.obs = obs
	return append(opts, governance.WithObserver(obs)), nil
}

// runContext is ctx carrying the trace context of the TRACEPARENT and
// TRACESTATE environment variables, if set: the run's span joins the
// trace of whatever started the command.
func (t *telemetry) runContext(ctx context.Context) context.Context {
	if t.tp == nil {
		return ctx
	}
	return propagation.TraceContext{}.Extract(ctx, envCarrier{
		"traceparent": t.env("TRACEPARENT"), "tracestate": t.env("TRACESTATE"),
	})
}

// envCarrier carries trace context read from the environment.
type envCarrier map[string]string

func (c envCarrier) Get(key string) string { return c[key] }
func (c envCarrier) Set(key, value string) { c[key] = value }
func (c envCarrier) Keys() []string {
	keys := make([]string, 0, len(c))
	for k := range c {
		keys = append(keys, k)
	}
	return keys
}

// handler wraps serve's handler: each request logged (logRequests), and
// traced and measured (otelhttp: a server span joining the caller's
// trace context, http.server.* metrics) when telemetry is on.
func (t *telemetry) handler(h http.Handler) http.Handler {
	if t.tp != nil || t.mp != nil {
		var opts []otelhttp.Option
		if t.tp != nil {
			opts = append(opts, otelhttp.WithTracerProvider(t.tp))
			opts = append(opts, otelhttp.WithPropagators(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})))
		}
		if t.mp != nil {
			opts = append(opts, otelhttp.WithMeterProvider(t.mp))
		}
		h = otelhttp.NewHandler(h, "stopline serve", opts...)
	}
	return logRequests(t.log, h)
}

// shutdown hands what the observer queued to the providers, then flushes
// and stops them, waiting at most telemetryShutdown in all (an exporter
// that ignores its context can hold a provider's shutdown longer: the
// command does not wait for it). What could not be flushed is a warning;
// the command's outcome stays.
func (t *telemetry) shutdown(ctx context.Context) {
	if t.tp == nil && t.mp == nil && t.lp == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), telemetryShutdown)
	defer cancel()
	var errs []error
	if t.obs != nil {
		errs = append(errs, t.obs.Shutdown(ctx))
	}
	errc := make(chan error, 3)
	n := 0
	if t.lp != nil {
		n++
		go func() { errc <- t.lp.Shutdown(ctx) }()
	}
	if t.tp != nil {
		n++
		go func() { errc <- t.tp.Shutdown(ctx) }()
	}
	if t.mp != nil {
		n++
		go func() { errc <- t.mp.Shutdown(ctx) }()
	}
	for range n {
		select {
		case err := <-errc:
			errs = append(errs, err)
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
		}
		if ctx.Err() != nil {
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		t.log.Warn("telemetry: not all spans, metrics and log records were exported", "error", oneLine(err.Error()))
	}
}
