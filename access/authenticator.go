package access

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/stopline/stopline/governance"
)

// Principal is who a request acts as: a token's tenant and role.
type Principal struct {
	TokenID  string
	TenantID string
	Role     Role
	// Name is the token's name.
	Name string
}

// Actor is how the principal is recorded as the author of an action
// (an export's exported_by, an incident's acknowledged_by):
// "token:TOK-… (name)".
func (p Principal) Actor() string {
	if p.Name == "" {
		return "token:" + p.TokenID
	}
	return "token:" + p.TokenID + " (" + p.Name + ")"
}

// Allows reports whether the principal's role allows perm.
func (p Principal) Allows(perm Permission) bool { return p.Role.Allows(perm) }

// ErrUnauthenticated is matched by every refusal of Authenticate.
var ErrUnauthenticated = errors.New("access: unauthenticated")

// Why a secret was refused.
const (
	ReasonMissing   = "missing"   // no secret given
	ReasonMalformed = "malformed" // not shaped like a secret
	ReasonUnknown   = "unknown"   // no token with the id it names
	ReasonMismatch  = "mismatch"  // a token with that id, another secret
	ReasonExpired   = "expired"
	ReasonRevoked   = "revoked"
	ReasonBadRole   = "bad_role" // the stored role is not one this build knows
)

// RefusedError is the error of a refused secret: why, and the token id it
// named (if any). Log it; tell the caller only that it was refused. It
// matches ErrUnauthenticated.
type RefusedError struct {
	Reason  string
	TokenID string
}

func (e *RefusedError) Error() string {
	if e.TokenID == "" {
		return "access: token refused: " + e.Reason
	}
	return fmt.Sprintf("access: token %s refused: %s", e.TokenID, e.Reason)
}

// Is matches ErrUnauthenticated.
func (e *RefusedError) Is(target error) bool { return target == ErrUnauthenticated }

// Authenticator checks token secrets against a TokenStore. It is safe for
// concurrent use.
type Authenticator struct {
	store governance.TokenStore
	now   func() time.Time
}

// AuthOption configures NewAuthenticator.
type AuthOption func(*Authenticator)

// WithClock sets the time expiry is checked against (default time.Now).
func WithClock(now func() time.Time) AuthOption {
	return func(a *Authenticator) {
		if now != nil {
			a.now = now
		}
	}
}

// NewAuthenticator returns an Authenticator over store, which must not be
// nil.
func NewAuthenticator(store governance.TokenStore, opts ...AuthOption) (*Authenticator, error) {
	if store == nil {
		return nil, errors.New("access: NewAuthenticator needs a governance.TokenStore")
	}
	a := &Authenticator{store: store, now: time.Now}
	for _, o := range opts {
		if o != nil {
			o(a)
		}
	}
	return a, nil
}

// dummyHash is compared with when no token is found, so that an unknown
// id costs what a wrong secret costs.
var dummyHash = HashSecret("stl_0000000000000000_")

// Authenticate returns the principal of secret, or a *RefusedError (or an
// error reading the store, which does not match ErrUnauthenticated).
func (a *Authenticator) Authenticate(ctx context.Context, secret string) (Principal, error) {
	if secret == "" {
		return Principal{}, &RefusedError{Reason: ReasonMissing}
	}
	id := tokenID(secret)
	if id == "" {
		return Principal{}, &RefusedError{Reason: ReasonMalformed}
	}
	got := HashSecret(secret)
	tok, err := a.store.Token(ctx, id)
	if errors.Is(err, governance.ErrNotFound) {
		subtle.ConstantTimeCompare([]byte(got), []byte(dummyHash))
		return Principal{}, &RefusedError{Reason: ReasonUnknown, TokenID: id}
	}
	if err != nil {
		return Principal{}, fmt.Errorf("access: reading token %s: %w", id, err)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(tok.SecretHash)) != 1 {
		return Principal{}, &RefusedError{Reason: ReasonMismatch, TokenID: id}
	}
	now := a.now()
	switch {
	case tok.RevokedAt != nil:
		return Principal{}, &RefusedError{Reason: ReasonRevoked, TokenID: id}
	case !now.Before(tok.ExpiresAt):
		return Principal{}, &RefusedError{Reason: ReasonExpired, TokenID: id}
	}
	role, err := ParseRole(tok.Role)
	if err != nil {
		return Principal{}, &RefusedError{Reason: ReasonBadRole, TokenID: id}
	}
	return Principal{TokenID: tok.ID, TenantID: tok.TenantID, Role: role, Name: tok.Name}, nil
}

// BearerSecret returns the secret of the request's "Authorization: Bearer"
// header, "" when there is none. A request with the header more than once
// gives "" (refused as missing).
func BearerSecret(r *http.Request) string {
	vs := r.Header.Values("Authorization")
	if len(vs) != 1 {
		return ""
	}
	scheme, secret, ok := strings.Cut(vs[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return ""
	}
	return strings.TrimSpace(secret)
}
