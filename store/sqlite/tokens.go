package sqlite

import (
	"context"
	"time"

	"github.com/stopline/stopline/governance"
)

var _ governance.TokenStore = (*Store)(nil)

// CreateToken implements governance.TokenStore: an id or secret hash
// already stored is governance.ErrTokenExists.
func (s *Store) CreateToken(ctx context.Context, t governance.Token) error {
	return s.db.CreateToken(ctx, t)
}

// Token implements governance.TokenStore: the token with the id, of any
// tenant, or governance.ErrNotFound.
func (s *Store) Token(ctx context.Context, id string) (governance.Token, error) {
	return s.db.Token(ctx, id)
}

// Tokens implements governance.TokenStore: the tenant's tokens (every
// tenant's for ""), oldest first.
func (s *Store) Tokens(ctx context.Context, tenantID string) ([]governance.Token, error) {
	return s.db.Tokens(ctx, tenantID)
}

// RevokeToken implements governance.TokenStore. A trigger keeps every
// other column of a token, and its first revocation time, unchanged.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) (governance.Token, error) {
	return s.db.RevokeToken(ctx, id, at)
}
