package governance

import (
	"errors"
	"fmt"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// ErrMalformedWrite is matched when a Store is handed a write that no
// Runner makes: a record of the wrong kind, without a body or hashes, a
// close whose parts belong to different runs. Stores call Validate on
// what they are given before they write; the error names what is wrong.
var ErrMalformedWrite = errors.New("stopline: malformed store write")

// Validate checks that w is a record of the given kind with a tenant, a
// run, a body within trace.MaxRecordSize and 64-digit hashes. It does not
// recompute the hash: verification does, over what is stored.
func (w *StepWrite) Validate(kind trace.Kind) error {
	r := &w.Record
	fail := func(format string, a ...any) error {
		return fmt.Errorf("%w: record %d of run %s (tenant %s): %s", ErrMalformedWrite, r.Seq, r.RunID, r.TenantID, fmt.Sprintf(format, a...))
	}
	switch {
	case r.Kind != kind:
		return fail("kind %q, want %q", r.Kind, kind)
	case r.TenantID == "" || r.RunID == "":
		return fail("no tenant or run id")
	case len(w.Body) == 0:
		return fail("no body")
	case len(w.Body) > trace.MaxRecordSize:
		return fail("body of %d bytes exceeds %d", len(w.Body), trace.MaxRecordSize)
	case len(r.Hash) != 64 || len(r.PrevHash) != 64:
		return fail("hash %q or prev_hash %q is not a hex SHA-256", r.Hash, r.PrevHash)
	case r.Seq < 0:
		return fail("negative seq")
	}
	return nil
}

// Validate checks that the parts of a close agree with each other — the
// same tenant and run throughout, an ending status and a known reason, a
// blocking step marked as the inflection point, an incident with the id
// the close names — and that its records are well formed (StepWrite
// Validate). It returns the incident id the run row must state.
func (c *Close) Validate() (incidentID string, err error) {
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("%w: closing run %s of tenant %s: %w", ErrMalformedWrite, c.RunID, c.TenantID, err)
	}
	incidentID = c.IncidentID
	if c.Incident != nil && incidentID == "" {
		incidentID = c.Incident.ID
	}
	switch {
	case c.TenantID == "" || c.RunID == "":
		return fail(errors.New("no tenant or run id"))
	case !c.Status.Ended():
		return fail(fmt.Errorf("status %q does not end a run", c.Status))
	case c.Reason != "" && !c.Reason.Valid():
		return fail(fmt.Errorf("%w: termination reason %q", prevention.ErrUnknownValue, c.Reason))
	case c.End.Record.TenantID != c.TenantID || c.End.Record.RunID != c.RunID:
		return fail(fmt.Errorf("run_end record belongs to run %s of tenant %s", c.End.Record.RunID, c.End.Record.TenantID))
	case c.Step != nil && (c.Step.Record.TenantID != c.TenantID || c.Step.Record.RunID != c.RunID):
		return fail(fmt.Errorf("blocking step belongs to run %s of tenant %s", c.Step.Record.RunID, c.Step.Record.TenantID))
	case c.Step != nil && !c.Step.Record.Inflection:
		return fail(errors.New("the blocking step is not marked as the inflection point"))
	case c.Incident != nil && (c.Incident.TenantID != c.TenantID || c.Incident.RunID != c.RunID):
		return fail(fmt.Errorf("incident %s belongs to run %s of tenant %s", c.Incident.ID, c.Incident.RunID, c.Incident.TenantID))
	case c.Incident != nil && c.Incident.ID != incidentID:
		return fail(fmt.Errorf("incident id %s, but the close names incident %s", c.Incident.ID, incidentID))
	case c.Incident != nil && c.Incident.ID == "":
		return fail(errors.New("incident without an id"))
	}
	if c.Step != nil {
		if err := c.Step.Validate(trace.KindStep); err != nil {
			return "", err
		}
	}
	if err := c.End.Validate(trace.KindRunEnd); err != nil {
		return "", err
	}
	return incidentID, nil
}
