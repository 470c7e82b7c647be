package sqlite

import (
	"context"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
)

// Incident returns one incident of the tenant, or governance.ErrNotFound.
func (s *Store) Incident(ctx context.Context, tenantID, incidentID string) (incident.Incident, error) {
	return s.db.Incident(ctx, tenantID, incidentID)
}

// Incidents lists a tenant's incidents, newest (by CreatedAt, then by
// insertion) first, with the filter's run, status, creation interval
// [From, To) and limit.
func (s *Store) Incidents(ctx context.Context, f governance.IncidentFilter) ([]incident.Incident, error) {
	return s.db.Incidents(ctx, f)
}

// UpdateIncident stores a lifecycle change made with
// incident.Incident.Transition: it writes the status, acknowledged and
// resolved columns only (inc's other fields are ignored; links and facts
// never change). An unknown incident is governance.ErrNotFound; moving
// the status back (resolved → open, acknowledged → open) is
// incident.ErrInvalidTransition (the incidents_lifecycle_forward trigger
// refuses it).
func (s *Store) UpdateIncident(ctx context.Context, inc incident.Incident) error {
	return s.db.UpdateIncident(ctx, inc)
}
