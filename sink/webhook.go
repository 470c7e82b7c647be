package sink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Webhook is a Sink that POSTs each event's Body (JSON) to a URL, signed
// as Standard Webhooks (standardwebhooks.com) specifies, so that a
// receiver can verify it with any of its libraries:
//
//	webhook-id:        the event's ID (the same on every attempt)
//	webhook-timestamp: the attempt's time, in Unix seconds
//	webhook-signature: "v1," + base64(HMAC-SHA256(key, id + "." + timestamp + "." + body))
//
// where key is the secret "whsec_<base64>" decoded. A 2xx answer is an
// acknowledgement; any other answer, a redirect included (redirects are
// not followed), or no answer, is a failure to retry. A Webhook is safe
// for concurrent use.
type Webhook struct {
	name   string
	url    string
	key    []byte
	client *http.Client
	now    func() time.Time
	bundle bool
}

var _ Sink = (*Webhook)(nil)

// WebhookOption configures a Webhook.
type WebhookOption func(*Webhook) error

// WithName names the webhook in the outbox (default "webhook"). Two
// webhooks of one dispatcher need different names.
func WithName(name string) WebhookOption {
	return func(w *Webhook) error {
		if name == "" {
			return errors.New("WithName: empty name")
		}
		w.name = name
		return nil
	}
}

// WithHTTPClient sets the client that sends the requests (default: a
// client that does not follow redirects; the dispatcher's timeout bounds
// each request).
func WithHTTPClient(c *http.Client) WebhookOption {
	return func(w *Webhook) error {
		if c == nil {
			return errors.New("WithHTTPClient: nil client")
		}
		w.client = c
		return nil
	}
}

// WithBundle makes the webhook send, with each incident, its run's
// evidence bundle when the dispatcher has one (sink.WithBundles): the
// body's data then holds "bundle", the sealed envelope, beside "run" and
// "incident", signed with them. Default: no bundle.
func WithBundle() WebhookOption {
	return func(w *Webhook) error {
		w.bundle = true
		return nil
	}
}

// ErrBadSecret: a webhook secret that is not "whsec_" followed by the
// standard base64 of at least 24 bytes.
var ErrBadSecret = errors.New("sink: a webhook secret is whsec_ followed by the base64 of 24 to 64 random bytes")

// NewWebhook returns a Webhook posting to target (an absolute http or
// https URL) signed with secret ("whsec_" + base64 of 24 to 64 bytes,
// as Standard Webhooks secrets are). Keep the secret out of command
// lines and logs: read it from a file or the environment.
func NewWebhook(target, secret string, opts ...WebhookOption) (*Webhook, error) {
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("sink: NewWebhook: %q is not an absolute http or https URL", target)
	}
	rest, ok := strings.CutPrefix(strings.TrimSpace(secret), "whsec_")
	if !ok {
		return nil, fmt.Errorf("sink: NewWebhook: %w (it does not start with whsec_)", ErrBadSecret)
	}
	key, err := base64.StdEncoding.DecodeString(rest)
	if err != nil || len(key) < 24 || len(key) > 64 {
		return nil, fmt.Errorf("sink: NewWebhook: %w", ErrBadSecret)
	}
	w := &Webhook{name: "webhook", url: u.String(), key: key, now: time.Now,
		client: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	for _, o := range opts {
		if err := o(w); err != nil {
			return nil, fmt.Errorf("sink: NewWebhook: %w", err)
		}
	}
	return w, nil
}

// Name implements Sink.
func (w *Webhook) Name() string { return w.name }

// Deliver implements Sink: one signed POST of e.Body (with e.Bundle in
// its data, WithBundle).
func (w *Webhook) Deliver(ctx context.Context, e Event) error {
	body := e.Body
	if w.bundle && e.Bundle != nil {
		var err error
		if body, err = withBundle(e.Body, e.Bundle); err != nil {
			return fmt.Errorf("sink: webhook %s: %w: %w", w.name, ErrPermanent, err)
		}
	}
	ts := strconv.FormatInt(w.now().Unix(), 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sink: webhook %s: %w", w.name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "stopline-webhook")
	req.Header.Set("webhook-id", e.ID)
	req.Header.Set("webhook-timestamp", ts)
	req.Header.Set("webhook-signature", w.sign(e.ID, ts, body))
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("sink: webhook %s: %w", w.name, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection can be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("sink: webhook %s: the receiver answered %s", w.name, resp.Status)
	}
	return nil
}

// sign is the webhook-signature header of a message.
func (w *Webhook) sign(id, ts string, body []byte) string {
	h := hmac.New(sha256.New, w.key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// withBundle is an event's body with the bundle added to its data.
func withBundle(body, bundle []byte) ([]byte, error) {
	var p struct {
		Type      json.RawMessage            `json:"type"`
		Timestamp json.RawMessage            `json:"timestamp"`
		Data      map[string]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Data == nil {
		return nil, fmt.Errorf("the event's body is not a payload: %v", err)
	}
	if !json.Valid(bundle) {
		return nil, errors.New("the bundle is not JSON")
	}
	p.Data["bundle"] = bundle
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(p); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
