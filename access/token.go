package access

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/stopline/stopline/governance"
)

// SecretPrefix starts every token secret, so that scanners and people
// recognise one (in a log, a commit) for what it is.
const SecretPrefix = "stl_"

// secretDomain separates a token hash from every other hash stopline
// makes.
const secretDomain = "stopline/token/v1\x00"

// Sizes: the id part (8 bytes, 16 hex digits) and the random part (32
// bytes, 52 base32 characters) of a secret.
const (
	idBytes     = 8
	randomBytes = 32
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// HashSecret returns the hex SHA-256 a store keeps for secret:
// sha256("stopline/token/v1\x00" || secret).
func HashSecret(secret string) string {
	h := sha256.New()
	h.Write([]byte(secretDomain))
	h.Write([]byte(secret))
	return hex.EncodeToString(h.Sum(nil))
}

// TokenRequest says what token Issue makes.
type TokenRequest struct {
	TenantID string
	Role     Role
	// Name says what the token is for (optional).
	Name string
	// TTL is how long the token is accepted; it must be positive.
	TTL time.Duration
	// CreatedBy is who made it ("cli" when empty).
	CreatedBy string
	// Now is the creation time (time.Now when zero).
	Now time.Time
}

// ErrInvalidToken is matched by Issue's error for a request it refuses.
var ErrInvalidToken = errors.New("access: invalid token request")

// Issue makes a token, stores it, and returns its secret — the only time
// the secret exists outside the caller — and the token as stored.
func Issue(ctx context.Context, store governance.TokenStore, req TokenRequest) (string, governance.Token, error) {
	switch {
	case store == nil:
		return "", governance.Token{}, fmt.Errorf("%w: no token store", ErrInvalidToken)
	case strings.TrimSpace(req.TenantID) == "":
		return "", governance.Token{}, fmt.Errorf("%w: no tenant", ErrInvalidToken)
	case !req.Role.Valid():
		return "", governance.Token{}, fmt.Errorf("%w: role %s: want viewer, auditor, operator or admin", ErrInvalidToken, req.Role)
	case req.TTL <= 0:
		return "", governance.Token{}, fmt.Errorf("%w: expiry %s: want a positive duration", ErrInvalidToken, req.TTL)
	}
	var buf [idBytes + randomBytes]byte
	if _, err := rand.Read(buf[:]); err != nil {
		return "", governance.Token{}, fmt.Errorf("access: reading randomness: %w", err)
	}
	idHex := hex.EncodeToString(buf[:idBytes])
	secret := SecretPrefix + idHex + "_" + strings.ToLower(b32.EncodeToString(buf[idBytes:]))
	now := req.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC()
	by := req.CreatedBy
	if by == "" {
		by = "cli"
	}
	tok := governance.Token{
		ID: "TOK-" + idHex, TenantID: req.TenantID, Name: req.Name, Role: req.Role.String(),
		SecretHash: HashSecret(secret), CreatedAt: now, CreatedBy: by, ExpiresAt: now.Add(req.TTL),
	}
	if err := store.CreateToken(ctx, tok); err != nil {
		return "", governance.Token{}, err
	}
	return secret, tok, nil
}

// tokenID returns the id a secret names ("TOK-" + its hex part), or ""
// when it is not shaped like a secret.
func tokenID(secret string) string {
	rest, ok := strings.CutPrefix(secret, SecretPrefix)
	if !ok || len(rest) != 2*idBytes+1+b32.EncodedLen(randomBytes) || rest[2*idBytes] != '_' {
		return ""
	}
	for _, c := range rest[:2*idBytes] {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return ""
		}
	}
	return "TOK-" + rest[:2*idBytes]
}
