package governance

import (
	"context"
	"errors"
	"time"
)

// TokenStore is an optional interface of a Store: one that keeps the API
// tokens of package access (the HTTP API's and the console's callers).
// A token is stored only as the hash of its secret; the secret itself is
// shown once, when it is made, and never stored.
//
// Token ids are unique across tenants (a secret names its token's id, and
// the id its tenant). Tokens are never deleted: a revoked token stays, with
// the time it was revoked, so that the list shows who could act when.
// Implementations are safe for concurrent use.
type TokenStore interface {
	// CreateToken stores a new token. An id already stored, or a hash
	// already stored, is ErrTokenExists.
	CreateToken(ctx context.Context, t Token) error
	// Token returns the token with the id, of whichever tenant, or
	// ErrNotFound.
	Token(ctx context.Context, id string) (Token, error)
	// Tokens lists the tenant's tokens (every tenant's when tenantID is
	// empty), oldest first, revoked ones included.
	Tokens(ctx context.Context, tenantID string) ([]Token, error)
	// RevokeToken marks the token revoked at the time given and returns it
	// as stored. Revoking a revoked token keeps its first revocation time
	// and is not an error. An unknown id is ErrNotFound.
	RevokeToken(ctx context.Context, id string, at time.Time) (Token, error)
}

// ErrTokenExists is matched when a token with the same id or secret hash
// is already stored.
var ErrTokenExists = errors.New("governance: token exists")

// Token is an API token as a TokenStore keeps it. Package access makes
// them (access.Issue) and checks them (access.Authenticator).
type Token struct {
	// ID names the token in lists and in revoke ("TOK-" and 16 hex
	// digits); the secret carries it.
	ID       string `json:"token_id"`
	TenantID string `json:"tenant_id"`
	// Name says what the token is for ("ci exporter").
	Name string `json:"name"`
	// Role is what the token may do: viewer, auditor, operator or admin
	// (access.Role).
	Role string `json:"role"`
	// SecretHash is the hex SHA-256 of the secret, domain-separated
	// (access.HashSecret).
	SecretHash string    `json:"secret_hash"`
	CreatedAt  time.Time `json:"created_at"`
	CreatedBy  string    `json:"created_by"`
	// ExpiresAt is when the token stops being accepted.
	ExpiresAt time.Time `json:"expires_at"`
	// RevokedAt is when it was revoked, nil while it is not.
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
}
