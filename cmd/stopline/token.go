package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/governance"
)

// parseTTL reads a token's lifetime: a Go duration ("720h", "30m") or a
// number of days ("90d").
func parseTTL(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n <= 0 || n > 3650 {
			return 0, usagef("--expires %q: want a number of days from 1 to 3650 (90d) or a duration (720h)", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, usagef("--expires %q: want a positive duration (720h) or a number of days (90d)", s)
	}
	return d, nil
}

// withTokens runs fn with the database's token store.
func withTokens(ctx context.Context, e *env, mustExist bool, fn func(governance.TokenStore) error) error {
	return withStore(ctx, e, mustExist, func(st governance.Store) error {
		ts, ok := st.(governance.TokenStore)
		if !ok {
			return fmt.Errorf("%s (%T) keeps no API tokens (governance.TokenStore)", e.db, st)
		}
		return fn(ts)
	})
}

type tokenOut struct {
	governance.Token
	// Secret is shown once, by token create.
	Secret string `json:"secret,omitempty"`
	Status string `json:"status"`
}

func tokenStatus(t governance.Token, now time.Time) string {
	switch {
	case t.RevokedAt != nil:
		return "revoked"
	case !now.Before(t.ExpiresAt):
		return "expired"
	}
	return "active"
}

func tokenCreateCmd() *command {
	var tenant, role, expires, name, by string
	return &command{
		name:     "token create",
		section:  "Server",
		synopsis: "--tenant T --role ROLE [--expires DURATION] [--name N] [--by NAME] [--json]",
		summary:  "make an API token for serve; its secret is printed once",
		desc: `Makes an API token of tenant T with a role, for the HTTP API and the console
of stopline serve, and prints its secret ONCE: the database keeps only its
SHA-256. Give it to the caller as "Authorization: Bearer <secret>" (or paste it
into the console's sign-in page).

Roles, each allowing what the one before it allows:
  viewer    read runs, incidents, explanations, policy versions
  auditor   + export evidence, SOC 2 and executive-debrief bundles
  operator  + acknowledge and resolve incidents
  admin     + publish policy sets (POST /policies, the console) and revoke
            the tenant's tokens in the console

--expires is how long it is accepted: a duration (720h) or days (90d);
default 90d. --name says what it is for; --by who made it (default "cli").
--json prints the token with its "secret".`,
		examples: []string{
			"stopline token create --tenant acme --role auditor --name ci-exports --expires 30d",
		},
		maxArgs: 0, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "the token's `TENANT`")
			fs.StringVar(&role, "role", "", "viewer, auditor, operator or admin (`ROLE`)")
			fs.StringVar(&expires, "expires", "90d", "accepted for `DURATION` (720h, 90d)")
			fs.StringVar(&name, "name", "", "what the token is for (`NAME`)")
			fs.StringVar(&by, "by", "cli", "who makes it (`NAME`)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if tenant == "" {
				return usagef("--tenant is required")
			}
			r, err := access.ParseRole(role)
			if err != nil {
				return usagef("--role: %v", err)
			}
			ttl, err := parseTTL(expires)
			if err != nil {
				return err
			}
			return withTokens(ctx, e, false, func(ts governance.TokenStore) error {
				secret, tok, err := access.Issue(ctx, ts, access.TokenRequest{TenantID: tenant, Role: r, Name: name, TTL: ttl, CreatedBy: by})
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, tokenOut{Token: tok, Secret: secret, Status: "active"})
				}
				t := newTable(e.stdout)
				t.row("Token:", tok.ID)
				t.row("Tenant:", tok.TenantID)
				t.row("Role:", tok.Role)
				t.row("Name:", orDash(tok.Name))
				t.row("Expires:", fmtTime(tok.ExpiresAt))
				t.row("Secret:", secret)
				if err := t.flush(); err != nil {
					return err
				}
				fmt.Fprintln(e.stdout, "\nThe secret is shown only now; store it where the caller keeps secrets.")
				return nil
			})
		},
	}
}

func tokenListCmd() *command {
	var tenant string
	return &command{
		name:     "token list",
		section:  "Server",
		synopsis: "[--tenant T] [--json]",
		summary:  "list API tokens (never their secrets)",
		desc: `Lists the API tokens of tenant T (every tenant's without --tenant), oldest
first, with their role, name, creation, expiry and status (active, expired,
revoked). Secrets are never shown: the database does not hold them.`,
		examples: []string{"stopline token list --tenant acme"},
		maxArgs:  0, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "only `TENANT`'s tokens")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			return withTokens(ctx, e, true, func(ts governance.TokenStore) error {
				list, err := ts.Tokens(ctx, tenant)
				if err != nil {
					return err
				}
				now := time.Now()
				if e.jsonOut {
					out := make([]tokenOut, 0, len(list))
					for _, tok := range list {
						out = append(out, tokenOut{Token: tok, Status: tokenStatus(tok, now)})
					}
					return writeJSON(e.stdout, out)
				}
				t := newTable(e.stdout)
				t.row("TOKEN", "TENANT", "ROLE", "STATUS", "CREATED", "EXPIRES", "BY", "NAME")
				for _, tok := range list {
					t.row(tok.ID, tok.TenantID, tok.Role, tokenStatus(tok, now), fmtTime(tok.CreatedAt), fmtTime(tok.ExpiresAt), tok.CreatedBy, tok.Name)
				}
				return t.flush()
			})
		},
	}
}

func tokenRevokeCmd() *command {
	return &command{
		name:     "token revoke",
		section:  "Server",
		synopsis: "ID [--json]",
		summary:  "revoke an API token at once",
		desc: `Revokes the API token ID (TOK-…): every request that presents it from now on
is refused, on every server sharing the database. Revoking a revoked token
keeps its first revocation time. The token stays listed, as revoked.`,
		examples: []string{"stopline token revoke TOK-3f9a0c1d2e4b5a69"},
		minArgs:  1, maxArgs: 1, store: true, json: true,
		run: func(ctx context.Context, e *env, args []string) error {
			return withTokens(ctx, e, true, func(ts governance.TokenStore) error {
				tok, err := ts.RevokeToken(ctx, args[0], time.Now())
				if errors.Is(err, governance.ErrNotFound) {
					return fmt.Errorf("no token %s", args[0])
				}
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, tokenOut{Token: tok, Status: "revoked"})
				}
				fmt.Fprintf(e.stdout, "revoked %s (tenant %s, role %s) at %s\n", tok.ID, tok.TenantID, tok.Role, fmtTime(*tok.RevokedAt))
				return nil
			})
		},
	}
}
