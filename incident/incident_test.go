package incident_test

import (
	"errors"
	"testing"
	"time"

	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
)

func TestSeverityFor(t *testing.T) {
	tests := []struct {
		reason prevention.RunTerminationReason
		step   prevention.StepType
		want   incident.Severity
	}{
		{prevention.ReasonPolicyBlock, prevention.StepToolCall, incident.SeverityCritical},
		{prevention.ReasonPolicyBlock, prevention.StepLLMResponse, incident.SeverityHigh},
		{prevention.ReasonSystemFailure, prevention.StepToolCall, incident.SeverityHigh},
		{prevention.ReasonBudgetExceeded, prevention.StepLLMResponse, incident.SeverityMedium},
		{prevention.ReasonTimeout, prevention.StepMessage, incident.SeverityMedium},
		{prevention.ReasonRateLimited, prevention.StepToolCall, incident.SeverityLow},
	}
	for _, tc := range tests {
		if got := incident.SeverityFor(tc.reason, tc.step); got != tc.want {
			t.Errorf("SeverityFor(%s, %s) = %s, want %s", tc.reason, tc.step, got, tc.want)
		}
	}
	if incident.SeverityCritical.Rank() <= incident.SeverityHigh.Rank() || incident.Severity("x").Rank() != 0 {
		t.Error("severity ranks out of order")
	}
}

func TestTransition(t *testing.T) {
	at := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	open := incident.Incident{ID: "INC-1", Status: incident.StatusOpen}
	acked, err := open.Transition(incident.StatusAcknowledged, "oncall", "", at)
	if err != nil || acked.Status != incident.StatusAcknowledged || acked.AcknowledgedBy != "oncall" || !acked.AcknowledgedAt.Equal(at) {
		t.Fatalf("acknowledge: %+v %v", acked, err)
	}
	done, err := acked.Transition(incident.StatusResolved, "lead", "tool removed", at.Add(time.Hour))
	if err != nil || done.Status != incident.StatusResolved || done.Resolution != "tool removed" || open.Status != incident.StatusOpen {
		t.Fatalf("resolve: %+v %v (the original must be unchanged)", done, err)
	}
	if _, err := open.Transition(incident.StatusResolved, "lead", "", at); err != nil {
		t.Errorf("open → resolved: %v", err)
	}
	for _, bad := range []struct {
		from incident.Incident
		to   incident.Status
	}{{done, incident.StatusOpen}, {done, incident.StatusAcknowledged}, {acked, incident.StatusAcknowledged}, {open, incident.StatusOpen}, {open, "closed"}} {
		if _, err := bad.from.Transition(bad.to, "x", "", at); !errors.Is(err, incident.ErrInvalidTransition) {
			t.Errorf("%s → %s: got %v, want ErrInvalidTransition", bad.from.Status, bad.to, err)
		}
	}
}
