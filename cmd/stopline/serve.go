package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/httpapi"
	"github.com/stopline/stopline/export/pdf"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/sink"
)

// The request headers serve takes the tenant and the exporter from.
const (
	defaultTenantHeader = "X-Stopline-Tenant"
	defaultActorHeader  = "X-Stopline-Actor"
)

// Bounds on each request and connection, so that a slow or idle client
// cannot hold a connection (and its goroutine) open: the request's
// headers must arrive within 10 s and the whole request within
// --read-timeout; the answer must be written within --write-timeout (an
// export of a long run takes seconds); an idle keep-alive connection is
// closed after 2 minutes. No route reads a body: one over 64 KiB is
// refused, and so are headers over 64 KiB.
const (
	readHeaderTimeout   = 10 * time.Second
	defaultReadTimeout  = 30 * time.Second
	defaultWriteTimeout = 5 * time.Minute
	idleTimeout         = 2 * time.Minute
	maxBodyBytes        = 64 << 10
	maxHeaderBytes      = 64 << 10
)

// shutdownGrace bounds how long serve waits for requests in flight after
// SIGINT or SIGTERM.
const shutdownGrace = 15 * time.Second

func serveCmd() *command {
	var addr, tenantHeader, actorHeader, signKey string
	var limits serveLimits
	var sf sinkFlags
	return &command{
		name:     "serve",
		section:  "Server",
		synopsis: "[--addr HOST:PORT] [--tenant-header NAME] [--actor-header NAME] [--sign-key FILE] [--webhook URL [--webhook-bundles]] [--log-level LEVEL]",
		summary:  "serve the HTTP API: exports, runs, explanations, incidents",
		desc: `Serves the HTTP API of the export/httpapi package over the database:

  POST /incidents/{id}/export/evidence           ?format=json|pdf (default json)
  POST /incidents/{id}/export/soc2               ?format=pdf|json (default pdf) &from=RFC3339&to=RFC3339
  POST /incidents/{id}/export/executive-debrief  ?format=pdf|json (default pdf)
  POST /runs/{id}/export/evidence                ?format=json|pdf (default json)
  GET  /runs/{id}
  GET  /runs/{id}/explain                        ?at=RFC3339 (default: now)
  GET  /incidents/{id}

Exports also take reason=, content=true and (SOC2) notes=; who exported is
taken from the X-Stopline-Actor header (--actor-header; "api" when absent) and
recorded in the bundle and the export log. Errors are JSON {"error": "..."}.

The tenant of every request is taken from a request header, by default
X-Stopline-Tenant (--tenant-header): a request without it is refused (401), and
another tenant's runs and incidents are not found (404). A request that
carries the tenant or actor header twice, or joined values ("a, b"), is
refused. Both headers are trusted as they are: run serve behind a proxy that
authenticates callers and sets (or strips) them itself, and keep --addr on a
private interface.

Each request's headers must arrive within 10 s and the whole request within
--read-timeout (30 s); the answer must be written within --write-timeout
(5 min); idle connections close after 2 minutes; request bodies over 64 KiB
and headers over 64 KiB are refused.

SIGINT or SIGTERM stops accepting connections and waits up to 15 s for
requests in flight.

It logs on stderr (--log-level, default info): where it listens, each
request it refuses (4xx, info) or fails (5xx, error, with the error), each
one answered (debug), its shutdown. With OTEL_TRACES_EXPORTER or
OTEL_METRICS_EXPORTER (otlp, console), each request is a server span, joining
the caller's traceparent, and http.server.* metrics.

With --webhook URL, serve also delivers the database's outbox in the
background: the incidents and run ends that runs recorded with deliveries
for the webhook (stopline run --webhook, or a program whose runner has a
sink.Dispatcher with a webhook named "webhook"), at least once, retried with
backoff, signed as Standard Webhooks with the secret in
$STOPLINE_WEBHOOK_SECRET or --webhook-secret-file FILE. Several serve
processes on one PostgreSQL database never deliver the same one at once.
With --webhook-bundles, each incident's webhook also carries its run's
evidence bundle (data.bundle: the sealed JSON envelope, signed with
--sign-key when given), recorded in the export log as handed to the webhook.`,
		examples: []string{
			"stopline serve --addr 127.0.0.1:8080 --sign-key export.key",
			"curl -X POST -H 'X-Stopline-Tenant: acme' http://127.0.0.1:8080/incidents/INC-9d1c2b3a4f5e6d7c/export/evidence -o evidence.json",
		},
		maxArgs: 0, store: true, logs: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&addr, "addr", "127.0.0.1:8080", "listen on `HOST:PORT`")
			fs.StringVar(&tenantHeader, "tenant-header", defaultTenantHeader, "take each request's tenant from the header `NAME`")
			fs.StringVar(&actorHeader, "actor-header", defaultActorHeader, "take who exports from the header `NAME`")
			fs.DurationVar(&limits.read, "read-timeout", defaultReadTimeout, "bound on reading a whole request (`DURATION`)")
			fs.DurationVar(&limits.write, "write-timeout", defaultWriteTimeout, "bound on writing an answer (`DURATION`)")
			fs.StringVar(&signKey, "sign-key", "", "sign exported bundles with this ed25519 private key `FILE` (from stopline keygen)")
			sf.register(fs, false)
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if tenantHeader == "" || actorHeader == "" {
				return usagef("--tenant-header and --actor-header must name a header")
			}
			if limits.read <= 0 || limits.write <= 0 {
				return usagef("--read-timeout and --write-timeout must be positive")
			}
			sinks, err := sf.sinks(e)
			if err != nil {
				return err
			}
			tel, err := startTelemetry(ctx, e, "serve") // telemetry.go: --log-level, OTEL_*
			if err != nil {
				return err
			}
			defer tel.shutdown(ctx)
			logSinks, err := tel.sinks() // OTEL_LOGS_EXPORTER
			if err != nil {
				return err
			}
			sinks = append(sinks, logSinks...)
			renderer, err := pdf.New()
			if err != nil {
				return err
			}
			opts := []export.Option{export.WithRenderer(renderer)}
			if signKey != "" {
				key, err := bundle.ReadPrivateKeyFile(signKey)
				if err != nil {
					return fmt.Errorf("--sign-key: %w", err)
				}
				opts = append(opts, export.WithSigner(key))
			}
			return withStore(ctx, e, false, func(st governance.Store) error {
				exp, err := export.New(st, opts...)
				if err != nil {
					return err
				}
				var dopts []sink.Option
				if sf.bundles {
					dopts = append(dopts, sink.WithBundles(evidenceBundles(exp)))
				}
				d, err := startDispatcher(ctx, tel, st, sinks, dopts...) // sinks.go
				if err != nil {
					return err
				}
				if d != nil {
					defer d.stop()
				}
				h := httpapi.Handler(exp, httpapi.HeaderTenant(tenantHeader),
					httpapi.WithActor(httpapi.HeaderActor(actorHeader)),
					httpapi.WithErrorLog(requestFailed)) // logged with the request: log.go
				return serveHTTP(ctx, tel, addr, tenantHeader, limits, h)
			})
		},
	}
}

// serveLimits are the timeouts a flag can change.
type serveLimits struct{ read, write time.Duration }

func serveHTTP(ctx context.Context, tel *telemetry, addr, tenantHeader string, limits serveLimits, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           tel.handler(limitBodies(h)),
		ErrorLog:          slog.NewLogLogger(tel.log.Handler(), slog.LevelWarn),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       limits.read,
		WriteTimeout:      limits.write,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
	}
	tel.log.Info("serve: listening", "url", "http://"+ln.Addr().String(), "tenant_header", tenantHeader)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	tel.log.Info("serve: shutting down", "grace", shutdownGrace)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}

// limitBodies refuses a request whose body is declared over maxBodyBytes
// (413) and cuts one that turns out longer.
func limitBodies(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxBodyBytes {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			fmt.Fprintf(w, "{\"error\":\"request body over %d bytes\"}\n", maxBodyBytes)
			return
		}
		// As http.MaxBytesHandler, which also serves a copy of the
		// request; and the route matched, for the telemetry around.
		limited := *r
		limited.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		h.ServeHTTP(w, &limited)
		r.Pattern = limited.Pattern
	})
}
