package governance_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

func TestCloseValidate(t *testing.T) {
	hash := strings.Repeat("a", 64)
	rec := func(kind trace.Kind, run string) governance.StepWrite {
		return governance.StepWrite{Record: trace.Record{TenantID: "acme", RunID: run, Kind: kind, PrevHash: hash, Hash: hash}, Body: []byte("{}")}
	}
	good := func() governance.Close {
		step := rec(trace.KindStep, "RUN-1")
		step.Record.Inflection = true
		return governance.Close{TenantID: "acme", RunID: "RUN-1", Step: &step, End: rec(trace.KindRunEnd, "RUN-1"),
			Incident: &incident.Incident{ID: "INC-1", TenantID: "acme", RunID: "RUN-1"},
			Status:   governance.StatusFailedPolicy, Reason: prevention.ReasonPolicyBlock}
	}
	c := good()
	if id, err := c.Validate(); err != nil || id != "INC-1" {
		t.Fatalf("good close: %q %v", id, err)
	}
	for name, mod := range map[string]func(*governance.Close){
		"no run":                 func(c *governance.Close) { c.RunID = "" },
		"status does not end":    func(c *governance.Close) { c.Status = governance.StatusRunning },
		"unknown reason":         func(c *governance.Close) { c.Reason = "vibes" },
		"end of another run":     func(c *governance.Close) { c.End = rec(trace.KindRunEnd, "RUN-2") },
		"step not inflection":    func(c *governance.Close) { c.Step.Record.Inflection = false },
		"incident of other run":  func(c *governance.Close) { c.Incident.RunID = "RUN-2" },
		"incident id mismatch":   func(c *governance.Close) { c.IncidentID = "INC-2" },
		"end is a step":          func(c *governance.Close) { c.End.Record.Kind = trace.KindStep },
		"step without body":      func(c *governance.Close) { c.Step.Body = nil },
		"end with a short hash":  func(c *governance.Close) { c.End.Record.Hash = "abc" },
		"step of another tenant": func(c *governance.Close) { c.Step.Record.TenantID = "globex" },
	} {
		c := good()
		mod(&c)
		if _, err := c.Validate(); !errors.Is(err, governance.ErrMalformedWrite) {
			t.Errorf("%s: got %v, want ErrMalformedWrite", name, err)
		}
	}
}

func TestRunValidateNewAndVersionFor(t *testing.T) {
	hash := strings.Repeat("b", 64)
	start := governance.StepWrite{Record: trace.Record{TenantID: "acme", RunID: "RUN-1", Kind: trace.KindRunStart, PrevHash: hash, Hash: hash}, Body: []byte("{}")}
	run := governance.RunRecord{TenantID: "acme", RunID: "RUN-1", SnapshotID: "SNAP-1"}
	got, err := run.ValidateNew(start)
	if err != nil || got.Status != governance.StatusQueued {
		t.Fatalf("new run: %+v %v", got, err)
	}
	for name, r := range map[string]governance.RunRecord{
		"no snapshot": {TenantID: "acme", RunID: "RUN-1"},
		"ended":       {TenantID: "acme", RunID: "RUN-1", SnapshotID: "SNAP-1", Status: governance.StatusSucceeded},
		"other run":   {TenantID: "acme", RunID: "RUN-2", SnapshotID: "SNAP-1"},
	} {
		if _, err := r.ValidateNew(start); !errors.Is(err, governance.ErrMalformedWrite) {
			t.Errorf("%s: got %v, want ErrMalformedWrite", name, err)
		}
	}
	snap := parse(t, allowAllDoc)
	v, err := governance.PolicyVersion{PublishedBy: "alice"}.For(snap)
	if err != nil || v.TenantID != "acme" || v.SnapshotID != snap.ID() || v.ContentHash != snap.ContentHash() {
		t.Errorf("For: %+v %v", v, err)
	}
	if _, err := (governance.PolicyVersion{TenantID: "globex"}).For(snap); !errors.Is(err, governance.ErrMalformedWrite) {
		t.Errorf("version of another tenant: %v", err)
	}
}
