package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/snapshot"
)

// maxListed bounds the rows of a list page.
const maxListed = 200

func (c *Console) routes() {
	b := c.cfg.base
	m := http.NewServeMux()
	m.HandleFunc("GET "+b+"static/console.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		w.Header().Set("Cache-Control", "max-age=3600")
		_, _ = w.Write(c.css)
	})
	m.HandleFunc("GET "+b+"login", c.loginPage)
	m.HandleFunc("POST "+b+"login", c.login)
	m.HandleFunc("POST "+b+"logout", c.handle(access.Read, c.logout))
	m.HandleFunc("GET "+b+"{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, b+"runs", http.StatusSeeOther) })
	m.HandleFunc("GET "+b+"runs", c.handle(access.Read, c.runs))
	m.HandleFunc("GET "+b+"runs/{id}", c.handle(access.Read, c.run))
	m.HandleFunc("POST "+b+"runs/{id}/export/evidence", c.handle(access.Export, c.exportRun))
	m.HandleFunc("GET "+b+"incidents", c.handle(access.Read, c.incidents))
	m.HandleFunc("GET "+b+"incidents/{id}", c.handle(access.Read, c.incident))
	m.HandleFunc("POST "+b+"incidents/{id}/acknowledge", c.handle(access.Operate, c.transition(incident.StatusAcknowledged)))
	m.HandleFunc("POST "+b+"incidents/{id}/resolve", c.handle(access.Operate, c.transition(incident.StatusResolved)))
	m.HandleFunc("POST "+b+"incidents/{id}/export/{kind}", c.handle(access.Export, c.exportIncident))
	m.HandleFunc("GET "+b+"policies", c.handle(access.Read, c.policies))
	if c.cfg.pub != nil {
		m.HandleFunc("POST "+b+"policies/publish", c.handle(access.Administer, c.publish))
	}
	if c.tokens() != nil {
		m.HandleFunc("GET "+b+"tokens", c.handle(access.Administer, c.tokenPage))
		m.HandleFunc("POST "+b+"tokens/{id}/revoke", c.handle(access.Administer, c.revokeToken))
	}
	for _, e := range c.cfg.exts {
		s := e.Section()
		m.HandleFunc("GET "+b+"x/"+s.Path, c.handle(s.View, c.extPage(e)))
		m.HandleFunc("POST "+b+"x/"+s.Path+"/{action}", c.handle(s.Act, c.extAct(e)))
	}
	c.mux = m
}

func (c *Console) tokens() governance.TokenStore {
	ts, _ := c.store.(governance.TokenStore)
	return ts
}

// navItem is one entry of the navigation bar.
type navItem struct {
	Href, Title string
	Current     bool
}

// page is what every page's template gets.
type page struct {
	Title   string
	Base    string
	Nav     []navItem
	Who     access.Principal
	Actor   string
	CSRF    template.HTML
	Flash   string
	Can     map[string]bool
	Data    any
	Current string
}

func (c *Console) newPage(req *request, title, current string, data any) page {
	p := page{Title: title, Base: c.cfg.base, Who: req.p, Actor: req.actor, Flash: req.flash, Data: data, Current: current,
		CSRF: template.HTML(`<input type="hidden" name="` + csrfField + `" value="` + template.HTMLEscapeString(req.csrf) + `">`),
		Can: map[string]bool{
			"read": req.p.Allows(access.Read), "export": req.p.Allows(access.Export),
			"operate": req.p.Allows(access.Operate), "admin": req.p.Allows(access.Administer),
		}}
	add := func(href, t string, ok bool) {
		if ok {
			p.Nav = append(p.Nav, navItem{Href: c.cfg.base + href, Title: t, Current: href == current})
		}
	}
	add("runs", "Runs", true)
	add("incidents", "Incidents", true)
	add("policies", "Policies", true)
	for _, e := range c.cfg.exts {
		s := e.Section()
		add("x/"+s.Path, s.Title, req.p.Allows(s.View))
	}
	add("tokens", "Tokens", c.tokens() != nil && req.p.Allows(access.Administer))
	return p
}

func (c *Console) render(w http.ResponseWriter, status int, name string, p page) error {
	t, ok := c.pages[name]
	if !ok {
		return fmt.Errorf("console: no page template %q", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		return fmt.Errorf("console: rendering %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = buf.WriteTo(w)
	return nil
}

// done redirects after a POST to path, with a message to show.
func (c *Console) done(w http.ResponseWriter, req *request, path, msg string) error {
	u := c.cfg.base + path
	if msg != "" {
		u += "?done=" + url.QueryEscape(msg)
	}
	http.Redirect(w, req.r, u, http.StatusSeeOther)
	return nil
}

// ---- sign-in

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	if c.cfg.auth == nil {
		http.Redirect(w, r, c.cfg.base+"runs", http.StatusSeeOther)
		return
	}
	_ = c.render(w, http.StatusOK, "login", page{Title: "Sign in", Base: c.cfg.base})
}

func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	if c.cfg.auth == nil {
		c.refuse(w, r, http.StatusNotFound, errors.New("sign-in with a token is not enabled"))
		return
	}
	if o := r.Header.Get("Origin"); o != "" && o != "null" && !sameOrigin(o, r) {
		c.refuse(w, r, http.StatusForbidden, fmt.Errorf("cross-origin sign-in from %s", o))
		return
	}
	secret := strings.TrimSpace(r.PostFormValue("token"))
	p, err := c.cfg.auth.Authenticate(r.Context(), secret)
	if err != nil {
		if !errors.Is(err, access.ErrUnauthenticated) {
			c.fail(w, r, err)
			return
		}
		c.cfg.log.LogAttrs(r.Context(), slog.LevelInfo, "console: sign-in refused", slogReason(r, err)...)
		_ = c.render(w, http.StatusUnauthorized, "login", page{Title: "Sign in", Base: c.cfg.base, Flash: "That token was not accepted."})
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: secret, Path: c.cfg.base, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: c.cfg.secureCooky || r.TLS != nil})
	c.cfg.log.Info("console: signed in", "token", p.TokenID, "tenant", p.TenantID, "role", p.Role.String())
	http.Redirect(w, r, c.cfg.base+"runs", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, req *request) error {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: c.cfg.base, MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, req.r, c.cfg.base+"login", http.StatusSeeOther)
	return nil
}

// ---- runs

type runsData struct {
	Runs                    []governance.RunRecord
	Status, Label, From, To string
	Statuses                []string
	Truncated               bool
}

func parseDay(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	t, err := time.Parse("2006-01-02", v)
	if err != nil {
		return time.Time{}, badInput("%s %q: want a date (2006-01-02) or an RFC 3339 time", name, v)
	}
	return t, nil
}

func (c *Console) runs(w http.ResponseWriter, req *request) error {
	q := req.r.URL.Query()
	d := runsData{Status: q.Get("status"), Label: q.Get("label"), From: q.Get("from"), To: q.Get("to"),
		Statuses: []string{"queued", "running", "succeeded", "failed", "failed_policy", "cancelled"}}
	f := governance.RunFilter{TenantID: req.p.TenantID, Status: governance.RunStatus(d.Status), Limit: maxListed + 1}
	if d.Status != "" && !slices.Contains(d.Statuses, d.Status) {
		return badInput("status %q", d.Status)
	}
	var err error
	if f.From, err = parseDay("from", d.From); err != nil {
		return err
	}
	if f.To, err = parseDay("to", d.To); err != nil {
		return err
	}
	if d.To != "" && !strings.Contains(d.To, "T") {
		f.To = f.To.Add(24 * time.Hour) // a day given as "to" includes that day
	}
	lk, lv, hasLabel := strings.Cut(d.Label, "=")
	if d.Label != "" && (!hasLabel || lk == "") {
		return badInput("label %q: want key=value", d.Label)
	}
	if hasLabel {
		f.Limit = 0 // labels are filtered here, after the store's listing
	}
	list, err := c.store.Runs(req.r.Context(), f)
	if err != nil {
		return err
	}
	for _, r := range list {
		if hasLabel && r.Labels[lk] != lv {
			continue
		}
		if len(d.Runs) == maxListed {
			d.Truncated = true
			break
		}
		d.Runs = append(d.Runs, r)
	}
	return c.render(w, http.StatusOK, "runs", c.newPage(req, "Runs", "runs", d))
}

// maxStepRows bounds the steps table of a run page.
const maxStepRows = 1000

type runData struct {
	Run       governance.RunRecord
	MoreSteps int // steps past maxStepRows, not in the table
	Timeline  *timeline
	Steps     []stepRow
	Incident  *incident.Incident
	Explain   *governance.Explanation
	ExplainAt string
	Labels    []string
}

type stepRow struct {
	Index               int
	At, Type, What      string
	Status              string
	Tokens, TotalTokens int64
	Cost, TotalCost     float64
	Findings            []string
	Inflection          bool
	ExplainAt           string
}

func (c *Console) run(w http.ResponseWriter, req *request) error {
	ctx := req.r.Context()
	id := req.r.PathValue("id")
	run, err := c.store.Run(ctx, req.p.TenantID, id)
	if err != nil {
		return err
	}
	recs, err := c.store.Records(ctx, req.p.TenantID, id)
	if err != nil {
		return err
	}
	snap, err := c.store.Snapshot(ctx, req.p.TenantID, run.SnapshotID)
	if err != nil {
		return err
	}
	var markers []Marker
	for _, e := range c.cfg.exts {
		if rm, ok := e.(RunMarkers); ok && req.p.Allows(e.Section().View) {
			ms, err := rm.Markers(ctx, req.p.TenantID, id)
			if err != nil {
				return err
			}
			markers = append(markers, ms...)
		}
	}
	d := runData{Run: run, Timeline: newTimeline(recs, snap, markers)}
	for k, v := range run.Labels {
		d.Labels = append(d.Labels, k+"="+v)
	}
	slices.Sort(d.Labels)
	for _, r := range recs {
		if r.StepIndex < 0 || r.Kind != "step" {
			continue
		}
		if len(d.Steps) == maxStepRows && !r.Inflection {
			d.MoreSteps++
			continue
		}
		what := r.Tool
		if what == "" {
			what = r.Model
		}
		row := stepRow{Index: r.StepIndex, At: r.At.UTC().Format("15:04:05.000"), Type: string(r.StepType), What: what,
			Status: string(r.Status), Tokens: r.Tokens, TotalTokens: r.TotalTokens, Cost: r.CostCents, TotalCost: r.TotalCostCents,
			Inflection: r.Inflection, ExplainAt: r.At.UTC().Format(time.RFC3339Nano)}
		for _, f := range r.Findings {
			row.Findings = append(row.Findings, fmt.Sprintf("%s: %s (%s)", f.PolicyID, f.Action, f.Enforcement))
		}
		if r.Inflection && r.Decision != nil {
			row.Findings = append(row.Findings, fmt.Sprintf("stopped by %s: %s", r.Decision.PolicyID, r.Decision.Reason))
		}
		d.Steps = append(d.Steps, row)
	}
	if run.IncidentID != "" {
		inc, err := c.store.Incident(ctx, req.p.TenantID, run.IncidentID)
		if err != nil {
			return err
		}
		d.Incident = &inc
	}
	if at := req.r.URL.Query().Get("at"); at != "" {
		t, err := time.Parse(time.RFC3339Nano, at)
		if err != nil {
			return badInput("at %q: not an RFC 3339 time", at)
		}
		ex, err := governance.Explain(ctx, c.store, req.p.TenantID, id, t)
		if err != nil {
			return err
		}
		d.Explain, d.ExplainAt = ex, t.UTC().Format(time.RFC3339Nano)
	}
	return c.render(w, http.StatusOK, "run", c.newPage(req, "Run "+run.RunID, "runs", d))
}

// ---- incidents

type incidentsData struct {
	Incidents []incident.Incident
	Status    string
	Truncated bool
}

func (c *Console) incidents(w http.ResponseWriter, req *request) error {
	st := req.r.URL.Query().Get("status")
	if st != "" && !incident.Status(st).Valid() {
		return badInput("status %q", st)
	}
	list, err := c.store.Incidents(req.r.Context(), governance.IncidentFilter{TenantID: req.p.TenantID, Status: incident.Status(st), Limit: maxListed + 1})
	if err != nil {
		return err
	}
	d := incidentsData{Incidents: list, Status: st}
	if len(list) > maxListed {
		d.Incidents, d.Truncated = list[:maxListed], true
	}
	return c.render(w, http.StatusOK, "incidents", c.newPage(req, "Incidents", "incidents", d))
}

func (c *Console) incident(w http.ResponseWriter, req *request) error {
	inc, err := c.store.Incident(req.r.Context(), req.p.TenantID, req.r.PathValue("id"))
	if err != nil {
		return err
	}
	return c.render(w, http.StatusOK, "incident", c.newPage(req, "Incident "+inc.ID, "incidents", inc))
}

func (c *Console) transition(to incident.Status) func(http.ResponseWriter, *request) error {
	return func(w http.ResponseWriter, req *request) error {
		ctx := req.r.Context()
		inc, err := c.store.Incident(ctx, req.p.TenantID, req.r.PathValue("id"))
		if err != nil {
			return err
		}
		note := strings.TrimSpace(req.r.PostFormValue("note"))
		if len(note) > 4096 {
			return badInput("note longer than 4096 bytes")
		}
		next, err := inc.Transition(to, req.actor, note, req.now)
		if errors.Is(err, incident.ErrInvalidTransition) {
			return badInput("%v", err)
		}
		if err != nil {
			return err
		}
		if err := c.store.UpdateIncident(ctx, next); err != nil {
			if errors.Is(err, incident.ErrInvalidTransition) {
				return badInput("%v", err)
			}
			return err
		}
		return c.done(w, req, "incidents/"+url.PathEscape(inc.ID), fmt.Sprintf("Incident %s %s by %s.", inc.ID, to, req.actor))
	}
}

// ---- exports

var exportKinds = map[string]bundle.Type{
	"evidence": bundle.TypeEvidence, "soc2": bundle.TypeSOC2, "executive-debrief": bundle.TypeExecutiveDebrief,
}

func (c *Console) exportIncident(w http.ResponseWriter, req *request) error {
	t, ok := exportKinds[req.r.PathValue("kind")]
	if !ok {
		return fmt.Errorf("export %q: %w", req.r.PathValue("kind"), governance.ErrNotFound)
	}
	return c.export(w, req, t, export.Request{IncidentID: req.r.PathValue("id")})
}

func (c *Console) exportRun(w http.ResponseWriter, req *request) error {
	return c.export(w, req, bundle.TypeEvidence, export.Request{RunID: req.r.PathValue("id")})
}

func (c *Console) export(w http.ResponseWriter, req *request, t bundle.Type, er export.Request) error {
	f := export.FormatPDF
	if v := req.r.PostFormValue("format"); v != "" {
		var err error
		if f, err = export.ParseFormat(v); err != nil {
			return badInput("format %q: want json or pdf", v)
		}
	}
	er.TenantID, er.ExportedBy = req.p.TenantID, req.actor
	er.Reason = strings.TrimSpace(req.r.PostFormValue("reason"))
	if len(er.Reason) > 4096 {
		return badInput("reason longer than 4096 bytes")
	}
	if er.Reason == "" {
		er.Reason = "console download"
	}
	a, err := c.exp.Export(req.r.Context(), t, er, f)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", a.ContentType)
	h.Set("Content-Disposition", `attachment; filename="`+a.Filename+`"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Stopline-Bundle-Hash", a.Sealed.Hash)
	w.WriteHeader(http.StatusOK)
	_, _ = a.WriteTo(w)
	return nil
}

// ---- policies

type policiesData struct {
	CanPublish bool
	Versions   []governance.PolicyVersion
	A, B       int
	Diff       []diffLine
	Added      int
	Removed    int
}

// policyText is a snapshot's policies and thresholds as indented JSON,
// one field a line, for a line diff.
func policyText(s *snapshot.PolicySnapshot) (string, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return "", err
	}
	var w struct {
		Thresholds json.RawMessage `json:"thresholds"`
		Policies   json.RawMessage `json:"policies"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return "", err
	}
	var out bytes.Buffer
	out.WriteString(`{"thresholds": `)
	if err := json.Indent(&out, w.Thresholds, "", "  "); err != nil {
		return "", err
	}
	out.WriteString(",\n\"policies\": ")
	if err := json.Indent(&out, w.Policies, "", "  "); err != nil {
		return "", err
	}
	out.WriteString("}")
	return out.String(), nil
}

func (c *Console) policies(w http.ResponseWriter, req *request) error {
	ctx := req.r.Context()
	vs, err := c.store.PolicyVersions(ctx, req.p.TenantID)
	if err != nil {
		return err
	}
	d := policiesData{Versions: vs, CanPublish: c.cfg.pub != nil && req.p.Allows(access.Administer)}
	slices.Reverse(d.Versions) // newest first
	q := req.r.URL.Query()
	if q.Get("a") != "" || q.Get("b") != "" {
		a, errA := strconv.Atoi(q.Get("a"))
		b, errB := strconv.Atoi(q.Get("b"))
		if errA != nil || errB != nil {
			return badInput("a and b: give two version numbers")
		}
		find := func(n int) (*snapshot.PolicySnapshot, error) {
			for _, v := range vs {
				if v.Version == n {
					return c.store.Snapshot(ctx, req.p.TenantID, v.SnapshotID)
				}
			}
			return nil, fmt.Errorf("policy version %d: %w", n, governance.ErrNotFound)
		}
		sa, err := find(a)
		if err != nil {
			return err
		}
		sb, err := find(b)
		if err != nil {
			return err
		}
		ta, err := policyText(sa)
		if err != nil {
			return err
		}
		tb, err := policyText(sb)
		if err != nil {
			return err
		}
		d.A, d.B, d.Diff = a, b, lineDiff(ta, tb)
		for _, l := range d.Diff {
			switch l.Op {
			case "+":
				d.Added++
			case "-":
				d.Removed++
			}
		}
	}
	return c.render(w, http.StatusOK, "policies", c.newPage(req, "Policy versions", "policies", d))
}

func (c *Console) publish(w http.ResponseWriter, req *request) error {
	src := req.r.PostFormValue("policy")
	note := strings.TrimSpace(req.r.PostFormValue("note"))
	if len(note) > 4096 {
		return badInput("note longer than 4096 bytes")
	}
	snap, err := snapshot.Parse("the policy file", []byte(src), req.now, c.cfg.pub.Kinds())
	if err != nil {
		return badInput("%v", err)
	}
	if snap.TenantID() != req.p.TenantID {
		return badInput("the policy file is for tenant %q; you act for %q", snap.TenantID(), req.p.TenantID)
	}
	v, err := c.cfg.pub.Publish(req.r.Context(), snap, req.actor, note)
	if err != nil {
		return err
	}
	c.cfg.log.Info("console: policy published", "tenant", v.TenantID, "version", v.Version, "snapshot", v.SnapshotID, "by", req.actor)
	return c.done(w, req, "policies", fmt.Sprintf("Published version %d (%s).", v.Version, v.SnapshotID))
}

// ---- tokens (admin)

type tokenRow struct {
	governance.Token
	Status string
}

func (c *Console) tokenPage(w http.ResponseWriter, req *request) error {
	list, err := c.tokens().Tokens(req.r.Context(), req.p.TenantID)
	if err != nil {
		return err
	}
	rows := make([]tokenRow, 0, len(list))
	for _, t := range list {
		st := "active"
		switch {
		case t.RevokedAt != nil:
			st = "revoked"
		case !req.now.Before(t.ExpiresAt):
			st = "expired"
		}
		rows = append(rows, tokenRow{t, st})
	}
	return c.render(w, http.StatusOK, "tokens", c.newPage(req, "API tokens", "tokens", rows))
}

func (c *Console) revokeToken(w http.ResponseWriter, req *request) error {
	ts := c.tokens()
	ctx := req.r.Context()
	id := req.r.PathValue("id")
	t, err := ts.Token(ctx, id)
	if err == nil && t.TenantID != req.p.TenantID {
		err = fmt.Errorf("token %s: %w", id, governance.ErrNotFound) // another tenant's: not found
	}
	if err != nil {
		return err
	}
	if _, err := ts.RevokeToken(ctx, id, req.now); err != nil {
		return err
	}
	c.cfg.log.Info("console: token revoked", "token", id, "by", req.actor)
	return c.done(w, req, "tokens", "Token "+id+" revoked.")
}

// ---- extensions

func (c *Console) viewer(req *request) Viewer {
	return Viewer{Principal: req.p, Actor: req.actor, Now: req.now, base: c.cfg.base,
		CSRFField: template.HTML(`<input type="hidden" name="` + csrfField + `" value="` + template.HTMLEscapeString(req.csrf) + `">`)}
}

type extData struct {
	Section Section
	Body    template.HTML
}

func (c *Console) extPage(e Extension) func(http.ResponseWriter, *request) error {
	return func(w http.ResponseWriter, req *request) error {
		body, err := e.Page(req.r.Context(), c.viewer(req), req.r.URL.Query())
		if err != nil {
			return err
		}
		s := e.Section()
		return c.render(w, http.StatusOK, "extension", c.newPage(req, s.Title, "x/"+s.Path, extData{s, body}))
	}
}

func (c *Console) extAct(e Extension) func(http.ResponseWriter, *request) error {
	return func(w http.ResponseWriter, req *request) error {
		s := e.Section()
		msg, err := e.Act(req.r.Context(), c.viewer(req), req.r.PathValue("action"), req.r.PostForm)
		if err != nil {
			return err
		}
		c.cfg.log.Info("console: action", "section", s.Path, "action", req.r.PathValue("action"), "by", req.actor, "tenant", req.p.TenantID)
		return c.done(w, req, "x/"+s.Path, msg)
	}
}
