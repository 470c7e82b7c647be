package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/governance"
)

// DefaultTenantHeader is the request header serve takes the tenant from.
const defaultTenantHeader = "X-Stopline-Tenant"

// shutdownGrace bounds how long serve waits for requests in flight after
// SIGINT or SIGTERM.
const shutdownGrace = 15 * time.Second

func serveCmd() *command {
	var addr, tenantHeader, signKey string
	return &command{
		name:     "serve",
		section:  "Server",
		synopsis: "[--addr HOST:PORT] [--tenant-header NAME] [--sign-key FILE]",
		summary:  "serve the HTTP API: exports, runs, explanations, incidents",
		desc: `Serves the HTTP API of the export package over the database:

  POST /incidents/{id}/export/evidence           ?format=json|pdf (default json)
  POST /incidents/{id}/export/soc2               ?format=pdf|json (default pdf) &from=RFC3339&to=RFC3339
  POST /incidents/{id}/export/executive-debrief  ?format=pdf|json (default pdf)
  POST /runs/{id}/export/evidence                ?format=json|pdf (default json)
  GET  /runs/{id}
  GET  /runs/{id}/explain                        ?at=RFC3339 (default: now)
  GET  /incidents/{id}

Exports also take reason=, content=true and (SOC2) notes=; the exporter is
the X-Stopline-Actor header (default "api"). Errors are JSON {"error": "..."}.

The tenant of every request is taken from a request header, by default
X-Stopline-Tenant (--tenant-header): a request without it is refused (401), and
another tenant's runs and incidents are not found (404). The header is trusted
as is: run serve behind a proxy that authenticates callers and sets (or
strips) that header itself, and keep --addr on a private interface.

SIGINT or SIGTERM stops accepting connections and waits up to 15 s for
requests in flight. Server errors are logged on stderr.`,
		examples: []string{
			"stopline serve --addr 127.0.0.1:8080 --sign-key export.key",
			"curl -X POST -H 'X-Stopline-Tenant: acme' http://127.0.0.1:8080/incidents/INC-9d1c2b3a4f5e6d7c/export/evidence -o evidence.json",
		},
		maxArgs: 0, store: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&addr, "addr", "127.0.0.1:8080", "listen on `HOST:PORT`")
			fs.StringVar(&tenantHeader, "tenant-header", defaultTenantHeader, "take each request's tenant from the header `NAME`")
			fs.StringVar(&signKey, "sign-key", "", "sign exported bundles with this ed25519 private key `FILE` (from stopline keygen)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if tenantHeader == "" {
				return usagef("--tenant-header must name a header")
			}
			var opts []export.Option
			if signKey != "" {
				key, err := export.ReadPrivateKeyFile(signKey)
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
				h := export.Handler(exp, export.HeaderTenant(tenantHeader),
					export.WithErrorLog(func(r *http.Request, err error) {
						fmt.Fprintf(e.stderr, "stopline serve: %s %s: %s\n", r.Method, r.URL.Path, oneLine(err.Error()))
					}))
				return serveHTTP(ctx, e, addr, tenantHeader, h)
			})
		},
	}
}

func serveHTTP(ctx context.Context, e *env, addr, tenantHeader string, h http.Handler) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(e.stderr, "stopline serve: listening on http://%s (tenant from the %s header)\n", ln.Addr(), tenantHeader)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	fmt.Fprintf(e.stderr, "stopline serve: shutting down\n")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
