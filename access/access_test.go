package access_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/memstore"
)

var ctx = context.Background()

func TestRolesAreNested(t *testing.T) {
	want := map[access.Role][]access.Permission{
		access.Viewer:   {access.Read},
		access.Auditor:  {access.Read, access.Export},
		access.Operator: {access.Read, access.Export, access.Operate},
		access.Admin:    {access.Read, access.Export, access.Operate, access.Administer},
		0:               {},
		access.Role(9):  {},
	}
	for role, perms := range want {
		for p := access.Read; p <= access.Administer; p++ {
			allowed := false
			for _, q := range perms {
				allowed = allowed || q == p
			}
			if got := role.Allows(p); got != allowed {
				t.Errorf("%s allows %s: %t, want %t", role, p, got, allowed)
			}
		}
		if role.Allows(0) || role.Allows(access.Permission(9)) {
			t.Errorf("%s allows an unknown permission", role)
		}
	}
	for _, name := range []string{"viewer", "auditor", "operator", "admin"} {
		r, err := access.ParseRole(name)
		if err != nil || r.String() != name {
			t.Errorf("ParseRole(%q) = %s, %v", name, r, err)
		}
	}
	for _, bad := range []string{"", "Admin", "root", "none"} {
		if _, err := access.ParseRole(bad); !errors.Is(err, access.ErrUnknownRole) {
			t.Errorf("ParseRole(%q): %v, want ErrUnknownRole", bad, err)
		}
	}
	if _, err := access.Role(0).MarshalText(); err == nil {
		t.Error("the zero role marshals")
	}
}

func TestAuthenticate(t *testing.T) {
	st := memstore.New()
	now := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	clock := now
	a, err := access.NewAuthenticator(st, access.WithClock(func() time.Time { return clock }))
	if err != nil {
		t.Fatal(err)
	}
	secret, tok, err := access.Issue(ctx, st, access.TokenRequest{TenantID: "acme", Role: access.Auditor, Name: "ci", TTL: time.Hour, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, access.SecretPrefix) || strings.Contains(tok.SecretHash, secret) || tok.SecretHash != access.HashSecret(secret) {
		t.Fatalf("secret %q, stored hash %q", secret, tok.SecretHash)
	}
	stored, _ := st.Token(ctx, tok.ID)
	if stored.SecretHash == secret || strings.Contains(stored.Name+stored.SecretHash, secret[len(secret)-20:]) {
		t.Fatal("the store holds the secret")
	}
	p, err := a.Authenticate(ctx, secret)
	if err != nil || p.TenantID != "acme" || p.Role != access.Auditor || p.TokenID != tok.ID {
		t.Fatalf("Authenticate = %+v, %v", p, err)
	}
	if p.Actor() != "token:"+tok.ID+" (ci)" {
		t.Errorf("Actor = %q", p.Actor())
	}
	other, _, _ := access.Issue(ctx, st, access.TokenRequest{TenantID: "globex", Role: access.Admin, TTL: time.Hour, Now: now})
	idPart := secret[:len(access.SecretPrefix)+17]
	refused := map[string]struct {
		secret string
		reason string
	}{
		"empty":        {"", access.ReasonMissing},
		"no prefix":    {strings.TrimPrefix(secret, access.SecretPrefix), access.ReasonMalformed},
		"short":        {secret[:len(secret)-1], access.ReasonMalformed},
		"unknown id":   {access.SecretPrefix + "00000000000000ff_" + secret[len(idPart):], access.ReasonUnknown},
		"wrong secret": {idPart + other[len(idPart):], access.ReasonMismatch},
		"upper id":     {strings.ToUpper(secret), access.ReasonMalformed},
	}
	for name, c := range refused {
		_, err := a.Authenticate(ctx, c.secret)
		var re *access.RefusedError
		if !errors.As(err, &re) || re.Reason != c.reason || !errors.Is(err, access.ErrUnauthenticated) {
			t.Errorf("%s: %v, want refused as %s", name, err, c.reason)
		}
	}
	clock = now.Add(time.Hour)
	if _, err := a.Authenticate(ctx, secret); !isRefused(err, access.ReasonExpired) {
		t.Errorf("at expiry: %v, want expired", err)
	}
	clock = now.Add(time.Minute)
	if _, err := st.RevokeToken(ctx, tok.ID, clock); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, secret); !isRefused(err, access.ReasonRevoked) {
		t.Errorf("after revoke: %v, want revoked", err)
	}
	if _, err := a.Authenticate(ctx, other); err != nil {
		t.Errorf("another token after a revoke: %v", err)
	}
}

func isRefused(err error, reason string) bool {
	var re *access.RefusedError
	return errors.As(err, &re) && re.Reason == reason
}

func TestIssueRefuses(t *testing.T) {
	st := memstore.New()
	for name, req := range map[string]access.TokenRequest{
		"no tenant": {Role: access.Viewer, TTL: time.Hour},
		"no role":   {TenantID: "acme", TTL: time.Hour},
		"no expiry": {TenantID: "acme", Role: access.Viewer},
	} {
		if _, _, err := access.Issue(ctx, st, req); !errors.Is(err, access.ErrInvalidToken) {
			t.Errorf("%s: %v, want ErrInvalidToken", name, err)
		}
	}
	if list, _ := st.Tokens(ctx, ""); len(list) != 0 {
		t.Errorf("refused requests stored %d tokens", len(list))
	}
	var _ governance.TokenStore = st
}
