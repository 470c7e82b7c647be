// Package trace records what happened in a governed run as a hash chain:
// a run_start record bound to the policy snapshot, one record per step
// with its decision, status (ok, warning, violation) and the thresholds
// applied, and a run_end record that closes the chain. The step where a
// policy stopped the run is marked as the inflection point.
//
// Each record's hash is sha256(domain || prev_hash || canonical body), so
// Verify, recomputing the chain from stored records, detects any record
// that was changed, removed, reordered or inserted, and names the first.
// A writer able to recompute every hash is caught by signed checkpoints.
//
// A run_start record may also bind a shadow snapshot (every step record
// then carries that snapshot's decision, which decides nothing) and state
// how the run keeps its steps' content (Retention); a step record binds
// its content's hash whatever is kept, and the hash of what was kept when
// that is not the content itself (KeptContentHash). These fields are
// omitted when absent, so records written before them hash as they did.
package trace
