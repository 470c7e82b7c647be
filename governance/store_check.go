package governance

import (
	"errors"
	"fmt"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// ErrMalformedWrite is matched when a Store is handed a write that no
// Runner makes: a record of the wrong kind, without a body or hashes, a
// close whose parts belong to different runs. Stores call Validate on
// what they are given before they write; the error names what is wrong.
var ErrMalformedWrite = errors.New("governance: malformed store write")

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
	if err := c.validateDeliveries(); err != nil {
		return fail(err)
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

// ValidateNew checks a run a Store is asked to create and its run_start
// record: a tenant, a run id and a snapshot id, a status that has not
// ended (empty is queued), and a run_start record of this run at seq 0.
// It returns the run with its status filled in.
func (run RunRecord) ValidateNew(start StepWrite) (RunRecord, error) {
	fail := func(err error) (RunRecord, error) {
		return run, fmt.Errorf("%w: creating run %s of tenant %s: %w", ErrMalformedWrite, run.RunID, run.TenantID, err)
	}
	if run.Status == "" {
		run.Status = StatusQueued
	}
	switch {
	case run.TenantID == "" || run.RunID == "" || run.SnapshotID == "":
		return fail(errors.New("run needs a tenant, a run id and a snapshot id"))
	case !run.Status.Valid() || run.Status.Ended():
		return fail(fmt.Errorf("a new run cannot have status %q", run.Status))
	case start.Record.TenantID != run.TenantID || start.Record.RunID != run.RunID:
		return fail(fmt.Errorf("run_start record belongs to run %s of tenant %s", start.Record.RunID, start.Record.TenantID))
	case start.Record.Seq != 0:
		return fail(fmt.Errorf("run_start record has seq %d, want 0", start.Record.Seq))
	}
	if err := start.Validate(trace.KindRunStart); err != nil {
		return run, err
	}
	return run, nil
}

// For returns v completed for snap: the tenant, snapshot id and content
// hash are snap's. v may leave them empty but not contradict them.
func (v PolicyVersion) For(snap *snapshot.PolicySnapshot) (PolicyVersion, error) {
	if snap == nil {
		return v, fmt.Errorf("%w: policy version without a snapshot", ErrMalformedWrite)
	}
	fail := func(err error) (PolicyVersion, error) {
		return v, fmt.Errorf("%w: publishing snapshot %s for tenant %s: %w", ErrMalformedWrite, snap.ID(), snap.TenantID(), err)
	}
	switch {
	case v.TenantID != "" && v.TenantID != snap.TenantID():
		return fail(fmt.Errorf("version names tenant %s", v.TenantID))
	case v.SnapshotID != "" && v.SnapshotID != snap.ID():
		return fail(fmt.Errorf("version names snapshot %s", v.SnapshotID))
	case v.ContentHash != "" && v.ContentHash != snap.ContentHash():
		return fail(fmt.Errorf("version names content hash %s", v.ContentHash))
	}
	v.TenantID, v.SnapshotID, v.ContentHash = snap.TenantID(), snap.ID(), snap.ContentHash()
	return v, nil
}
