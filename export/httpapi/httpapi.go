package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// TenantFunc tells the handler which tenant a request acts for. It is the
// application's authentication: an error or an empty tenant answers 401.
// A run or incident of any other tenant is not found (404), never shown.
type TenantFunc func(r *http.Request) (string, error)

// HeaderTenant returns a TenantFunc that takes the tenant from the request
// header name, such as "X-Stopline-Tenant". Use it only behind a proxy
// that authenticates the caller and sets (or strips) that header itself:
// the header is trusted as is.
//
// A request that carries the header more than once, or a value with a
// comma (HTTP's way of joining several), is refused: a proxy that appends
// its value to the client's would otherwise let the client's win.
func HeaderTenant(name string) TenantFunc {
	return func(r *http.Request) (string, error) {
		t, err := singleHeader(r, name)
		if err != nil {
			return "", err
		}
		if t == "" {
			return "", fmt.Errorf("missing %s header", name)
		}
		return t, nil
	}
}

// singleHeader returns the one value of header name ("" if absent), and
// refuses several.
func singleHeader(r *http.Request, name string) (string, error) {
	vs := r.Header.Values(name)
	switch {
	case len(vs) == 0:
		return "", nil
	case len(vs) > 1:
		return "", fmt.Errorf("%s header given %d times", name, len(vs))
	case strings.Contains(vs[0], ","):
		return "", fmt.Errorf("%s header holds several values", name)
	}
	return strings.TrimSpace(vs[0]), nil
}

// ActorFunc tells the handler who is asking for an export; it becomes the
// bundle's exported_by and the export log's entry. An error refuses the
// request (400).
type ActorFunc func(r *http.Request) (string, error)

// HeaderActor returns an ActorFunc that takes who is exporting from the
// request header name, such as "X-Stopline-Actor", or "api" when it is
// absent; a header given more than once is refused. Like HeaderTenant,
// use it only behind a proxy that authenticates the caller and sets that
// header itself.
func HeaderActor(name string) ActorFunc {
	return func(r *http.Request) (string, error) {
		a, err := singleHeader(r, name)
		if err != nil || a != "" {
			return a, err
		}
		return "api", nil
	}
}

// Option configures Handler.
type Option func(*handler)

// WithActor sets who exports (default: "api" for every request).
func WithActor(f ActorFunc) Option {
	return func(h *handler) {
		if f != nil {
			h.actor = f
		}
	}
}

// WithErrorLog is called with each request that failed with a server
// error (5xx), whose details the response does not show (default: none).
func WithErrorLog(f func(r *http.Request, err error)) Option {
	return func(h *handler) {
		if f != nil {
			h.logErr = f
		}
	}
}

// WithRefusalLog is called with each request refused with a client error
// (4xx) and the reason, which the response may not show: a token's
// refusal (unknown, expired, revoked, ...), a role that does not allow
// the route, an id not found (default: none).
func WithRefusalLog(f func(r *http.Request, status int, reason error)) Option {
	return func(h *handler) {
		if f != nil {
			h.logRefused = f
		}
	}
}

// WithPublisher lets admins publish policy sets through the handler
// TokenHandler returns: POST /policies with the policy file as the body
// (at most 4 MiB) and note=<why>, parsed with the runner's kinds and
// published with Runner.Publish as the token (default: no such route).
// The file's tenant_id must be the token's tenant. Handler (a trusted
// tenant header) refuses the route: publishing needs a token's role.
func WithPublisher(r *governance.Runner) Option {
	return func(h *handler) { h.pub = r }
}

type handler struct {
	pub *governance.Runner
	exp *export.Exporter
	// auth returns the tenant and actor of a request that may do need.
	auth       func(r *http.Request, need access.Permission) (tenant, actor string, err error)
	actor      ActorFunc
	logErr     func(*http.Request, error)
	logRefused func(*http.Request, int, error)
}

// maxTextParam bounds the free-text query parameters (reason, notes).
const maxTextParam = 4096

// Handler returns the HTTP API of exports, for an application to mount
// (for example under /stopline/ with http.StripPrefix):
//
//	POST /incidents/{id}/export/evidence           ?format=json|pdf (default json)
//	POST /incidents/{id}/export/soc2               ?format=pdf|json (default pdf) &from=RFC3339&to=RFC3339
//	POST /incidents/{id}/export/executive-debrief  ?format=pdf|json (default pdf)
//	POST /runs/{id}/export/evidence                ?format=json|pdf (default json)
//	GET  /runs/{id}
//	GET  /runs/{id}/explain                        ?at=RFC3339 (default: now)
//	GET  /incidents/{id}
//
// Every export also takes reason=<why> and, for evidence and SOC2,
// content=true to include step content; SOC2 takes notes=<auditor notes>.
// From and to are both given or both left out (then the calendar quarter
// of the incident). Exports answer with the file (application/json: the
// signed DSSE envelope; application/pdf) as an attachment named by
// export.Filename,
// with headers X-Stopline-Bundle-Id, X-Stopline-Bundle-Hash and, when
// signed, X-Stopline-Key-Id; each is recorded in the store's export log.
//
// Errors are JSON {"error": "..."}: 400 for a bad parameter, 401 when
// the TenantFunc fails, 404 for an unknown id or another tenant's, 501
// for a PDF from an Exporter without a renderer, 500 otherwise (the
// details go to WithErrorLog, not to the client).
func Handler(exp *export.Exporter, tenant TenantFunc, opts ...Option) http.Handler {
	if exp == nil || tenant == nil {
		panic("httpapi: Handler needs an Exporter and a TenantFunc")
	}
	h := newHandler(exp, opts)
	h.auth = func(r *http.Request, need access.Permission) (string, string, error) {
		if need == access.Administer {
			return "", "", &forbidden{access.Principal{TokenID: "(none: trusted tenant header)"}, need}
		}
		t, err := tenant(r)
		if err == nil && t == "" {
			err = errors.New("no tenant")
		}
		if err != nil {
			return "", "", &unauthorized{err}
		}
		a, err := h.actor(r)
		if err != nil {
			return "", "", bad("%v", err)
		}
		return t, a, nil
	}
	return h.routes()
}

// TokenHandler returns the routes of Handler for callers that present an
// API token ("Authorization: Bearer stl_…", package access): each request
// acts for the token's tenant, as the token (the actor recorded with an
// export is "token:TOK-… (name)"), and only within its role — reads need
// viewer, exports auditor. A missing, unknown, wrong, expired or revoked
// token answers 401 and a role that does not allow the route 403, both
// before any id is looked up; the reason goes to WithRefusalLog, not to
// the caller. WithActor is ignored.
func TokenHandler(exp *export.Exporter, auth *access.Authenticator, opts ...Option) http.Handler {
	if exp == nil || auth == nil {
		panic("httpapi: TokenHandler needs an Exporter and an access.Authenticator")
	}
	h := newHandler(exp, opts)
	h.auth = func(r *http.Request, need access.Permission) (string, string, error) {
		p, err := auth.Authenticate(r.Context(), access.BearerSecret(r))
		if err != nil {
			if errors.Is(err, access.ErrUnauthenticated) {
				return "", "", &unauthorized{err}
			}
			return "", "", err
		}
		if !p.Allows(need) {
			return "", "", &forbidden{p, need}
		}
		return p.TenantID, p.Actor(), nil
	}
	return h.routes()
}

func newHandler(exp *export.Exporter, opts []Option) *handler {
	h := &handler{exp: exp, actor: func(*http.Request) (string, error) { return "api", nil },
		logErr: func(*http.Request, error) {}, logRefused: func(*http.Request, int, error) {}}
	for _, o := range opts {
		if o != nil {
			o(h)
		}
	}
	return h
}

func (h *handler) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /incidents/{id}/export/evidence", h.export(bundle.TypeEvidence, export.FormatJSON, true))
	mux.HandleFunc("POST /incidents/{id}/export/soc2", h.export(bundle.TypeSOC2, export.FormatPDF, true))
	mux.HandleFunc("POST /incidents/{id}/export/executive-debrief", h.export(bundle.TypeExecutiveDebrief, export.FormatPDF, true))
	mux.HandleFunc("POST /runs/{id}/export/evidence", h.export(bundle.TypeEvidence, export.FormatJSON, false))
	mux.HandleFunc("GET /runs/{id}", h.run)
	mux.HandleFunc("GET /runs/{id}/explain", h.explain)
	mux.HandleFunc("GET /incidents/{id}", h.incident)
	if h.pub != nil {
		mux.HandleFunc("POST /policies", h.publish)
	}
	return mux
}

func (h *handler) publish(w http.ResponseWriter, r *http.Request) {
	tenant, actor, err := h.auth(r, access.Administer)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	note := r.URL.Query().Get("note")
	if len(note) > maxTextParam {
		h.fail(w, r, bad("note longer than %d bytes", maxTextParam))
		return
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, snapshot.MaxFileSize+1))
	if err != nil {
		h.fail(w, r, bad("reading the policy file: %v", err))
		return
	}
	snap, err := snapshot.Parse("request body", data, h.exp.Clock().Now(), h.pub.Kinds())
	if err != nil {
		h.fail(w, r, bad("%v", err))
		return
	}
	if snap.TenantID() != tenant {
		h.fail(w, r, bad("the policy file is for tenant %q; the token is for %q", snap.TenantID(), tenant))
		return
	}
	v, err := h.pub.Publish(r.Context(), snap, actor, note)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.json(w, v)
}

// badRequest is a parameter error: 400.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func bad(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

type unauthorized struct{ err error }

func (e *unauthorized) Error() string { return "unauthorized: " + e.err.Error() }

func (e *unauthorized) Unwrap() error { return e.err }

// forbidden: the principal's role does not allow the route.
type forbidden struct {
	p    access.Principal
	need access.Permission
}

func (e *forbidden) Error() string {
	return fmt.Sprintf("forbidden: token %s has role %s, which does not allow %s", e.p.TokenID, e.p.Role, e.need)
}

func (h *handler) tenantOf(r *http.Request) (string, error) {
	t, _, err := h.auth(r, access.Read)
	return t, err
}

func (h *handler) export(t bundle.Type, def export.Format, byIncident bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		tenant, actor, err := h.auth(r, access.Export)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		req, f, err := exportParams(r, t, def)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		req.TenantID, req.ExportedBy = tenant, actor
		if byIncident {
			req.IncidentID = r.PathValue("id")
		} else {
			req.RunID = r.PathValue("id")
		}
		a, err := h.exp.Export(r.Context(), t, req, f)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		hd := w.Header()
		hd.Set("Content-Type", a.ContentType)
		hd.Set("Content-Disposition", `attachment; filename="`+a.Filename+`"`)
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Stopline-Bundle-Id", a.Record.BundleID)
		hd.Set("X-Stopline-Bundle-Hash", a.Sealed.Hash)
		if id := a.Sealed.KeyID(); id != "" {
			hd.Set("X-Stopline-Key-Id", id)
		}
		w.WriteHeader(http.StatusOK)
		_, _ = a.WriteTo(w)
	}
}

func exportParams(r *http.Request, t bundle.Type, def export.Format) (export.Request, export.Format, error) {
	q := r.URL.Query()
	var req export.Request
	f := def
	if v := q.Get("format"); v != "" {
		var err error
		if f, err = export.ParseFormat(v); err != nil {
			return req, "", bad("format %q: want json or pdf", v)
		}
	}
	req.Reason = q.Get("reason")
	if len(req.Reason) > maxTextParam {
		return req, "", bad("reason longer than %d bytes", maxTextParam)
	}
	if v := q.Get("content"); v != "" {
		if t == bundle.TypeExecutiveDebrief {
			return req, "", bad("content: an executive debrief holds no step content")
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return req, "", bad("content %q: want true or false", v)
		}
		req.IncludeContent = b
	}
	if t == bundle.TypeSOC2 {
		req.AuditorNotes = q.Get("notes")
		if len(req.AuditorNotes) > maxTextParam {
			return req, "", bad("notes longer than %d bytes", maxTextParam)
		}
		from, to := q.Get("from"), q.Get("to")
		if (from == "") != (to == "") {
			return req, "", bad("from and to: give both (RFC 3339) or neither")
		}
		if from != "" {
			var err error
			if req.From, err = time.Parse(time.RFC3339Nano, from); err != nil {
				return req, "", bad("from %q: not an RFC 3339 time", from)
			}
			if req.To, err = time.Parse(time.RFC3339Nano, to); err != nil {
				return req, "", bad("to %q: not an RFC 3339 time", to)
			}
			if !req.From.Before(req.To) {
				return req, "", bad("from %s is not before to %s", from, to)
			}
		}
	} else if q.Has("from") || q.Has("to") || q.Has("notes") {
		return req, "", bad("from, to and notes apply to SOC2 exports only")
	}
	return req, f, nil
}

func (h *handler) run(w http.ResponseWriter, r *http.Request) {
	tenant, err := h.tenantOf(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	run, err := h.exp.Store().Run(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.json(w, run)
}

func (h *handler) explain(w http.ResponseWriter, r *http.Request) {
	tenant, err := h.tenantOf(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	at := h.exp.Clock().Now()
	if v := r.URL.Query().Get("at"); v != "" {
		if at, err = time.Parse(time.RFC3339Nano, v); err != nil {
			h.fail(w, r, bad("at %q: not an RFC 3339 time", v))
			return
		}
	}
	ex, err := governance.Explain(r.Context(), h.exp.Store(), tenant, r.PathValue("id"), at)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.json(w, ex)
}

func (h *handler) incident(w http.ResponseWriter, r *http.Request) {
	tenant, err := h.tenantOf(r)
	if err != nil {
		h.fail(w, r, err)
		return
	}
	inc, err := h.exp.Store().Incident(r.Context(), tenant, r.PathValue("id"))
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.json(w, inc)
}

func (h *handler) json(w http.ResponseWriter, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "internal error")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(append(body, '\n'))
}

// fail answers an error with its status and a JSON body.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	var (
		br *badRequest
		ua *unauthorized
		fb *forbidden
	)
	switch {
	case errors.As(err, &ua):
		h.logRefused(r, http.StatusUnauthorized, err)
		if errors.Is(err, access.ErrUnauthenticated) {
			// Why a token was refused is for the log: the caller learns
			// nothing about which tokens exist.
			writeError(w, http.StatusUnauthorized, "unauthorized: a valid API token is required (Authorization: Bearer stl_...)")
			return
		}
		writeError(w, http.StatusUnauthorized, ua.Error())
	case errors.As(err, &fb):
		h.logRefused(r, http.StatusForbidden, err)
		writeError(w, http.StatusForbidden, fmt.Sprintf("forbidden: role %s does not allow %s", fb.p.Role, fb.need))
	case errors.As(err, &br):
		h.logRefused(r, http.StatusBadRequest, err)
		writeError(w, http.StatusBadRequest, br.Error())
	case errors.Is(err, governance.ErrNotFound):
		// The same answer for an id that does not exist and one of
		// another tenant.
		h.logRefused(r, http.StatusNotFound, err)
		writeError(w, http.StatusNotFound, "not found: "+r.PathValue("id"))
	case errors.Is(err, export.ErrInvalidRequest), errors.Is(err, export.ErrNoIncident), errors.Is(err, governance.ErrBeforeRun):
		h.logRefused(r, http.StatusBadRequest, err)
		writeError(w, http.StatusBadRequest, err.Error())
	case errors.Is(err, export.ErrNoRenderer):
		h.logErr(r, err)
		writeError(w, http.StatusNotImplemented, "PDF exports are not enabled on this server; ask for format=json")
	case errors.Is(err, export.ErrStoreIntegrity), errors.Is(err, trace.ErrChainBroken), errors.Is(err, snapshot.ErrHashMismatch), errors.Is(err, governance.ErrIntegrity):
		h.logErr(r, err)
		writeError(w, http.StatusInternalServerError, "stored records do not verify; nothing was exported")
	default:
		h.logErr(r, err)
		writeError(w, http.StatusInternalServerError, "internal error")
	}
}

func writeError(w http.ResponseWriter, status int, msg string) {
	body, _ := json.Marshal(struct {
		Error string `json:"error"`
	}{msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
