// Package httpapi serves stopline's exports over HTTP, for an
// application to mount: evidence, SOC 2 and executive-debrief bundles of
// an incident (JSON or PDF), the evidence of any run, and reads of runs,
// explanations and incidents, every request scoped to the caller's
// tenant. The routes are those of the design:
//
//	POST /incidents/{id}/export/evidence
//	POST /incidents/{id}/export/soc2
//	POST /incidents/{id}/export/executive-debrief
//	POST /runs/{id}/export/evidence
//	GET  /runs/{id}, /runs/{id}/explain, /incidents/{id}
//
// Callers present an API token (package access) to TokenHandler, which
// takes the tenant, the role and the actor from it; Handler instead
// trusts a TenantFunc, such as a header set by an authenticating proxy.
//
//	auth, err := access.NewAuthenticator(store) // store: a governance.TokenStore
//	mux.Handle("/stopline/", http.StripPrefix("/stopline", httpapi.TokenHandler(exp, auth)))
//
// The smallest use, behind a proxy that authenticates callers and sets
// the tenant header:
//
//	exp, err := export.New(store, export.WithSigner(key), export.WithRenderer(renderer))
//	if err != nil { ... }
//	mux.Handle("/stopline/", http.StripPrefix("/stopline", httpapi.Handler(exp, httpapi.HeaderTenant("X-Stopline-Tenant"))))
//
// The handler is safe for concurrent use.
package httpapi
