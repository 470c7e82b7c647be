package httpapi_test

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/httpapi"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/memstore"
)

// The handler serves a tenant's exports; another tenant's incident is
// not found. Behind a proxy that authenticates callers and sets the
// tenant header.
func ExampleHandler() {
	ctx := context.Background()
	store := memstore.New()
	clock := governance.NewFakeClock(time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC))
	runner, _ := governance.NewRunner(store, governance.WithClock(clock))
	snap, _ := snapshot.Parse("policy.json", []byte(`{"tenant_id": "acme", "thresholds": {},
	  "policies": [{"id": "tools", "kind": "tool_allowlist", "params": {"allow": ["search"]}}]}`), clock.Now(), runner.Kinds())
	run, _ := runner.Start(ctx, governance.StartOptions{Snapshot: snap})
	clock.Advance(time.Second)
	_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell"})
	var v *governance.Violation
	if !errors.As(err, &v) {
		fmt.Println("not stopped:", err)
		return
	}

	seed := sha256.Sum256([]byte("example"))
	key := ed25519.NewKeyFromSeed(seed[:])
	exp, _ := export.New(store, export.WithSigner(key), export.WithClock(clock))
	h := httpapi.Handler(exp, httpapi.HeaderTenant("X-Stopline-Tenant"))

	for _, tenant := range []string{"acme", "globex"} {
		req := httptest.NewRequest(http.MethodPost, "/incidents/"+v.IncidentID+"/export/evidence", nil)
		req.Header.Set("X-Stopline-Tenant", tenant)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(tenant+":", rec.Code, rec.Header().Get("Content-Type"))
		if rec.Code != http.StatusOK {
			continue
		}
		b, err := bundle.Verify(rec.Body.Bytes(), key.Public().(ed25519.PublicKey))
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println("verified:", b.Bundle.Type(), "exported by", b.Header().ExportedBy, "hash matches header:", b.Hash == rec.Header().Get("X-Stopline-Bundle-Hash"))
	}
	// Output:
	// acme: 200 application/json
	// verified: evidence exported by api hash matches header: true
	// globex: 404 application/json
}

// With API tokens, the token says the tenant and the role: a viewer reads
// but may not export.
func ExampleTokenHandler() {
	ctx := context.Background()
	store := memstore.New()
	exp, _ := export.New(store)
	auth, _ := access.NewAuthenticator(store)
	h := httpapi.TokenHandler(exp, auth)
	secret, _, _ := access.Issue(ctx, store, access.TokenRequest{TenantID: "acme", Role: access.Viewer, TTL: time.Hour})

	for _, c := range []struct{ method, path, secret string }{
		{http.MethodGet, "/runs/RUN-1", secret},
		{http.MethodPost, "/runs/RUN-1/export/evidence", secret},
		{http.MethodGet, "/runs/RUN-1", ""},
	} {
		req := httptest.NewRequest(c.method, c.path, nil)
		if c.secret != "" {
			req.Header.Set("Authorization", "Bearer "+c.secret)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		fmt.Println(c.method, c.path, rec.Code)
	}
	// Output:
	// GET /runs/RUN-1 404
	// POST /runs/RUN-1/export/evidence 403
	// GET /runs/RUN-1 401
}
