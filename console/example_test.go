package console_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/console"
	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/store/memstore"
)

// The console signs callers in with an API token and shows them their
// tenant's runs.
func ExampleNew() {
	ctx := context.Background()
	store := memstore.New()
	exp, _ := export.New(store)
	auth, _ := access.NewAuthenticator(store)
	c, err := console.New(exp, console.WithTokens(auth))
	if err != nil {
		fmt.Println(err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", c)
	srv := httptest.NewServer(mux)
	defer srv.Close()

	secret, _, _ := access.Issue(ctx, store, access.TokenRequest{TenantID: "acme", Role: access.Viewer, TTL: time.Hour})
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, _ := noRedirect.PostForm(srv.URL+"/console/login", url.Values{"token": {secret}})
	resp.Body.Close()
	fmt.Println(resp.StatusCode, resp.Header.Get("Location"), strings.HasPrefix(resp.Header.Get("Set-Cookie"), console.SessionCookie+"="))
	// Output:
	// 303 /console/runs true
}
