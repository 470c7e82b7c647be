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

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/console"
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
	defaultRoleHeader   = "X-Stopline-Role"
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
	var addr, tenantHeader, actorHeader, roleHeader, signKey string
	var trustHeader bool
	var limits serveLimits
	var sf sinkFlags
	return &command{
		name:     "serve",
		section:  "Server",
		synopsis: "[--addr HOST:PORT] [--trust-tenant-header [--tenant-header NAME] [--role-header NAME] [--actor-header NAME]] [--sign-key FILE] [--webhook URL [--webhook-bundles]] [--log-level LEVEL]",
		summary:  "serve the HTTP API and the web console",
		desc: `Serves the HTTP API of the export/httpapi package and the web console
(/console/) over the database:

  POST /incidents/{id}/export/evidence           ?format=json|pdf (default json)
  POST /incidents/{id}/export/soc2               ?format=pdf|json (default pdf) &from=RFC3339&to=RFC3339
  POST /incidents/{id}/export/executive-debrief  ?format=pdf|json (default pdf)
  POST /runs/{id}/export/evidence                ?format=json|pdf (default json)
  GET  /runs/{id}
  GET  /runs/{id}/explain                        ?at=RFC3339 (default: now)
  GET  /incidents/{id}
  POST /policies                                 the policy file as the body; ?note= (admin tokens)

Exports also take reason=, content=true and (SOC2) notes=. Errors are JSON
{"error": "..."}.

By default every request needs an API token (stopline token create), as
"Authorization: Bearer stl_..." for the API, or pasted into the console's
sign-in page: the token says the tenant, the role and who acts (recorded in
bundles and the export log as "token:TOK-... (name)"). A viewer reads, an
auditor also exports, an operator also acknowledges and resolves incidents,
an admin also publishes policy sets and revokes the tenant's tokens.
A missing, unknown, expired or revoked token is refused (401), a role that
does not allow the route too (403), each logged with its reason; another
tenant's runs and incidents are not found (404), exactly as absent ones.

--trust-tenant-header instead takes the tenant from a request header, by
default X-Stopline-Tenant (--tenant-header), the console's role from
X-Stopline-Role (--role-header) and who acts from X-Stopline-Actor
(--actor-header; "api" when absent). A request that carries one of them twice,
or joined values ("a, b"), is refused. The headers are trusted as they are:
use it only behind a proxy that authenticates callers and sets (or strips)
them itself, and keep --addr on a private interface.

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
			"curl -X POST -H \"Authorization: Bearer $STOPLINE_TOKEN\" http://127.0.0.1:8080/incidents/INC-9d1c2b3a4f5e6d7c/export/evidence -o evidence.json",
		},
		maxArgs: 0, store: true, logs: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&addr, "addr", "127.0.0.1:8080", "listen on `HOST:PORT`")
			fs.BoolVar(&trustHeader, "trust-tenant-header", false, "take tenant, role and actor from headers an authenticating proxy sets, instead of tokens")
			fs.StringVar(&tenantHeader, "tenant-header", defaultTenantHeader, "with --trust-tenant-header: take each request's tenant from the header `NAME`")
			fs.StringVar(&roleHeader, "role-header", defaultRoleHeader, "with --trust-tenant-header: take the console's role from the header `NAME`")
			fs.StringVar(&actorHeader, "actor-header", defaultActorHeader, "with --trust-tenant-header: take who acts from the header `NAME`")
			fs.DurationVar(&limits.read, "read-timeout", defaultReadTimeout, "bound on reading a whole request (`DURATION`)")
			fs.DurationVar(&limits.write, "write-timeout", defaultWriteTimeout, "bound on writing an answer (`DURATION`)")
			fs.StringVar(&signKey, "sign-key", "", "sign exported bundles with this ed25519 private key `FILE` (from stopline keygen)")
			sf.register(fs, false)
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if tenantHeader == "" || actorHeader == "" || roleHeader == "" {
				return usagef("--tenant-header, --role-header and --actor-header must name a header")
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
				// Admins publish policy sets through the API and the console,
				// compiled with the kinds the command runs.
				runner, err := governance.NewRunner(st, governance.WithKinds(commandKinds), governance.WithoutKillSwitch())
				if err != nil {
					return err
				}
				logs := []httpapi.Option{httpapi.WithErrorLog(requestFailed), httpapi.WithRefusalLog(requestRefused), httpapi.WithPublisher(runner)} // logged with the request: log.go
				consoleOpts := []console.Option{console.WithLogger(tel.log), console.WithPublisher(runner)}
				var api http.Handler
				mode := []any{"auth", "token"}
				if trustHeader {
					api = httpapi.Handler(exp, httpapi.HeaderTenant(tenantHeader), append(logs, httpapi.WithActor(httpapi.HeaderActor(actorHeader)))...)
					consoleOpts = append(consoleOpts, console.WithTrustedHeaders(tenantHeader, roleHeader, actorHeader))
					mode = []any{"auth", "trusted-header", "tenant_header", tenantHeader}
				} else {
					ts, ok := st.(governance.TokenStore)
					if !ok {
						return fmt.Errorf("%s (%T) keeps no API tokens: serve needs governance.TokenStore, or --trust-tenant-header behind an authenticating proxy", e.db, st)
					}
					auth, err := access.NewAuthenticator(ts)
					if err != nil {
						return err
					}
					api = httpapi.TokenHandler(exp, auth, logs...)
					consoleOpts = append(consoleOpts, console.WithTokens(auth))
				}
				// The approvals queue and the kill switch, where the store keeps them.
				if _, ok := st.(governance.HoldStore); ok {
					consoleOpts = append(consoleOpts, console.WithExtension(console.Approvals(st)))
				}
				if _, ok := st.(governance.KillStore); ok {
					consoleOpts = append(consoleOpts, console.WithExtension(console.KillSwitches(st)))
				}
				con, err := console.New(exp, consoleOpts...)
				if err != nil {
					return err
				}
				mux := http.NewServeMux()
				mux.Handle("/console/", con)
				mux.Handle("GET /{$}", http.RedirectHandler("/console/", http.StatusSeeOther))
				mux.Handle("/", api)
				return serveHTTP(ctx, tel, addr, mode, limits, mux)
			})
		},
	}
}

// serveLimits are the timeouts a flag can change.
type serveLimits struct{ read, write time.Duration }

func serveHTTP(ctx context.Context, tel *telemetry, addr string, mode []any, limits serveLimits, h http.Handler) error {
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
	tel.log.Info("serve: listening", append([]any{"url", "http://" + ln.Addr().String(), "console", "http://" + ln.Addr().String() + "/console/"}, mode...)...)
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
