package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/httpapi"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/trace"
)

var ctx = context.Background()

func newServer(t *testing.T, f *fixture.F) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(httpapi.Handler(f.Exp, httpapi.HeaderTenant("X-Stopline-Tenant"), httpapi.WithActor(httpapi.HeaderActor("X-Stopline-Actor")),
		httpapi.WithErrorLog(func(r *http.Request, err error) { t.Logf("%s %s: %v", r.Method, r.URL, err) })))
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func call(t *testing.T, srv *httptest.Server, method, path, tenant string) response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tenant != "" {
		req.Header.Set("X-Stopline-Tenant", tenant)
	}
	req.Header.Set("X-Stopline-Actor", "alice@example.com")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, body}
}

func TestHandlerExports(t *testing.T) {
	f := fixture.New(t, nil)
	srv := newServer(t, f)
	tests := []struct {
		path        string
		contentType string
		typ         bundle.Type
		filePrefix  string
	}{
		{"/incidents/INC-0001/export/evidence", "application/json", bundle.TypeEvidence, "evidence-INC-0001-BND-"},
		{"/incidents/INC-0001/export/evidence?format=json&content=true&reason=post-mortem", "application/json", bundle.TypeEvidence, "evidence-INC-0001-BND-"},
		{"/incidents/INC-0001/export/evidence?format=pdf", "application/pdf", bundle.TypeEvidence, "evidence-INC-0001-BND-"},
		{"/incidents/INC-0001/export/soc2", "application/pdf", bundle.TypeSOC2, "soc2-INC-0001-BND-"},
		{"/incidents/INC-0001/export/soc2?format=json&from=2026-02-01T00:00:00Z&to=2026-03-01T12:00:00%2B01:00&notes=sampled", "application/json", bundle.TypeSOC2, "soc2-INC-0001-BND-"},
		{"/incidents/INC-0001/export/executive-debrief", "application/pdf", bundle.TypeExecutiveDebrief, "executive_debrief-INC-0001-BND-"},
		{"/incidents/INC-0002/export/executive-debrief?format=json", "application/json", bundle.TypeExecutiveDebrief, "executive_debrief-INC-0002-BND-"},
		{"/runs/RUN-0003/export/evidence", "application/json", bundle.TypeEvidence, "evidence-RUN-0003-BND-"},
		{"/runs/RUN-0003/export/evidence?format=pdf", "application/pdf", bundle.TypeEvidence, "evidence-RUN-0003-BND-"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			r := call(t, srv, http.MethodPost, tc.path, "acme")
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != tc.contentType {
				t.Errorf("Content-Type %q, want %q", ct, tc.contentType)
			}
			cd := r.header.Get("Content-Disposition")
			ext := "." + strings.TrimPrefix(tc.contentType, "application/")
			if !strings.HasPrefix(cd, `attachment; filename="`+tc.filePrefix) || !strings.HasSuffix(cd, ext+`"`) {
				t.Errorf("Content-Disposition %q, want an attachment named %s…%s", cd, tc.filePrefix, ext)
			}
			hash, id := r.header.Get("X-Stopline-Bundle-Hash"), r.header.Get("X-Stopline-Bundle-Id")
			if len(hash) != 64 || !strings.HasPrefix(id, "BND-") || r.header.Get("X-Stopline-Key-Id") != bundle.KeyID(f.Pub) {
				t.Errorf("bundle headers: hash %q id %q key %q", hash, id, r.header.Get("X-Stopline-Key-Id"))
			}
			if tc.contentType == "application/pdf" {
				if !bytes.HasPrefix(r.body, []byte("%PDF-")) {
					t.Errorf("body is not a PDF")
				}
				return
			}
			v, err := bundle.Verify(r.body, f.Pub)
			if err != nil {
				t.Fatalf("exported JSON does not verify: %v", err)
			}
			if v.Hash != hash || v.Bundle.Type() != tc.typ || v.Bundle.ID() != id {
				t.Errorf("verified %s %s %s; headers say %s %s", v.Bundle.Type(), v.Bundle.ID(), v.Hash, id, hash)
			}
			switch b := v.Bundle.(type) {
			case *bundle.Evidence:
				if b.ExportedBy != "alice@example.com" {
					t.Errorf("exported_by %q", b.ExportedBy)
				}
				if strings.Contains(tc.path, "content=true") && (b.Steps[0].Content == nil || b.Steps[0].Content.Input != "Найди отчёт" || b.ExportReason != "post-mortem") {
					t.Errorf("content or reason missing: %+v %q", b.Steps[0].Content, b.ExportReason)
				}
			case *bundle.SOC2:
				if b.CompliancePeriodStart.Format("2006-01-02T15") != "2026-02-01T00" || b.CompliancePeriodEnd.Format("2006-01-02T15") != "2026-03-01T11" || b.AuditorNotes != "sampled" {
					t.Errorf("period [%v, %v) notes %q", b.CompliancePeriodStart, b.CompliancePeriodEnd, b.AuditorNotes)
				}
			case *bundle.ExecutiveDebrief:
				if b.IncidentID != "INC-0002" || b.RiskLevel != bundle.RiskMedium {
					t.Errorf("debrief of %s, risk %s", b.IncidentID, b.RiskLevel)
				}
			}
		})
	}
	// Every export went to the export log.
	log, err := f.Store.Exports(ctx, governance.ExportFilter{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	if len(log) != len(tests) {
		t.Errorf("export log has %d entries, want %d", len(log), len(tests))
	}
	for _, e := range log {
		if e.ExportedBy != "alice@example.com" || e.KeyID != bundle.KeyID(f.Pub) {
			t.Errorf("export log entry %+v", e)
		}
	}
}

func TestHandlerReads(t *testing.T) {
	f := fixture.New(t, nil)
	srv := newServer(t, f)

	r := call(t, srv, http.MethodGet, "/runs/RUN-0001", "acme")
	var run governance.RunRecord
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" || json.Unmarshal(r.body, &run) != nil {
		t.Fatalf("GET run: %d %s", r.status, r.body)
	}
	if run.RunID != "RUN-0001" || run.Status != governance.StatusFailedPolicy || run.IncidentID != "INC-0001" {
		t.Errorf("run: %+v", run)
	}

	r = call(t, srv, http.MethodGet, "/incidents/INC-0001", "acme")
	var inc incident.Incident
	if r.status != http.StatusOK || json.Unmarshal(r.body, &inc) != nil {
		t.Fatalf("GET incident: %d %s", r.status, r.body)
	}
	if inc.ID != "INC-0001" || inc.PolicyID != "tools" || inc.StepIndex != 3 {
		t.Errorf("incident: %+v", inc)
	}

	tests := []struct {
		at    string
		state governance.ExecutionState
		step  int
	}{
		{"2026-03-01T09:00:04Z", governance.StateContinuing, 1},
		{"2026-03-01T09:00:06Z", governance.StateStopped, 3},
		{"", governance.StateStopped, 3}, // now
	}
	for _, tc := range tests {
		r := call(t, srv, http.MethodGet, "/runs/RUN-0001/explain?at="+tc.at, "acme")
		var ex governance.Explanation
		if r.status != http.StatusOK || json.Unmarshal(r.body, &ex) != nil {
			t.Fatalf("explain at %q: %d %s", tc.at, r.status, r.body)
		}
		if ex.State != tc.state || ex.LastStep == nil || ex.LastStep.Index != tc.step || !ex.Record.Verified {
			t.Errorf("explain at %q: state %s, last step %+v", tc.at, ex.State, ex.LastStep)
		}
	}
}

func TestHandlerErrors(t *testing.T) {
	f := fixture.New(t, nil)
	srv := newServer(t, f)
	tests := []struct {
		name   string
		method string
		path   string
		tenant string
		status int
		msg    string
	}{
		{"another tenant's incident", "POST", "/incidents/INC-0003/export/evidence", "acme", 404, "not found"},
		{"another tenant's incident, soc2", "POST", "/incidents/INC-0001/export/soc2", "globex", 404, "not found"},
		{"another tenant's incident, debrief", "POST", "/incidents/INC-0001/export/executive-debrief", "globex", 404, "not found"},
		{"another tenant's run export", "POST", "/runs/RUN-0004/export/evidence", "acme", 404, "not found"},
		{"another tenant's run", "GET", "/runs/RUN-0004", "acme", 404, "not found"},
		{"another tenant's explain", "GET", "/runs/RUN-0004/explain", "acme", 404, "not found"},
		{"another tenant's incident read", "GET", "/incidents/INC-0003", "acme", 404, "not found"},
		{"unknown incident", "POST", "/incidents/INC-9999/export/evidence", "acme", 404, "not found"},
		{"unknown run", "GET", "/runs/RUN-9999", "acme", 404, "not found"},
		{"unknown incident read", "GET", "/incidents/nope", "acme", 404, "not found"},
		{"no tenant", "POST", "/incidents/INC-0001/export/evidence", "", 401, "unauthorized"},
		{"no tenant on read", "GET", "/runs/RUN-0001", "", 401, "unauthorized"},
		{"bad format", "POST", "/incidents/INC-0001/export/evidence?format=xml", "acme", 400, "format"},
		{"bad content flag", "POST", "/incidents/INC-0001/export/evidence?content=maybe", "acme", 400, "content"},
		{"content on a debrief", "POST", "/incidents/INC-0001/export/executive-debrief?content=true", "acme", 400, "content"},
		{"period on evidence", "POST", "/incidents/INC-0001/export/evidence?from=2026-01-01T00:00:00Z", "acme", 400, "SOC2"},
		{"from without to", "POST", "/incidents/INC-0001/export/soc2?from=2026-01-01T00:00:00Z", "acme", 400, "both"},
		{"bad from", "POST", "/incidents/INC-0001/export/soc2?from=yesterday&to=2026-04-01T00:00:00Z", "acme", 400, "RFC 3339"},
		{"bad to", "POST", "/incidents/INC-0001/export/soc2?from=2026-01-01T00:00:00Z&to=2026-04-01", "acme", 400, "RFC 3339"},
		{"empty period", "POST", "/incidents/INC-0001/export/soc2?from=2026-04-01T00:00:00Z&to=2026-01-01T00:00:00Z", "acme", 400, "not before"},
		{"incident outside the period", "POST", "/incidents/INC-0001/export/soc2?from=2026-04-01T00:00:00Z&to=2026-07-01T00:00:00Z", "acme", 400, "outside the compliance period"},
		{"reason too long", "POST", "/incidents/INC-0001/export/evidence?reason=" + strings.Repeat("x", 5000), "acme", 400, "reason"},
		{"bad at", "GET", "/runs/RUN-0001/explain?at=noon", "acme", 400, "RFC 3339"},
		{"at before the run", "GET", "/runs/RUN-0001/explain?at=2020-01-01T00:00:00Z", "acme", 400, "before"},
		{"bad format on a run export", "POST", "/runs/RUN-0003/export/evidence?format=csv", "acme", 400, "format"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := call(t, srv, tc.method, tc.path, tc.tenant)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			var body struct {
				Error string `json:"error"`
			}
			if r.header.Get("Content-Type") != "application/json" || json.Unmarshal(r.body, &body) != nil || !strings.Contains(body.Error, tc.msg) {
				t.Errorf("error body %q (%s), want JSON {\"error\": \"…%s…\"}", r.body, r.header.Get("Content-Type"), tc.msg)
			}
			if strings.Contains(string(r.body), "globex") && tc.tenant == "acme" {
				t.Errorf("response shows another tenant: %s", r.body)
			}
		})
	}
	// Nothing was exported by failed requests.
	if log, _ := f.Store.Exports(ctx, governance.ExportFilter{TenantID: "acme"}); len(log) != 0 {
		t.Errorf("failed requests were logged as exports: %+v", log)
	}
	// A method the route does not serve.
	if r := call(t, srv, http.MethodGet, "/incidents/INC-0001/export/evidence", "acme"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET on an export: %d", r.status)
	}
}

func TestHandlerServerErrorsHideDetails(t *testing.T) {
	f := fixture.New(t, nil)
	var logged []error
	exp, _ := export.New(&tamperedStore{Store: f.Store})
	srv := httptest.NewServer(httpapi.Handler(exp, func(*http.Request) (string, error) { return "acme", nil },
		httpapi.WithErrorLog(func(_ *http.Request, err error) { logged = append(logged, err) })))
	defer srv.Close()
	r := call(t, srv, http.MethodPost, "/incidents/INC-0001/export/evidence", "")
	if r.status != http.StatusInternalServerError || strings.Contains(string(r.body), "RUN-0001") {
		t.Errorf("tampered store: %d %s", r.status, r.body)
	}
	if len(logged) != 1 || !errors.Is(logged[0], export.ErrStoreIntegrity) {
		t.Errorf("error log: %v", logged)
	}
}

func TestHeaderTenant(t *testing.T) {
	tf := httpapi.HeaderTenant("X-Tenant")
	req := httptest.NewRequest("GET", "/", nil)
	if _, err := tf(req); err == nil {
		t.Error("missing header accepted")
	}
	req.Header.Set("X-Tenant", " acme ")
	got, err := tf(req)
	if diff := cmp.Diff("acme", got); diff != "" || err != nil {
		t.Errorf("tenant (-want +got):\n%s %v", diff, err)
	}
	// A proxy that appends its header to the client's: which tenant the
	// request acts for is ambiguous, and it is refused.
	req.Header.Add("X-Tenant", "globex")
	if got, err := tf(req); err == nil {
		t.Errorf("two tenant headers accepted: %q", got)
	}
	req.Header.Set("X-Tenant", "globex, acme")
	if got, err := tf(req); err == nil {
		t.Errorf("a joined tenant header accepted: %q", got)
	}
}

func TestHeaderActor(t *testing.T) {
	f := fixture.New(t, nil)
	srv := httptest.NewServer(httpapi.Handler(f.Exp, httpapi.HeaderTenant("X-Stopline-Tenant"), httpapi.WithActor(httpapi.HeaderActor("X-Stopline-Actor"))))
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/incidents/INC-0001/export/evidence", nil)
	req.Header.Set("X-Stopline-Tenant", "acme")
	req.Header.Add("X-Stopline-Actor", "alice")
	req.Header.Add("X-Stopline-Actor", "mallory")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("two actor headers: %d, want 400", resp.StatusCode)
	}
}

func TestDefaultActor(t *testing.T) {
	f := fixture.New(t, nil)
	srv := httptest.NewServer(httpapi.Handler(f.Exp, httpapi.HeaderTenant("X-Stopline-Tenant")))
	defer srv.Close()
	r := call(t, srv, http.MethodPost, "/incidents/INC-0001/export/evidence", "acme")
	v, err := bundle.Verify(r.body, f.Pub)
	if err != nil {
		t.Fatal(err)
	}
	// The X-Stopline-Actor header the client sent is not trusted by default.
	if by := v.Bundle.(*bundle.Evidence).ExportedBy; by != "api" {
		t.Errorf("exported_by %q, want the default %q", by, "api")
	}
}

// tamperedStore changes a step's tokens as a writer with database access
// could.
type tamperedStore struct{ governance.Store }

func (s *tamperedStore) Records(c context.Context, tenant, run string) ([]trace.Record, error) {
	recs, err := s.Store.Records(c, tenant, run)
	if len(recs) > 2 {
		recs[2].Tokens++
	}
	return recs, err
}

// TestPDFWithoutRenderer: an exporter without a PDF renderer answers a
// PDF export with 501 and says what to ask for instead; JSON still works.
func TestPDFWithoutRenderer(t *testing.T) {
	f := fixture.New(t, nil)
	exp, _ := export.New(f.Store)
	srv := httptest.NewServer(httpapi.Handler(exp, httpapi.HeaderTenant("X-Stopline-Tenant")))
	defer srv.Close()
	if r := call(t, srv, http.MethodPost, "/incidents/INC-0001/export/soc2", "acme"); r.status != http.StatusNotImplemented || !strings.Contains(string(r.body), "format=json") {
		t.Errorf("PDF without a renderer: %d %s", r.status, r.body)
	}
	if r := call(t, srv, http.MethodPost, "/incidents/INC-0001/export/soc2?format=json", "acme"); r.status != http.StatusOK {
		t.Errorf("JSON without a renderer: %d %s", r.status, r.body)
	}
}
