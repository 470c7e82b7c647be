package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stopline/stopline/access"
)

// A token made on one replica is accepted by another at once, and a
// revocation on one is refused by the other at its next request: the
// authenticator keeps nothing in memory that could outlive the database.
func TestTokensAcrossReplicas(t *testing.T) {
	t.Parallel()
	url := newDatabase(t)
	a, b := openStore(t, url), openStore(t, url)
	secret, tok, err := access.Issue(ctx, a, access.TokenRequest{TenantID: "acme", Role: access.Operator, TTL: time.Hour, Name: "on-call"})
	if err != nil {
		t.Fatal(err)
	}
	authB, err := access.NewAuthenticator(b)
	if err != nil {
		t.Fatal(err)
	}
	p, err := authB.Authenticate(ctx, secret)
	if err != nil {
		t.Fatalf("replica b refuses a token made on replica a: %v", err)
	}
	if p.TenantID != "acme" || p.Role != access.Operator {
		t.Fatalf("replica b reads the token as %+v", p)
	}
	if _, err := a.RevokeToken(ctx, tok.ID, time.Now()); err != nil {
		t.Fatal(err)
	}
	_, err = authB.Authenticate(ctx, secret)
	var refused *access.RefusedError
	if !errors.Is(err, access.ErrUnauthenticated) || !errors.As(err, &refused) || refused.Reason != access.ReasonRevoked {
		t.Fatalf("replica b after a revocation on replica a: %v", err)
	}
}
