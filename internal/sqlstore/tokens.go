package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/stopline/stopline/governance"
)

const tokenColumns = `token_id, tenant_id, name, role, secret_hash, created_at, created_by, expires_at, revoked_at`

func scanToken(r Row) (governance.Token, error) {
	var (
		t                         governance.Token
		created, expires, revoked *int64
	)
	err := r.Scan(&t.ID, &t.TenantID, &t.Name, &t.Role, &t.SecretHash, &created, &t.CreatedBy, &expires, &revoked)
	t.CreatedAt, t.ExpiresAt, t.RevokedAt = TimeOf(created), TimeOf(expires), timePtrOf(revoked)
	return t, err
}

// CreateToken stores a new API token (governance.TokenStore). An id or a
// secret hash already stored is governance.ErrTokenExists.
func (db *DB) CreateToken(ctx context.Context, t governance.Token) error {
	fail := func(err error) error {
		return db.errorf("creating token %s of tenant %s: %w", t.ID, t.TenantID, err)
	}
	if t.ID == "" || t.TenantID == "" || t.SecretHash == "" || t.Role == "" || t.ExpiresAt.IsZero() {
		return fail(errors.New("a token needs an id, a tenant, a role, a secret hash and an expiry"))
	}
	e := db.Enc()
	created, expires := e.Time("created_at", t.CreatedAt), e.Time("expires_at", t.ExpiresAt)
	revoked := e.TimePtr("revoked_at", t.RevokedAt)
	if e.Err != nil {
		return fail(e.Err)
	}
	_, err := db.W.Exec(ctx, `INSERT INTO api_tokens (`+tokenColumns+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		t.ID, t.TenantID, t.Name, t.Role, t.SecretHash, created, t.CreatedBy, expires, revoked)
	switch {
	case err != nil && (db.Classify(err) == PrimaryKeyTaken || db.Classify(err) == UniqueTaken):
		return fail(governance.ErrTokenExists)
	case err != nil:
		return fail(err)
	}
	return nil
}

// Token returns the token with the id, or governance.ErrNotFound.
func (db *DB) Token(ctx context.Context, id string) (governance.Token, error) {
	t, err := scanToken(db.R.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE token_id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return governance.Token{}, db.errorf("token %s: %w", id, governance.ErrNotFound)
	}
	if err != nil {
		return governance.Token{}, db.errorf("reading token %s: %w", id, err)
	}
	return t, nil
}

// Tokens lists the tenant's tokens (every tenant's for ""), oldest first.
func (db *DB) Tokens(ctx context.Context, tenantID string) ([]governance.Token, error) {
	q, args := `SELECT `+tokenColumns+` FROM api_tokens`, []any{}
	if tenantID != "" {
		q, args = q+` WHERE tenant_id = $1`, append(args, tenantID)
	}
	rows, err := db.R.Query(ctx, q+` ORDER BY created_at, token_id`, args...)
	out, err := collect(rows, err, scanToken)
	if err != nil {
		return nil, db.errorf("listing tokens of tenant %q: %w", tenantID, err)
	}
	return out, nil
}

// RevokeToken sets the token's revocation time, if it has none, and
// returns the token as stored; an unknown id is governance.ErrNotFound.
func (db *DB) RevokeToken(ctx context.Context, id string, at time.Time) (governance.Token, error) {
	e := db.Enc()
	v := e.Time("revoked_at", at)
	if e.Err != nil {
		return governance.Token{}, db.errorf("revoking token %s: %w", id, e.Err)
	}
	if v == nil {
		return governance.Token{}, db.errorf("revoking token %s: a revocation needs a time", id)
	}
	if _, err := db.W.Exec(ctx, `UPDATE api_tokens SET revoked_at = $1 WHERE token_id = $2 AND revoked_at IS NULL`, v, id); err != nil {
		return governance.Token{}, db.errorf("revoking token %s: %w", id, err)
	}
	return db.tokenW(ctx, id)
}

// tokenW reads a token on the write connection, which sees its own
// writes at once.
func (db *DB) tokenW(ctx context.Context, id string) (governance.Token, error) {
	t, err := scanToken(db.W.QueryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE token_id = $1`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return governance.Token{}, db.errorf("token %s: %w", id, governance.ErrNotFound)
	}
	if err != nil {
		return governance.Token{}, db.errorf("reading token %s: %w", id, err)
	}
	return t, nil
}
