package incident_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
)

// An incident goes from open to acknowledged to resolved, never back; the
// severity follows the reason and the kind of step that was stopped.
func ExampleIncident_Transition() {
	at := time.Date(2026, 1, 20, 9, 0, 0, 0, time.UTC)
	inc := incident.Incident{ID: "INC-1", Status: incident.StatusOpen,
		Severity: incident.SeverityFor(prevention.ReasonPolicyBlock, prevention.StepToolCall)}
	acked, _ := inc.Transition(incident.StatusAcknowledged, "alice", "looking", at)
	resolved, _ := acked.Transition(incident.StatusResolved, "alice", "shell removed from the agent's tools", at.Add(time.Hour))
	_, err := resolved.Transition(incident.StatusOpen, "mallory", "", at.Add(2*time.Hour))
	fmt.Println(inc.Severity, acked.Status, resolved.Status, errors.Is(err, incident.ErrInvalidTransition))
	// Output:
	// critical acknowledged resolved true
}
