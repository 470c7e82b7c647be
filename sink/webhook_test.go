package sink_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/sink"
	"github.com/stopline/stopline/store/memstore"
)

func newSecret(t testing.TB) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "whsec_" + base64.StdEncoding.EncodeToString(b)
}

// request is what a receiver got.
type request struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is an httptest server that answers with the next status of
// its list (the last one once the list is used up), after verifying the
// request with the Standard Webhooks library when it has a verifier.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	got      []request
	verified []error
	ch       chan request
}

func newReceiver(t *testing.T, secret string, statuses ...int) *receiver {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	rc := &receiver{statuses: statuses, ch: make(chan request, 100)}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		req := request{header: r.Header.Clone(), body: body, at: time.Now()}
		verr := wh.Verify(body, r.Header)
		rc.mu.Lock()
		status := rc.statuses[min(len(rc.got), len(rc.statuses)-1)]
		rc.got = append(rc.got, req)
		rc.verified = append(rc.verified, verr)
		rc.mu.Unlock()
		if verr != nil {
			status = http.StatusUnauthorized
		}
		w.WriteHeader(status)
		rc.ch <- req
	}))
	t.Cleanup(rc.Close)
	return rc
}

// The official Standard Webhooks verifier accepts what the webhook sends,
// and refuses it with the body changed, or with another secret.
func TestWebhookVerifiedByStandardWebhooks(t *testing.T) {
	secret := newSecret(t)
	rc := newReceiver(t, secret, http.StatusNoContent)
	hook, err := sink.NewWebhook(rc.URL, secret)
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	d, err := sink.NewDispatcher(st, []sink.Sink{hook}, sink.WithPoll(10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	r, err := governance.NewRunner(st, governance.WithOutbox(d))
	if err != nil {
		t.Fatal(err)
	}
	runDispatcher(t, d)
	rec := stopRun(t, r)
	waitState(t, st, rec.RunID, governance.DeliveryDelivered, 2)
	rc.mu.Lock()
	got, verified := rc.got, rc.verified
	rc.mu.Unlock()
	if len(got) != 2 {
		t.Fatalf("%d requests, want 2", len(got))
	}
	for i, req := range got {
		if verified[i] != nil {
			t.Errorf("request %d refused by the Standard Webhooks verifier: %v", i, verified[i])
		}
		if ct := req.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q", ct)
		}
	}
	ds := deliveriesOf(t, st, governance.DeliveryFilter{TenantID: "acme", RunID: rec.RunID})
	byID := map[string][]byte{}
	for _, dl := range ds {
		byID[dl.ID] = dl.Payload
	}
	wh, _ := standardwebhooks.NewWebhook(secret)
	for _, req := range got {
		id := req.header.Get("webhook-id")
		if !bytes.Equal(byID[id], req.body) {
			t.Errorf("request %s: body is not the stored payload", id)
		}
		tampered := bytes.Replace(req.body, []byte(`"failed_policy"`), []byte(`"succeeded"`), 1)
		if bytes.Equal(tampered, req.body) {
			t.Fatalf("nothing to tamper with in %s", req.body)
		}
		if err := wh.Verify(tampered, req.header); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
			t.Errorf("a tampered body: got %v, want ErrNoMatchingSignature", err)
		}
		h := req.header.Clone()
		h.Set("webhook-id", "msg_other")
		if err := wh.Verify(req.body, h); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
			t.Errorf("another id: got %v, want ErrNoMatchingSignature", err)
		}
		other, _ := standardwebhooks.NewWebhook(newSecret(t))
		if err := other.Verify(req.body, req.header); !errors.Is(err, standardwebhooks.ErrNoMatchingSignature) {
			t.Errorf("another secret: got %v, want ErrNoMatchingSignature", err)
		}
	}
}

// A receiver that fails (500) is retried with growing waits, each time
// with the same webhook-id and body, until it answers 200; then it is
// not called again.
func TestWebhookRetriedUntilAcknowledged(t *testing.T) {
	secret := newSecret(t)
	rc := newReceiver(t, secret, 500, 500, 500, 200)
	hook, err := sink.NewWebhook(rc.URL, secret)
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	const base = 40 * time.Millisecond
	d, err := sink.NewDispatcher(st, []sink.Sink{hook}, sink.WithPoll(5*time.Millisecond), sink.WithRetries(10, base, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r, err := governance.NewRunner(st, governance.WithOutbox(d))
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: testSnapshot(t)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Finish(ctx); err != nil {
		t.Fatal(err)
	}
	runDispatcher(t, d)
	dl := waitState(t, st, run.ID(), governance.DeliveryDelivered, 1)[0]
	if dl.Attempts != 4 || dl.LastError == "" {
		t.Errorf("delivered: %+v", dl)
	}
	time.Sleep(100 * time.Millisecond) // nothing more is sent
	rc.mu.Lock()
	got := rc.got
	rc.mu.Unlock()
	if len(got) != 4 {
		t.Fatalf("%d requests, want 4", len(got))
	}
	for i, req := range got {
		if req.header.Get("webhook-id") != dl.ID || !bytes.Equal(req.body, got[0].body) {
			t.Errorf("attempt %d: id %s, want %s, or another body", i+1, req.header.Get("webhook-id"), dl.ID)
		}
		if i > 0 {
			// After attempt i the wait is base·2^(i-1), at least half of it.
			if gap, least := req.at.Sub(got[i-1].at), base<<(i-1)/2; gap < least {
				t.Errorf("attempt %d came %v after the one before, want at least %v", i+1, gap, least)
			}
		}
	}
}

func TestNewWebhookRefuses(t *testing.T) {
	good := newSecret(t)
	for name, tc := range map[string]struct{ url, secret string }{
		"no whsec_ prefix":  {"https://example.com/hook", good[len("whsec_"):]},
		"not base64":        {"https://example.com/hook", "whsec_***"},
		"a short key":       {"https://example.com/hook", "whsec_" + base64.StdEncoding.EncodeToString([]byte("short"))},
		"a relative URL":    {"/hook", good},
		"another scheme":    {"ftp://example.com/hook", good},
		"an unparsable URL": {"http://[::1", good},
	} {
		_, err := sink.NewWebhook(tc.url, tc.secret)
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		if tc.url == "https://example.com/hook" && !errors.Is(err, sink.ErrBadSecret) {
			t.Errorf("%s: got %v, want ErrBadSecret", name, err)
		}
	}
}

// A redirect is not followed: it is a failure.
func TestWebhookRedirectIsFailure(t *testing.T) {
	srv := httptest.NewServer(http.RedirectHandler("http://127.0.0.1:1/elsewhere", http.StatusTemporaryRedirect))
	defer srv.Close()
	hook, err := sink.NewWebhook(srv.URL, newSecret(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := hook.Deliver(ctx, sink.Event{ID: "msg_1", Body: []byte(`{}`)}); err == nil {
		t.Error("a redirect was taken as an acknowledgement")
	}
}

// WithBundles and WithBundle: an incident's webhook carries its run's
// sealed evidence bundle (built by the exporter), signed with the rest;
// a receiver verifies both the webhook and the bundle.
func TestWebhookCarriesBundle(t *testing.T) {
	secret := newSecret(t)
	rc := newReceiver(t, secret, http.StatusOK)
	hook, err := sink.NewWebhook(rc.URL, secret, sink.WithBundle())
	if err != nil {
		t.Fatal(err)
	}
	pub, priv, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	st := memstore.New()
	exp, err := export.New(st, export.WithSigner(priv))
	if err != nil {
		t.Fatal(err)
	}
	build := func(ctx context.Context, tenant, run string) ([]byte, error) {
		a, err := exp.Export(ctx, bundle.TypeEvidence, export.Request{TenantID: tenant, RunID: run, ExportedBy: "webhook"}, export.FormatJSON)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		_, err = a.WriteTo(&buf)
		return buf.Bytes(), err
	}
	d, err := sink.NewDispatcher(st, []sink.Sink{hook}, sink.WithPoll(10*time.Millisecond), sink.WithBundles(build))
	if err != nil {
		t.Fatal(err)
	}
	r, err := governance.NewRunner(st, governance.WithOutbox(d))
	if err != nil {
		t.Fatal(err)
	}
	runDispatcher(t, d)
	rec := stopRun(t, r)
	waitState(t, st, rec.RunID, governance.DeliveryDelivered, 2)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for i, req := range rc.got {
		if rc.verified[i] != nil {
			t.Errorf("request %d refused by the verifier: %v", i, rc.verified[i])
		}
		var p struct {
			Type string                     `json:"type"`
			Data map[string]json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(req.body, &p); err != nil {
			t.Fatal(err)
		}
		b, has := p.Data["bundle"]
		if p.Type == string(sink.EventRunEnded) {
			if has {
				t.Error("a run end carries a bundle")
			}
			continue
		}
		if !has || p.Data["incident"] == nil || p.Data["run"] == nil {
			t.Fatalf("incident webhook data: %v", p.Data)
		}
		v, err := bundle.Verify(b, pub)
		if err != nil {
			t.Fatalf("the bundle in the webhook does not verify: %v", err)
		}
		if v == nil {
			t.Fatal("no verified bundle")
		}
	}
}
