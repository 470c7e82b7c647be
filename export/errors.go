package export

import "errors"

// Errors of building an export. Store errors (governance.ErrNotFound for an
// id that is unknown or belongs to another tenant) are wrapped with %w.
var (
	// ErrInvalidRequest: the request is incomplete or contradictory (no
	// tenant, no incident or run id, a compliance period whose start is
	// not before its end, an unknown bundle type or format).
	ErrInvalidRequest = errors.New("export: invalid request")
	// ErrNoIncident: a SOC2 bundle or an executive debrief was asked for
	// a run that has no incident.
	ErrNoIncident = errors.New("export: run has no incident")
	// ErrStoreIntegrity: the store's records do not verify (a changed,
	// removed or reordered record, a snapshot that does not match its
	// hash, a run row or incident that disagrees with its chain). Nothing
	// is exported from records that do not verify; the error wraps the
	// verification failures (a *bundle.VerificationError, whose failures
	// match bundle's sentinels).
	ErrStoreIntegrity = errors.New("export: stored records do not verify")
	// ErrNoRenderer: a PDF was asked of an Exporter made without
	// WithRenderer.
	ErrNoRenderer = errors.New("export: no PDF renderer (make the Exporter with export.WithRenderer(r), r from pdf.New)")
)
