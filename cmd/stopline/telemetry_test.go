package main_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// span is a span as the console exporter (stdouttrace) prints it.
type span struct {
	Name        string
	SpanContext struct{ TraceID, SpanID string }
	Parent      struct{ TraceID, SpanID string }
	Attributes  []keyValue
	Events      []struct {
		Name       string
		Attributes []keyValue
	}
	Status   struct{ Code, Description string }
	Resource []keyValue
}

type keyValue struct {
	Key   string
	Value struct{ Value any }
}

func attr(kvs []keyValue, key string) any {
	for _, kv := range kvs {
		if kv.Key == key {
			return kv.Value.Value
		}
	}
	return nil
}

func (s span) event(name string) ([]keyValue, bool) {
	for _, e := range s.Events {
		if e.Name == name {
			return e.Attributes, true
		}
	}
	return nil, false
}

// jsonLines decodes the lines of stderr that are JSON objects (what the
// console exporters print) into a new T each, and returns the other
// lines.
func jsonLines[T any](t *testing.T, stderr string) ([]T, []string) {
	t.Helper()
	var docs []T
	var other []string
	for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		if !strings.HasPrefix(line, "{") {
			if line != "" {
				other = append(other, line)
			}
			continue
		}
		var v T
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		docs = append(docs, v)
	}
	return docs, other
}

// runJSON runs `stopline run` of the budget_steps files (stopped at step
// 3) with env, and returns its result and stderr.
func (c *cli) runJSON(env ...string) (runResult, string) {
	c.t.Helper()
	c.env = env
	r := c.run("run", "--policies", policyFile("budget_steps"), "--steps", stepsFile("budget_steps"), "--json")
	c.env = nil
	if r.code != 0 {
		c.t.Fatalf("exit %d\n%s", r.code, r.stderr)
	}
	var res runResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		c.t.Fatalf("stdout: %v\n%s", err, r.stdout)
	}
	return res, r.stderr
}

// TestRunConsoleTraces: with OTEL_TRACES_EXPORTER=console, `stopline run`
// prints its spans on stderr as JSON: the run's span, a child span for
// each step, the stop as an Error with the inflection point and the
// incident; stdout is the same result.
func TestRunConsoleTraces(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res, stderr := c.runJSON("OTEL_TRACES_EXPORTER=console", "OTEL_SERVICE_NAME=agent-ci", "OTEL_RESOURCE_ATTRIBUTES=deployment.environment=ci")
	if res.Status != "failed_policy" || res.StoppedAtStep == nil || *res.StoppedAtStep != 3 || res.IncidentID == nil {
		t.Fatalf("result %+v", res)
	}
	spans, other := jsonLines[span](t, stderr)
	if len(other) != 0 {
		t.Errorf("stderr has other lines: %q", other)
	}
	var run span
	var steps []span
	for _, s := range spans {
		switch {
		case s.Name == "stopline.run":
			run = s
		case strings.HasPrefix(s.Name, "stopline.step "):
			steps = append(steps, s)
		default:
			t.Errorf("span %q", s.Name)
		}
	}
	if run.Name == "" || attr(run.Attributes, "stopline.run.id") != res.RunID || run.Status.Code != "Error" {
		t.Fatalf("run span %+v", run)
	}
	if run.Parent.SpanID != "0000000000000000" {
		t.Errorf("a run started without TRACEPARENT has parent %v", run.Parent)
	}
	if attr(run.Resource, "service.name") != "agent-ci" || attr(run.Resource, "deployment.environment") != "ci" {
		t.Errorf("resource %v", run.Resource)
	}
	if inc, ok := run.event("stopline.incident"); !ok || attr(inc, "stopline.incident.id") != *res.IncidentID {
		t.Errorf("run span: incident event %v (%v)", inc, ok)
	}
	if _, ok := run.event("stopline.inflection"); !ok {
		t.Error("run span: no stopline.inflection event")
	}
	names := []string{"stopline.step message", "stopline.step llm_response", "stopline.step tool_call", "stopline.step tool_result"}
	if len(steps) != len(names) {
		t.Fatalf("%d step spans, want %d", len(steps), len(names))
	}
	for i, s := range steps {
		if s.Name != names[i] || s.Parent.SpanID != run.SpanContext.SpanID || s.SpanContext.TraceID != run.SpanContext.TraceID {
			t.Errorf("step span %d: %s, parent %s, want %s under %s", i, s.Name, s.Parent.SpanID, names[i], run.SpanContext.SpanID)
		}
		if got := attr(s.Attributes, "stopline.step.index"); got != float64(i) {
			t.Errorf("step span %d: index %v", i, got)
		}
	}
	stop := steps[3]
	infl, ok := stop.event("stopline.inflection")
	if !ok || stop.Status.Code != "Error" || attr(infl, "stopline.policy.id") != "step-limit" ||
		attr(infl, "stopline.termination_reason") != "budget_exceeded" || attr(infl, "stopline.limit") != 3.0 {
		t.Errorf("stopping step span: status %v, inflection %v", stop.Status, infl)
	}
	if strings.Contains(stderr, `"ok"`) && strings.Contains(stderr, "stopline.step.output") {
		t.Error("a step's output was exported")
	}
}

// TestRunTraceparent: TRACEPARENT makes the run's span a child of the
// span it names, in its trace.
func TestRunTraceparent(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	const traceID, parentID = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	_, stderr := c.runJSON("OTEL_TRACES_EXPORTER=console", "TRACEPARENT=00-"+traceID+"-"+parentID+"-01")
	spans, _ := jsonLines[span](t, stderr)
	for _, s := range spans {
		if s.SpanContext.TraceID != traceID {
			t.Errorf("%s: trace %s, want %s", s.Name, s.SpanContext.TraceID, traceID)
		}
		if s.Name == "stopline.run" && s.Parent.SpanID != parentID {
			t.Errorf("run span's parent %s, want %s", s.Parent.SpanID, parentID)
		}
	}
}

// TestRunConsoleMetrics: with OTEL_METRICS_EXPORTER=console, the run's
// metrics are printed on stderr when the command ends.
func TestRunConsoleMetrics(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	_, stderr := c.runJSON("OTEL_METRICS_EXPORTER=console")
	type metricsDoc struct {
		ScopeMetrics []struct {
			Scope   struct{ Name string }
			Metrics []struct {
				Name string
				Unit string
			}
		}
	}
	docs, other := jsonLines[metricsDoc](t, stderr)
	if len(docs) != 1 || len(other) != 0 {
		t.Fatalf("%d metric documents, other lines %q", len(docs), other)
	}
	got := map[string]string{}
	for _, sm := range docs[0].ScopeMetrics {
		for _, m := range sm.Metrics {
			got[m.Name] = m.Unit
		}
	}
	for name, unit := range map[string]string{"stopline.steps": "{step}", "stopline.decisions": "{decision}", "stopline.runs": "{run}",
		"stopline.step.duration": "s", "stopline.evaluation.duration": "s"} {
		if got[name] != unit {
			t.Errorf("metric %s: unit %q (%v)", name, got[name], got)
		}
	}
}

// collector is an OTLP/HTTP endpoint on the loopback that notes what it
// is sent.
type collector struct {
	mu    sync.Mutex
	posts map[string]string // path → content type
}

func newCollector(t *testing.T) (*collector, string) {
	c := &collector{posts: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		c.mu.Lock()
		c.posts[r.Method+" "+r.URL.Path] = r.Header.Get("Content-Type")
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	t.Cleanup(srv.Close)
	return c, srv.URL
}

// TestRunOTLP: with OTEL_*_EXPORTER=otlp, spans and metrics are sent
// over HTTP/protobuf to OTEL_EXPORTER_OTLP_ENDPOINT before the command
// ends.
func TestRunOTLP(t *testing.T) {
	t.Parallel()
	col, url := newCollector(t)
	c := newCLI(t)
	_, stderr := c.runJSON("OTEL_TRACES_EXPORTER=otlp", "OTEL_METRICS_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT="+url)
	if stderr != "" {
		t.Errorf("stderr:\n%s", stderr)
	}
	col.mu.Lock()
	defer col.mu.Unlock()
	for _, p := range []string{"POST /v1/traces", "POST /v1/metrics"} {
		if col.posts[p] != "application/x-protobuf" {
			t.Errorf("%s: content type %q (%v)", p, col.posts[p], col.posts)
		}
	}
}

// TestRunCollectorDown: a collector that refuses connections, or accepts
// them and never answers, changes neither the run nor the output; the
// command warns on stderr and ends within its flush bound.
func TestRunCollectorDown(t *testing.T) {
	t.Parallel()
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refusedAddr := refused.Addr().String()
	refused.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn // open, never answered
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := silent.Accept()
			if err != nil {
				return
			}
			held = append(held, conn)
		}
	}()
	t.Cleanup(func() { // after the parallel subtests
		silent.Close()
		<-done
		for _, conn := range held {
			conn.Close()
		}
	})
	for name, addr := range map[string]string{"refused": refusedAddr, "silent": silent.Addr().String()} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := newCLI(t)
			start := time.Now()
			res, stderr := c.runJSON("OTEL_TRACES_EXPORTER=otlp", "OTEL_METRICS_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_ENDPOINT=http://"+addr)
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("the command took %v", d)
			} else {
				t.Logf("the command took %v", d)
			}
			if res.Status != "failed_policy" || res.StepsRecorded != 4 {
				t.Errorf("result %+v", res)
			}
			for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
				if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "telemetry") {
					t.Errorf("stderr line %q", line)
				}
			}
			if stderr == "" {
				t.Error("no warning that telemetry was not exported")
			}
		})
	}
}

// TestTelemetryEnvironment: unknown exporters and protocols are warnings;
// none, and OTEL_SDK_DISABLED, export nothing.
func TestTelemetryEnvironment(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  []string
		warn []string // each a warning line must contain; none: stderr empty
	}{
		{[]string{"OTEL_TRACES_EXPORTER=zipkin"}, []string{"unknown exporter", "zipkin"}},
		{[]string{"OTEL_TRACES_EXPORTER=none,console"}, nil},
		{[]string{"OTEL_TRACES_EXPORTER=console", "OTEL_SDK_DISABLED=true"}, nil},
		{[]string{"OTEL_TRACES_EXPORTER=otlp", "OTEL_EXPORTER_OTLP_PROTOCOL=grpc", "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:9"}, []string{"unsupported OTLP protocol", "grpc"}},
	} {
		t.Run(strings.Join(tc.env, " "), func(t *testing.T) {
			t.Parallel()
			c := newCLI(t)
			_, stderr := c.runJSON(tc.env...)
			if tc.warn == nil && stderr != "" {
				t.Errorf("stderr:\n%s", stderr)
			}
			for _, w := range tc.warn {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr does not say %q:\n%s", w, stderr)
				}
			}
		})
	}
}

// TestServeTelemetry: with OTEL_TRACES_EXPORTER=console, serve prints a
// server span for each request, named by its route and joining the
// caller's trace, when it shuts down.
func TestServeTelemetry(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	res := c.runSteps("content", "content")
	c.env = []string{"OTEL_TRACES_EXPORTER=console"}
	addr, cmd, done, rest := startServe(t, c)
	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	for _, tenant := range []string{"acme", "other"} {
		req, _ := http.NewRequest(http.MethodGet, addr+"/runs/"+res.RunID, nil)
		req.Header.Set("X-Stopline-Tenant", tenant)
		req.Header.Set("traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v\n%s", err, rest)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	spans, _ := jsonLines[span](t, rest.String())
	n := 0
	for _, s := range spans {
		if s.Name != "GET /runs/{id}" {
			t.Errorf("span %q", s.Name)
			continue
		}
		n++
		if s.SpanContext.TraceID != traceID {
			t.Errorf("span in trace %s, want the caller's", s.SpanContext.TraceID)
		}
	}
	if n != 2 {
		t.Errorf("%d request spans, want 2:\n%s", n, rest.String())
	}
}
