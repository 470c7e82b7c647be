package llmhttp

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

// MiddlewareNext passes a request on to the rest of the chain. It is the
// same type as option.MiddlewareNext of github.com/openai/openai-go/v3 and
// of github.com/anthropics/anthropic-sdk-go/v2 (both are aliases of this
// function type), so Middleware drops into option.WithMiddleware of
// either SDK as it is.
type MiddlewareNext = func(*http.Request) (*http.Response, error)

// Governor makes model calls into steps of a governed run: of the run it
// was made for (New), or of the run each request's context carries
// (NewContext). It is safe for concurrent use: calls may run at once, and
// a run records their steps one at a time.
type Governor struct {
	run *governance.Run // nil: the run of each request's context
	cfg config
	// worst: the run's policies budget the tenant's tokens or cost across
	// runs, so a call reserves its worst case (reservation.go).
	worst bool
	// worstBySnapshot caches worst per snapshot for a context Governor
	// (snapshots are immutable): snapshot id → bool.
	worstBySnapshot sync.Map
}

// New returns a Governor for run. Defaults, each changed by an Option:
//   - no price table: every call is unpriced (cost 0, metadata
//     "stopline.unpriced": "true"); see Prices;
//   - response bodies are buffered for inspection up to
//     DefaultMaxBodyBytes (8 MiB), and so is each streamed event;
//   - a response body over that cap fails closed (ErrTooLarge);
//   - a request that sets no output cap is reserved, under a tenant's
//     budget of tokens or cost, with DefaultMaxOutputTokens (4096); see
//     WithDefaultMaxOutputTokens.
//
// Whether a call reserves its worst case is decided here, from the run's
// snapshot (see Limits across runs in the package documentation).
//
// An invalid option is an error here, not on first use.
func New(run *governance.Run, opts ...Option) (*Governor, error) {
	if run == nil {
		return nil, errors.New("llmhttp: New: nil run")
	}
	cfg := config{maxBody: DefaultMaxBodyBytes, maxOutput: DefaultMaxOutputTokens}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("llmhttp: New: %w", err)
		}
	}
	return &Governor{run: run, cfg: cfg, worst: limitsTenantAmounts(run.Snapshot())}, nil
}

// NewContext returns a Governor for every run: each request is governed
// under the run its context carries (governance.ContextWithRun), so that
// one SDK client, created once, governs whichever run makes the call:
//
//	client := openai.NewClient(option.WithMiddleware(llmhttp.ContextMiddleware()))
//	// in the agent loop of a run:
//	resp, err := client.Chat.Completions.New(governance.ContextWithRun(ctx, run), params)
//
// A model call whose context carries no run is refused before it is sent:
// its error matches ErrNotSent and governance.ErrNoRun (nothing is
// recorded: there is no run to record it in), unless
// WithPassThroughWithoutRun lets such calls through ungoverned. Requests
// that are not model calls pass through as with New. The defaults are
// New's.
func NewContext(opts ...Option) (*Governor, error) {
	cfg := config{maxBody: DefaultMaxBodyBytes, maxOutput: DefaultMaxOutputTokens}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("llmhttp: NewContext: %w", err)
		}
	}
	return &Governor{cfg: cfg}, nil
}

// ContextMiddleware returns the middleware of NewContext(opts...), for
// option.WithMiddleware of the OpenAI and Anthropic SDKs. It panics if an
// option is invalid; use NewContext to get the error instead.
func ContextMiddleware(opts ...Option) func(*http.Request, MiddlewareNext) (*http.Response, error) {
	g, err := NewContext(opts...)
	if err != nil {
		panic(err)
	}
	return g.Middleware
}

// forRequest is the Governor of req's run: g itself when g is bound to a
// run, else a Governor of the run req's context carries. A bound Governor
// refuses a request whose context carries another run: which run the call
// belongs to would be ambiguous. nil, nil: no run, and g passes such
// calls through.
func (g *Governor) forRequest(req *http.Request) (*Governor, error) {
	ctxRun, ok := governance.RunFromContext(req.Context())
	if g.run != nil {
		if ok && ctxRun != g.run {
			return nil, fmt.Errorf("%w: the request's context carries run %s, this client governs run %s", ErrNotSent, ctxRun.ID(), g.run.ID())
		}
		return g, nil
	}
	if !ok {
		if g.cfg.passWithoutRun {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %w", ErrNotSent, governance.ErrNoRun)
	}
	snap := ctxRun.Snapshot()
	worst, known := g.worstBySnapshot.Load(snap.ID())
	if !known {
		worst = limitsTenantAmounts(snap)
		g.worstBySnapshot.Store(snap.ID(), worst)
	}
	return &Governor{run: ctxRun, cfg: g.cfg, worst: worst.(bool)}, nil
}

func mustNew(run *governance.Run, opts []Option) *Governor {
	g, err := New(run, opts...)
	if err != nil {
		panic(err)
	}
	return g
}

// Middleware returns the middleware of a new Governor for run, for
// option.WithMiddleware of the OpenAI and Anthropic SDKs:
//
//	client := openai.NewClient(option.WithMiddleware(llmhttp.Middleware(run)))
//
// It panics if an option is invalid (a programming error, as with
// regexp.MustCompile); use New to get the error instead.
func Middleware(run *governance.Run, opts ...Option) func(*http.Request, MiddlewareNext) (*http.Response, error) {
	return mustNew(run, opts).Middleware
}

// Transport returns an http.RoundTripper that governs the model calls it
// carries for run and sends every request through base
// (http.DefaultTransport if nil). It panics if an option is invalid; use
// New and Governor.Transport to get the error instead.
func Transport(run *governance.Run, base http.RoundTripper, opts ...Option) http.RoundTripper {
	return mustNew(run, opts).Transport(base)
}

// Client returns an *http.Client whose transport is Transport(run, nil,
// opts...). It panics if an option is invalid.
func Client(run *governance.Run, opts ...Option) *http.Client {
	return &http.Client{Transport: Transport(run, nil, opts...)}
}

// Middleware governs one request; next sends it. Its errors are described
// in the package documentation. When the Governor refuses or withholds a
// response, Middleware returns the error together with an empty response
// carrying "X-Should-Retry: false", so that neither SDK retries a call
// the run refused (both honour that header, and would otherwise retry a
// middleware error as if it were a dropped connection).
func (g *Governor) Middleware(req *http.Request, next MiddlewareNext) (*http.Response, error) {
	res, err, ours := g.exchange(req, next)
	if err != nil && ours {
		h := make(http.Header)
		h.Set("X-Should-Retry", "false")
		return &http.Response{
			Status: "stopline refused", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: h, Body: http.NoBody, Request: req,
		}, err
	}
	return res, err
}

// Transport returns an http.RoundTripper that governs the requests it
// carries and sends them through base (http.DefaultTransport if nil).
// Note that an SDK given an *http.Client retries transport errors; use
// Middleware with an SDK, so that refused calls are not retried.
func (g *Governor) Transport(base http.RoundTripper) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	return roundTripper{g: g, base: base}
}

type roundTripper struct {
	g    *Governor
	base http.RoundTripper
}

func (t roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err, _ := t.g.exchange(req, t.base.RoundTrip)
	if err != nil {
		return nil, err
	}
	return res, nil
}

// exchange governs one request. ours reports that err is the Governor's
// (a refusal, a withheld response), not one from next.
func (g *Governor) exchange(req *http.Request, next MiddlewareNext) (res *http.Response, err error, ours bool) {
	ctx := req.Context()
	if apiOfPath(req) != apiNone {
		rg, err := g.forRequest(req)
		if err != nil {
			closeBody(req)
			return nil, fmt.Errorf("%w (%s %s)", err, req.Method, req.URL.Path), true
		}
		if rg == nil {
			res, err := next(req) // WithPassThroughWithoutRun: ungoverned
			return res, err, false
		}
		g = rg
	} else if g.run == nil {
		res, err := next(req) // not a model call, and no run to have ended
		return res, err, false
	}
	if g.run.Ended() {
		return nil, g.notSent(ctx, req), true
	}
	c, out, err := readCall(req, g.cfg.maxBody)
	if err != nil {
		return nil, fmt.Errorf("llmhttp: reading the request body: %w", err), true
	}
	if c == nil {
		// Not a model call: sent as it is.
		res, err := next(out)
		return res, err, false
	}
	rec := newRecorder(g, c, nil)
	if err := checkName("model", c.model); err != nil {
		// The runner refuses the step of such a model (and an agent would
		// be shown one model while calling another): refused unsent, and
		// recorded without the name.
		c.model = ""
		closeBody(out)
		ferr := rec.failure(ctx, prevention.StepLLMResponse, "", MetaPhase, "before_request", MetaBody, "malformed", MetaError, err.Error())
		return nil, errors.Join(fmt.Errorf("%w: %w: %s %s: %w", ErrNotSent, ErrMalformed, req.Method, req.URL.Path, err), ferr), true
	}
	reserved := rec.before(g.worst, g.cfg.maxOutput)
	r, err := g.run.Reserve(ctx, reserved)
	if err != nil {
		closeBody(out)
		return nil, fmt.Errorf("%w: %s %s: %w", ErrNotSent, req.Method, req.URL.Path, err), true
	}
	h := newHold(r)
	// The call's llm_response step settles the reservation; a call that
	// records none gives it back. Released here once the call is over,
	// which is a no-op after the step, unless a stream now owns it.
	streamed := false
	defer func() {
		if !streamed {
			h.release(context.WithoutCancel(ctx))
		}
	}()

	res, err = next(out)
	if err != nil || res == nil {
		return res, err, false
	}
	// The response exists and may have cost money: it is recorded even
	// if the caller has given up.
	rctx := context.WithoutCancel(ctx)
	rec = newRecorder(g, c, res)
	rec.hold = h
	// Statuses: 400 and above are errors, to the SDKs as here; anything
	// else the SDKs read as a result (a 3xx that was not followed, a 204
	// with a body), so it is governed as one.
	switch {
	case res.StatusCode >= 400:
		// Recorded as a message step, not the llm_response step: the
		// reservation is given back first, so that the step does not count
		// on the tenant's counters beside it.
		h.release(rctx)
		err = g.errorResponse(rctx, rec, res)
	case res.StatusCode < 200:
		// Both SDKs read every status below 400 as a result: one this
		// package cannot read as one (an informational status, or none)
		// is refused, not passed on uninspected.
		res.Body.Close()
		ferr := rec.failure(rctx, prevention.StepLLMResponse, "", MetaBody, "malformed", MetaHTTPStatus, strconv.Itoa(res.StatusCode))
		err = errors.Join(fmt.Errorf("%w: %s: status %d", ErrMalformed, c.api, res.StatusCode), ferr)
	case isEventStream(res.Header):
		streamed = true
		res.Body = newStream(rctx, g, rec, res.Body)
		return res, nil, false
	default:
		err = g.jsonResponse(rctx, rec, res)
	}
	if err != nil {
		return nil, err, true
	}
	return res, nil, false
}

// notSent is the error for a request to a run that has ended.
func (g *Governor) notSent(ctx context.Context, req *http.Request) error {
	// Check returns the run's *governance.StoppedError, which unwraps to
	// what stopped the run.
	_, err := g.run.Check(ctx, governance.StepInput{Type: prevention.StepMessage})
	if err == nil {
		err = governance.ErrRunStopped
	}
	closeBody(req)
	return fmt.Errorf("%w: %s %s: %w", ErrNotSent, req.Method, req.URL.Path, err)
}

// errorResponse records an error status as a message step and passes the
// response on, its body restored. It stops the run only if a policy
// blocks that step.
func (g *Governor) errorResponse(ctx context.Context, rec *recorder, res *http.Response) error {
	body, over, rerr := readCapped(res.Body, g.cfg.maxBody)
	restore(res, body, over, rerr)
	extra := []string{MetaHTTPStatus, strconv.Itoa(res.StatusCode)}
	if over {
		extra = append(extra, MetaBody, "oversized")
	}
	if err := rec.failure(ctx, prevention.StepMessage, string(body), extra...); err != nil {
		res.Body.Close()
		return err
	}
	return nil
}

// jsonResponse inspects a whole response: the response step, then each
// tool call, before the agent gets it.
func (g *Governor) jsonResponse(ctx context.Context, rec *recorder, res *http.Response) error {
	body, over, rerr := readCapped(res.Body, g.cfg.maxBody)
	switch {
	case rerr != nil:
		// The agent gets the same failed body it would have had; the
		// spend is recorded.
		restore(res, body, false, rerr)
		return g.recordOrPass(rec.failure(ctx, prevention.StepLLMResponse, "", MetaBody, "read_error", MetaError, rerr.Error()), res)
	case over:
		ferr := rec.failure(ctx, prevention.StepLLMResponse, "", MetaBody, "oversized")
		if g.cfg.passOversize {
			restore(res, body, true, nil)
			return g.recordOrPass(ferr, res)
		}
		res.Body.Close()
		return errors.Join(fmt.Errorf("%w: more than %d bytes", ErrTooLarge, g.cfg.maxBody), ferr)
	}
	res.Body.Close()
	plain, derr := decoded(res.Header, body, g.cfg.maxBody)
	var r result
	if derr == nil {
		r, derr = parseResponse(rec.c.api, plain)
	}
	if derr != nil {
		ferr := rec.failure(ctx, prevention.StepLLMResponse, "", MetaBody, "malformed", MetaError, derr.Error())
		return errors.Join(fmt.Errorf("%w: %s: %w", ErrMalformed, rec.c.api, derr), ferr)
	}
	if err := rec.record(ctx, &r); err != nil {
		return err
	}
	res.Body = io.NopCloser(bytes.NewReader(body))
	return nil
}

// recordOrPass returns the recording error, closing res, or nil.
func (g *Governor) recordOrPass(recErr error, res *http.Response) error {
	if recErr != nil {
		res.Body.Close()
	}
	return recErr
}

// restore gives res a body that replays what was read, then the rest (if
// over) or the read error.
func restore(res *http.Response, read []byte, over bool, rerr error) {
	orig := res.Body
	var r io.Reader = bytes.NewReader(read)
	switch {
	case rerr != nil:
		r = io.MultiReader(r, errReader{rerr})
	case over:
		r = io.MultiReader(r, orig)
	}
	res.Body = struct {
		io.Reader
		io.Closer
	}{r, orig}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// decoded undoes a gzip Content-Encoding for inspection (the agent still
// gets the bytes as sent).
func decoded(h http.Header, body []byte, max int64) ([]byte, error) {
	switch enc := strings.ToLower(strings.TrimSpace(h.Get("Content-Encoding"))); enc {
	case "", "identity":
		return body, nil
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		plain, over, err := readCapped(zr, max)
		if err == nil && over {
			err = fmt.Errorf("more than %d bytes once decompressed", max)
		}
		return plain, err
	default:
		return nil, fmt.Errorf("cannot inspect Content-Encoding %q", enc)
	}
}

func isEventStream(h http.Header) bool {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	return err == nil && mt == "text/event-stream"
}

func closeBody(req *http.Request) {
	if req.Body != nil && req.Body != http.NoBody {
		req.Body.Close()
	}
}
