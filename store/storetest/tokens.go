package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/governance"
)

// Token tests run on stores that implement governance.TokenStore, and are
// skipped on others (whose users then authenticate callers otherwise).

func tokensOf(t *testing.T, st governance.Store) governance.TokenStore {
	t.Helper()
	ts, ok := st.(governance.TokenStore)
	if !ok {
		t.Skipf("%T keeps no API tokens (does not implement governance.TokenStore)", st)
	}
	return ts
}

func sampleToken(id, tenant, role string, created time.Time) governance.Token {
	return governance.Token{
		ID: id, TenantID: tenant, Name: "token " + id, Role: role,
		SecretHash: fmt.Sprintf("%064x", []byte(id))[:64],
		CreatedAt:  created, CreatedBy: "storetest", ExpiresAt: created.Add(90 * 24 * time.Hour),
	}
}

// testTokens: a token reads back as stored, from any tenant's id; lists
// are per tenant, oldest first; duplicates are refused; revocation is
// kept once; unknown ids are not found.
func testTokens(t *testing.T, open Opener) {
	ts := tokensOf(t, open(t))
	a1 := sampleToken("TOK-0001", "acme", "viewer", T0)
	a2 := sampleToken("TOK-0002", "acme", "admin", T0.Add(time.Minute))
	g1 := sampleToken("TOK-0003", "globex", "operator", T0.Add(30*time.Second))
	for _, tok := range []governance.Token{a2, a1, g1} {
		if err := ts.CreateToken(ctx, tok); err != nil {
			t.Fatalf("CreateToken %s: %v", tok.ID, err)
		}
	}
	got, err := ts.Token(ctx, "TOK-0003")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(g1, got); d != "" {
		t.Errorf("Token(TOK-0003) differs from what was stored (-want +got):\n%s", d)
	}
	dup := sampleToken("TOK-0001", "globex", "viewer", T0)
	dup.SecretHash = fmt.Sprintf("%064d", 7)
	if err := ts.CreateToken(ctx, dup); !errors.Is(err, governance.ErrTokenExists) {
		t.Errorf("CreateToken with a stored id: %v, want ErrTokenExists", err)
	}
	sameHash := sampleToken("TOK-0009", "globex", "viewer", T0)
	sameHash.SecretHash = a1.SecretHash
	if err := ts.CreateToken(ctx, sameHash); !errors.Is(err, governance.ErrTokenExists) {
		t.Errorf("CreateToken with a stored secret hash: %v, want ErrTokenExists", err)
	}
	noExpiry := sampleToken("TOK-0010", "acme", "viewer", T0)
	noExpiry.ExpiresAt = time.Time{}
	if err := ts.CreateToken(ctx, noExpiry); err == nil {
		t.Error("CreateToken without an expiry: stored, want an error")
	}
	if _, err := ts.Token(ctx, "TOK-0010"); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("Token of a refused token: %v, want ErrNotFound", err)
	}

	ids := func(tenant string) []string {
		t.Helper()
		list, err := ts.Tokens(ctx, tenant)
		if err != nil {
			t.Fatal(err)
		}
		out := []string{}
		for _, tok := range list {
			out = append(out, tok.ID)
		}
		return out
	}
	if d := cmp.Diff([]string{"TOK-0001", "TOK-0002"}, ids("acme")); d != "" {
		t.Errorf("Tokens(acme) (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"TOK-0001", "TOK-0003", "TOK-0002"}, ids("")); d != "" {
		t.Errorf("Tokens(every tenant) (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{}, ids("initech")); d != "" {
		t.Errorf("Tokens(initech) (-want +got):\n%s", d)
	}

	at := T0.Add(time.Hour)
	rev, err := ts.RevokeToken(ctx, "TOK-0001", at)
	if err != nil {
		t.Fatal(err)
	}
	if rev.RevokedAt == nil || !rev.RevokedAt.Equal(at) {
		t.Errorf("RevokeToken: revoked at %v, want %v", rev.RevokedAt, at)
	}
	again, err := ts.RevokeToken(ctx, "TOK-0001", at.Add(time.Hour))
	if err != nil {
		t.Fatalf("revoking a revoked token: %v", err)
	}
	if again.RevokedAt == nil || !again.RevokedAt.Equal(at) {
		t.Errorf("revoking again moved the revocation to %v, want %v kept", again.RevokedAt, at)
	}
	read, err := ts.Token(ctx, "TOK-0001")
	if err != nil || read.RevokedAt == nil || !read.RevokedAt.Equal(at) || read.Role != "viewer" || read.SecretHash != a1.SecretHash {
		t.Errorf("Token after revoke: %+v %v", read, err)
	}
	if _, err := ts.RevokeToken(ctx, "TOK-9999", at); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("RevokeToken(unknown): %v, want ErrNotFound", err)
	}
	if _, err := ts.Token(ctx, "TOK-9999"); !errors.Is(err, governance.ErrNotFound) {
		t.Errorf("Token(unknown): %v, want ErrNotFound", err)
	}
}

// testTokenRace: concurrent creations of one id store one; concurrent
// revocations keep one time.
func testTokenRace(t *testing.T, open Opener) {
	ts := tokensOf(t, open(t))
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok := sampleToken("TOK-RACE", "acme", "viewer", T0)
			tok.SecretHash = fmt.Sprintf("%064d", i)
			errs[i] = ts.CreateToken(ctx, tok)
		}()
	}
	wg.Wait()
	created := 0
	for _, err := range errs {
		switch {
		case err == nil:
			created++
		case !errors.Is(err, governance.ErrTokenExists):
			t.Errorf("concurrent CreateToken: %v", err)
		}
	}
	if created != 1 {
		t.Fatalf("%d concurrent creations of one id succeeded, want 1", created)
	}
	times := make([]time.Time, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tok, err := ts.RevokeToken(ctx, "TOK-RACE", T0.Add(time.Duration(i+1)*time.Minute))
			if err != nil || tok.RevokedAt == nil {
				t.Errorf("concurrent RevokeToken: %+v %v", tok, err)
				return
			}
			times[i] = *tok.RevokedAt
		}()
	}
	wg.Wait()
	final, err := ts.Token(ctx, "TOK-RACE")
	if err != nil || final.RevokedAt == nil {
		t.Fatalf("Token after concurrent revokes: %+v %v", final, err)
	}
	for i, at := range times {
		if !at.IsZero() && !at.Equal(*final.RevokedAt) {
			t.Errorf("revoke %d answered revoked at %v, the store keeps %v", i, at, *final.RevokedAt)
		}
	}
}
