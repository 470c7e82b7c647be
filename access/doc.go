// Package access says who may do what through stopline's HTTP API and
// console: per-tenant API tokens with a role each.
//
// A token's secret ("stl_" + its id + "_" + 52 characters of randomness,
// 256 bits) is shown once, by Issue; the store keeps only its
// domain-separated SHA-256 (HashSecret), its tenant, role, name, creator
// and expiry, and when it was revoked (governance.TokenStore). An
// Authenticator turns a secret back into a Principal — the tenant and the
// role a request acts with — comparing hashes in constant time, and says
// why it refused one (a *RefusedError: malformed, unknown, mismatch,
// expired, revoked) for the log, never for the caller.
//
// Roles are nested, each allowing what the one before it allows:
//
//	viewer    read runs, incidents, explanations, policy versions
//	auditor   + export bundles (evidence, SOC 2, executive debrief)
//	operator  + act on incidents, approvals and the kill switch
//	admin     + manage tokens and publish policies
//
// The smallest use:
//
//	secret, tok, err := access.Issue(ctx, store, access.TokenRequest{
//		TenantID: "acme", Role: access.Auditor, Name: "ci", TTL: 90 * 24 * time.Hour})
//	// give secret to the caller; it is not shown again
//	auth, err := access.NewAuthenticator(store)
//	p, err := auth.Authenticate(ctx, secret) // p.TenantID == "acme", p.Role == access.Auditor
package access
