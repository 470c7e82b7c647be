package console

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/governance"
)

//go:embed templates/*.html static/console.css
var assets embed.FS

// SessionCookie is the cookie that holds a signed-in token's secret.
const SessionCookie = "stopline_session"

// csrfField is the form field of the CSRF token.
const csrfField = "csrf"

// ErrConfig is matched by New's error for a console it cannot build.
var ErrConfig = errors.New("console: invalid configuration")

// Option configures New.
type Option func(*config)

type config struct {
	pub         *governance.Runner
	auth        *access.Authenticator
	headers     *trustedHeaders
	exts        []Extension
	log         *slog.Logger
	csrfKey     []byte
	base        string
	secureCooky bool
}

type trustedHeaders struct{ tenant, role, actor string }

// WithTokens makes callers sign in with an API token (package access),
// kept in an HttpOnly, SameSite=Strict cookie scoped to the console.
func WithTokens(auth *access.Authenticator) Option {
	return func(c *config) { c.auth = auth }
}

// WithTrustedHeaders takes each request's tenant, role and actor from
// headers an authenticating proxy sets (or strips) itself, such as
// X-Stopline-Tenant, X-Stopline-Role and X-Stopline-Actor. Use it only
// behind such a proxy: the headers are trusted as they are. A request
// without the tenant or a valid role is refused.
func WithTrustedHeaders(tenant, role, actor string) Option {
	return func(c *config) { c.headers = &trustedHeaders{tenant, role, actor} }
}

// WithExtension adds a section (approvals, the kill switch) to the
// console.
func WithExtension(e Extension) Option {
	return func(c *config) {
		if e != nil {
			c.exts = append(c.exts, e)
		}
	}
}

// WithLogger is where refused requests (with their reason) and failures
// are logged (default: slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// WithCSRFKey sets the key CSRF tokens are made with, for consoles on
// several replicas behind one address (default: 32 random bytes per
// Console). It must be at least 32 bytes.
func WithCSRFKey(key []byte) Option {
	return func(c *config) { c.csrfKey = append([]byte(nil), key...) }
}

// WithPublisher lets admins publish a policy set from the policies page:
// the file is parsed with the runner's kinds, must be for the admin's
// tenant, and is published with Runner.Publish as the admin (default:
// no publishing from the console).
func WithPublisher(r *governance.Runner) Option {
	return func(c *config) { c.pub = r }
}

// WithBasePath sets the path the console is mounted at (default
// "/console/"); it must start and end with "/".
func WithBasePath(p string) Option {
	return func(c *config) { c.base = p }
}

// WithSecureCookie marks the session cookie Secure (served only over
// HTTPS), for a console behind TLS (default: Secure when the request
// came over TLS).
func WithSecureCookie() Option {
	return func(c *config) { c.secureCooky = true }
}

// Console is the web console's http.Handler.
type Console struct {
	cfg   config
	exp   *export.Exporter
	store governance.Store
	pages map[string]*template.Template
	mux   *http.ServeMux
	css   []byte
}

var sectionPath = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// New returns the console over exp's store, with exactly one way of
// authenticating callers: WithTokens or WithTrustedHeaders. Defaults:
// mounted at /console/, logging to slog.Default(), a random CSRF key.
func New(exp *export.Exporter, opts ...Option) (*Console, error) {
	if exp == nil {
		return nil, fmt.Errorf("%w: no Exporter", ErrConfig)
	}
	c := &Console{exp: exp, store: exp.Store(), cfg: config{log: slog.Default(), base: "/console/"}}
	for _, o := range opts {
		if o != nil {
			o(&c.cfg)
		}
	}
	cfg := &c.cfg
	switch {
	case (cfg.auth == nil) == (cfg.headers == nil):
		return nil, fmt.Errorf("%w: give exactly one of WithTokens and WithTrustedHeaders", ErrConfig)
	case cfg.headers != nil && (cfg.headers.tenant == "" || cfg.headers.role == "" || cfg.headers.actor == ""):
		return nil, fmt.Errorf("%w: WithTrustedHeaders needs a tenant, a role and an actor header", ErrConfig)
	case !strings.HasPrefix(cfg.base, "/") || !strings.HasSuffix(cfg.base, "/"):
		return nil, fmt.Errorf("%w: base path %q must start and end with /", ErrConfig, cfg.base)
	case cfg.csrfKey != nil && len(cfg.csrfKey) < 32:
		return nil, fmt.Errorf("%w: a CSRF key needs at least 32 bytes", ErrConfig)
	}
	if cfg.csrfKey == nil {
		cfg.csrfKey = make([]byte, 32)
		if _, err := rand.Read(cfg.csrfKey); err != nil {
			return nil, fmt.Errorf("console: reading randomness: %w", err)
		}
	}
	seen := map[string]bool{}
	for _, e := range cfg.exts {
		s := e.Section()
		if !sectionPath.MatchString(s.Path) || seen[s.Path] || !s.View.Valid() || !s.Act.Valid() {
			return nil, fmt.Errorf("%w: extension %T: section path %q (letters, digits, -; unique) or its permissions", ErrConfig, e, s.Path)
		}
		seen[s.Path] = true
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	if c.css, err = fs.ReadFile(assets, "static/console.css"); err != nil {
		return nil, err
	}
	c.routes()
	return c, nil
}

// ServeHTTP serves the console's pages under its base path.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	c.mux.ServeHTTP(w, r)
}

// csrfToken is the CSRF token of a session: an HMAC of what identifies
// it, under the console's key.
func (c *Console) csrfToken(session string) string {
	m := hmac.New(sha256.New, c.cfg.csrfKey)
	m.Write([]byte("stopline/console/csrf\x00"))
	m.Write([]byte(session))
	return hex.EncodeToString(m.Sum(nil))
}

// request is an authenticated request: who, and their session's CSRF
// token.
type request struct {
	p       access.Principal
	actor   string
	csrf    string
	flash   string
	now     time.Time
	r       *http.Request
	session string
}

// errRefused is an authentication or authorization refusal.
type errRefused struct {
	status int
	reason error
}

func (e *errRefused) Error() string { return e.reason.Error() }

// authenticate returns who the request is, or an *errRefused.
func (c *Console) authenticate(r *http.Request) (*request, error) {
	now := c.exp.Clock().Now()
	if h := c.cfg.headers; h != nil {
		tenant, role := singleHeader(r, h.tenant), singleHeader(r, h.role)
		if tenant == "" {
			return nil, &errRefused{http.StatusUnauthorized, fmt.Errorf("no single %s header", h.tenant)}
		}
		ro, err := access.ParseRole(role)
		if err != nil {
			return nil, &errRefused{http.StatusUnauthorized, fmt.Errorf("%s header: %w", h.role, err)}
		}
		actor := singleHeader(r, h.actor)
		if actor == "" {
			actor = "console"
		}
		session := tenant + "\x00" + ro.String() + "\x00" + actor
		return &request{p: access.Principal{TenantID: tenant, Role: ro, Name: actor}, actor: actor, csrf: c.csrfToken(session), now: now, r: r, session: session}, nil
	}
	ck, err := r.Cookie(SessionCookie)
	if err != nil || ck.Value == "" {
		return nil, &errRefused{http.StatusUnauthorized, &access.RefusedError{Reason: access.ReasonMissing}}
	}
	p, err := c.cfg.auth.Authenticate(r.Context(), ck.Value)
	if err != nil {
		if errors.Is(err, access.ErrUnauthenticated) {
			return nil, &errRefused{http.StatusUnauthorized, err}
		}
		return nil, err
	}
	return &request{p: p, actor: p.Actor(), csrf: c.csrfToken(ck.Value), now: now, r: r, session: ck.Value}, nil
}

func singleHeader(r *http.Request, name string) string {
	vs := r.Header.Values(name)
	if len(vs) != 1 || strings.Contains(vs[0], ",") {
		return ""
	}
	return strings.TrimSpace(vs[0])
}

// checkCSRF verifies a POST's CSRF token, in constant time, and that the
// browser did not say it came from another origin.
func (c *Console) checkCSRF(req *request) error {
	r := req.r
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		if !sameOrigin(o, r) {
			return &errRefused{http.StatusForbidden, fmt.Errorf("cross-origin POST from %s", o)}
		}
	}
	if s := r.Header.Get("Sec-Fetch-Site"); s != "" && s != "same-origin" && s != "none" {
		return &errRefused{http.StatusForbidden, fmt.Errorf("cross-site POST (Sec-Fetch-Site: %s)", s)}
	}
	got := r.PostFormValue(csrfField)
	if !hmac.Equal([]byte(got), []byte(req.csrf)) {
		return &errRefused{http.StatusForbidden, errors.New("missing or wrong CSRF token")}
	}
	return nil
}

func sameOrigin(origin string, r *http.Request) bool {
	o := strings.TrimPrefix(strings.TrimPrefix(origin, "https://"), "http://")
	return o == r.Host
}

// refuse answers a refused request and logs why.
func (c *Console) refuse(w http.ResponseWriter, r *http.Request, status int, reason error) {
	c.cfg.log.LogAttrs(r.Context(), slog.LevelInfo, "console: request refused",
		slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", status), slog.String("reason", reason.Error()))
	if status == http.StatusUnauthorized && r.Method == http.MethodGet && c.cfg.auth != nil {
		http.Redirect(w, r, c.cfg.base+"login", http.StatusSeeOther)
		return
	}
	c.plain(w, status, http.StatusText(status))
}

func (c *Console) plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	fmt.Fprintln(w, msg)
}

// fail answers an error: not found (the same for an absent id and
// another tenant's), a refusal, or a server error (logged, not shown).
func (c *Console) fail(w http.ResponseWriter, r *http.Request, err error) {
	var ref *errRefused
	switch {
	case errors.As(err, &ref):
		c.refuse(w, r, ref.status, ref.reason)
	case errors.Is(err, governance.ErrNotFound):
		c.refuse(w, r, http.StatusNotFound, err)
	case errors.Is(err, errBadInput), errors.Is(err, governance.ErrBeforeRun), errors.Is(err, export.ErrInvalidRequest), errors.Is(err, export.ErrNoIncident):
		c.refuse(w, r, http.StatusBadRequest, err)
		return
	default:
		c.cfg.log.LogAttrs(r.Context(), slog.LevelError, "console: request failed",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		c.plain(w, http.StatusInternalServerError, "internal error")
	}
}

var errBadInput = errors.New("console: bad input")

func badInput(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errBadInput}, args...)...)
}

// handle wraps a page: authenticated, allowed perm, CSRF-checked when
// it is a POST.
func (c *Console) handle(perm access.Permission, fn func(http.ResponseWriter, *request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		req, err := c.authenticate(r)
		if err != nil {
			c.fail(w, r, err)
			return
		}
		if !req.p.Allows(perm) {
			c.refuse(w, r, http.StatusForbidden, fmt.Errorf("role %s of %s does not allow %s", req.p.Role, req.actor, perm))
			return
		}
		if r.Method == http.MethodPost {
			if err := c.checkCSRF(req); err != nil {
				c.fail(w, r, err)
				return
			}
		}
		req.flash = r.URL.Query().Get("done")
		if err := fn(w, req); err != nil {
			c.fail(w, r, err)
		}
	}
}
