package governance_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/faultstore"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/store/memstore"
)

// recorder is an Observer that keeps every event.
type recorder struct {
	mu     sync.Mutex
	starts []governance.RunEvent
	steps  []governance.StepEvent
	ends   []governance.RunEvent
}

func (r *recorder) RunStarted(_ context.Context, e governance.RunEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.starts = append(r.starts, e)
}

func (r *recorder) StepDone(_ context.Context, e governance.StepEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.steps = append(r.steps, e)
}

func (r *recorder) RunEnded(_ context.Context, e governance.RunEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ends = append(r.ends, e)
}

type panicky struct{}

func (panicky) RunStarted(context.Context, governance.RunEvent) { panic("observer") }
func (panicky) StepDone(context.Context, governance.StepEvent)  { panic("observer") }
func (panicky) RunEnded(context.Context, governance.RunEvent)   { panic("observer") }

const observedDoc = `{"tenant_id":"acme","thresholds":{"max_steps":3},"policies":[
	{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
	{"id":"no-shell","kind":"tool_denylist","params":{"deny":["shell"]},"enforcement":"warn"}]}`

// TestObserverSeesWhatIsRecorded: a run's start, each recorded step with
// its decision and record hash, the stop with its incident, the end; a
// panicking observer changes nothing.
func TestObserverSeesWhatIsRecorded(t *testing.T) {
	st := memstore.New()
	obs := &recorder{}
	r, _ := newRunner(t, st, governance.WithObserver(panicky{}, obs))
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, observedDoc), Labels: map[string]string{"agent": "a"}})
	if err != nil {
		t.Fatal(err)
	}
	var last governance.StepResult
	for i := range 4 {
		in := governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 10, CostCents: 1}
		if i == 1 {
			in = governance.StepInput{Type: prevention.StepToolCall, Tool: "shell", Input: "ls"}
		}
		last, err = run.Step(ctx, in)
	}
	var v *governance.Violation
	if !errors.As(err, &v) || v.StepIndex != 3 {
		t.Fatalf("step 3: %v", err)
	}
	if len(obs.starts) != 1 || obs.starts[0].Run.RunID != run.ID() || obs.starts[0].Run.Labels["agent"] != "a" || obs.starts[0].SnapshotHash == "" {
		t.Errorf("starts %+v", obs.starts)
	}
	if len(obs.steps) != 4 {
		t.Fatalf("%d step events, want 4", len(obs.steps))
	}
	recs, _ := st.Records(ctx, "acme", run.ID())
	for i, e := range obs.steps {
		if !e.Recorded || e.RecordHash != recs[i+1].Hash || e.Index != i || e.Err != nil || e.Duration < e.EvaluationTime || e.Duration <= 0 {
			t.Errorf("step event %d: %+v", i, e)
		}
	}
	if w := obs.steps[1]; w.Status != "warning" || w.Input.Tool != "shell" || w.Input.Input != "ls" || w.Evaluation.Findings[0].PolicyID != "no-shell" {
		t.Errorf("warning step %+v", w)
	}
	stop := obs.steps[3]
	if !stop.Inflection || stop.IncidentID == "" || stop.Evaluation.Decision.PolicyID != "steps" || stop.RecordHash != last.Hash {
		t.Errorf("stop %+v", stop)
	}
	if len(obs.ends) != 1 || obs.ends[0].Violation == nil || obs.ends[0].Violation.IncidentID != stop.IncidentID ||
		obs.ends[0].Run.Status != governance.StatusFailedPolicy || obs.ends[0].Run.EndedAt == nil {
		t.Errorf("ends %+v", obs.ends)
	}
	mustVerify(t, st, run.ID())
}

// TestObserverSeesFailures: a step the store cannot record is an event
// with its error, and so is the run's end it could not record.
func TestObserverSeesFailures(t *testing.T) {
	fs := faultstore.New(memstore.New(), faultstore.Fault{})
	obs := &recorder{}
	r, _ := newRunner(t, fs, governance.WithObserver(obs))
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, observedDoc)})
	fs.SetFault(faultstore.Fault{N: 1, Mode: faultstore.Persistent, Methods: faultstore.WriteMethods})
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepMessage}); !errors.Is(err, governance.ErrRecordFailed) {
		t.Fatalf("step: %v", err)
	}
	if len(obs.steps) != 1 || obs.steps[0].Recorded || !errors.Is(obs.steps[0].Err, governance.ErrRecordFailed) {
		t.Errorf("step events %+v", obs.steps)
	}
	if len(obs.ends) != 1 || !errors.Is(obs.ends[0].Err, governance.ErrRecordFailed) ||
		obs.ends[0].Run.Status != governance.StatusFailed || obs.ends[0].Run.TerminationReason != prevention.ReasonSystemFailure {
		t.Errorf("end events %+v", obs.ends)
	}
}

// TestWithLogger: what a run does is logged at the documented levels,
// with attributes and never the step's text; without a logger nothing.
func TestWithLogger(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r, _ := newRunner(t, memstore.New(), governance.WithLogger(l))
	run, _ := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, observedDoc)})
	run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Output: "a secret answer"})
	run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "shell", Input: "rm -rf /secret"})
	run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	run.Step(ctx, governance.StepInput{Type: prevention.StepMessage})
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		got = append(got, m["level"].(string)+" "+m["msg"].(string))
		if m["run_id"] != run.ID() {
			t.Errorf("no run_id: %s", line)
		}
	}
	want := []string{"DEBUG run started", "DEBUG step allowed", "INFO step allowed with findings", "DEBUG step allowed",
		"WARN run stopped at a step", "INFO run ended"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("logged\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(buf.String(), "secret") {
		t.Error("the step's text was logged")
	}
	if _, err := governance.NewRunner(memstore.New(), governance.WithLogger(nil)); err == nil {
		t.Error("a nil logger was accepted")
	}
}
