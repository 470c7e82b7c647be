package memstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/stopline/stopline/governance"
)

var _ governance.TokenStore = (*Store)(nil)

// tokenState holds the API tokens, in creation order, under its own lock.
type tokenState struct {
	list []governance.Token
}

// CreateToken implements governance.TokenStore.
func (s *Store) CreateToken(ctx context.Context, t governance.Token) error {
	if t.ID == "" || t.TenantID == "" || t.SecretHash == "" || t.Role == "" || t.ExpiresAt.IsZero() {
		return fmt.Errorf("memstore: token %q: a token needs an id, a tenant, a role, a secret hash and an expiry", t.ID)
	}
	s.tmu.Lock()
	defer s.tmu.Unlock()
	for _, o := range s.tokens.list {
		if o.ID == t.ID || o.SecretHash == t.SecretHash {
			return fmt.Errorf("memstore: token %s: %w", t.ID, governance.ErrTokenExists)
		}
	}
	s.tokens.list = append(s.tokens.list, copyToken(t))
	return nil
}

// Token implements governance.TokenStore.
func (s *Store) Token(ctx context.Context, id string) (governance.Token, error) {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	i := s.tokenIndex(id)
	if i < 0 {
		return governance.Token{}, fmt.Errorf("memstore: token %s: %w", id, governance.ErrNotFound)
	}
	return copyToken(s.tokens.list[i]), nil
}

// Tokens implements governance.TokenStore.
func (s *Store) Tokens(ctx context.Context, tenantID string) ([]governance.Token, error) {
	s.tmu.Lock()
	defer s.tmu.Unlock()
	out := []governance.Token{}
	for _, t := range s.tokens.list {
		if tenantID == "" || t.TenantID == tenantID {
			out = append(out, copyToken(t))
		}
	}
	slices.SortStableFunc(out, func(a, b governance.Token) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// RevokeToken implements governance.TokenStore.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) (governance.Token, error) {
	if at.IsZero() {
		return governance.Token{}, fmt.Errorf("memstore: revoking token %s: a revocation needs a time", id)
	}
	s.tmu.Lock()
	defer s.tmu.Unlock()
	i := s.tokenIndex(id)
	if i < 0 {
		return governance.Token{}, fmt.Errorf("memstore: token %s: %w", id, governance.ErrNotFound)
	}
	if s.tokens.list[i].RevokedAt == nil {
		at = at.UTC()
		s.tokens.list[i].RevokedAt = &at
	}
	return copyToken(s.tokens.list[i]), nil
}

func (s *Store) tokenIndex(id string) int {
	return slices.IndexFunc(s.tokens.list, func(t governance.Token) bool { return t.ID == id })
}

func copyToken(t governance.Token) governance.Token {
	if t.RevokedAt != nil {
		r := *t.RevokedAt
		t.RevokedAt = &r
	}
	return t
}
