package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// What run and serve log goes to stderr through log/slog, as text
// (time=… level=… msg=… key=value …), from the level given by
// --log-level, else $STOPLINE_LOG_LEVEL, else warn (info for serve).
// Data stays on stdout, and a command's error stays its one line on
// stderr: a log record never replaces it.

// defaultLogLevel is the level a command logs from when neither the
// flag nor the environment sets one.
func defaultLogLevel(cmd string) string {
	if cmd == "serve" {
		return "info"
	}
	return "warn"
}

// logLevels are the levels --log-level and $STOPLINE_LOG_LEVEL accept.
var logLevels = map[string]slog.Level{
	"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "error": slog.LevelError,
}

// newLogger returns the logger of the command cmd and its level. A level
// it does not know is a usage error.
func newLogger(e *env, cmd string) (*slog.Logger, slog.Level, error) {
	name, from := e.logLevel, "--log-level"
	if name == "" {
		name, from = e.getenv("STOPLINE_LOG_LEVEL"), "STOPLINE_LOG_LEVEL"
	}
	if name == "" {
		name = defaultLogLevel(cmd)
	}
	level, ok := logLevels[strings.ToLower(strings.TrimSpace(name))]
	if !ok {
		return nil, 0, usagef("%s %q: want debug, info, warn or error", from, name)
	}
	return slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: level})), level, nil
}

// logRequests logs each request serve answers: refused (4xx) at info,
// failed (5xx) at error with the error WithErrorLog reported, answered at
// debug; each with its method, path, status and duration.
func logRequests(log *slog.Logger, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		failure := new(error)
		r2 := r.WithContext(context.WithValue(r.Context(), requestErrKey{}, failure))
		h.ServeHTTP(rec, r2)
		r.Pattern = r2.Pattern // the route matched, for the telemetry around
		status := rec.status
		if status == 0 {
			status = http.StatusOK
		}
		level, msg := slog.LevelDebug, "request answered"
		switch {
		case status >= 500:
			level, msg = slog.LevelError, "request failed"
		case status >= 400:
			level, msg = slog.LevelInfo, "request refused"
		}
		if !log.Enabled(r.Context(), level) {
			return
		}
		attrs := []slog.Attr{
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
		}
		if *failure != nil {
			key := "error"
			if status < 500 {
				key = "reason"
			}
			attrs = append(attrs, slog.String(key, oneLine((*failure).Error())))
		}
		log.LogAttrs(r.Context(), level, msg, attrs...)
	})
}

// requestErrKey is the context key of where a request's server error is
// kept, for its log record.
type requestErrKey struct{}

// requestFailed keeps the error of a request that failed (the handler's
// WithErrorLog) for its log record.
func requestFailed(r *http.Request, err error) {
	if p, ok := r.Context().Value(requestErrKey{}).(*error); ok {
		*p = err
	}
}

// requestRefused keeps why a request was refused (the handler's
// WithRefusalLog) for its log record.
func requestRefused(r *http.Request, _ int, reason error) { requestFailed(r, reason) }

// statusRecorder notes the status a handler answers with.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
