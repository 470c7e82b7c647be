package access_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/store/memstore"
)

// A token is issued once, authenticates as its tenant and role, and is
// refused once revoked.
func ExampleIssue() {
	ctx := context.Background()
	store := memstore.New()
	secret, tok, err := access.Issue(ctx, store, access.TokenRequest{
		TenantID: "acme", Role: access.Auditor, Name: "ci", TTL: 90 * 24 * time.Hour})
	if err != nil {
		fmt.Println(err)
		return
	}
	auth, _ := access.NewAuthenticator(store)
	p, err := auth.Authenticate(ctx, secret)
	fmt.Println(p.TenantID, p.Role, p.Allows(access.Export), p.Allows(access.Operate), err)

	_, _ = store.RevokeToken(ctx, tok.ID, time.Now())
	_, err = auth.Authenticate(ctx, secret)
	var refused *access.RefusedError
	fmt.Println(errors.As(err, &refused), refused.Reason)
	// Output:
	// acme auditor true false <nil>
	// true revoked
}
