// Package snapshot holds PolicySnapshot, the immutable, content-hashed
// policy set that a governed run is bound to when it starts.
//
// A policy file names a tenant, thresholds and policies:
//
//	{
//	  "tenant_id": "acme",
//	  "thresholds": {"max_cost_cents": 150},
//	  "policies": [
//	    {"id": "cost-budget", "kind": "budget",
//	     "params": {"metric": "cost_cents", "threshold": "max_cost_cents"}}
//	  ]
//	}
//
// Load or Parse validate it and return the snapshot; its id is "SNAP-" and
// the first 12 hex digits of sha256(canonical(policies) ||
// canonical(thresholds)), so the same set always gets the same id. This
// package checks structure (ids, thresholds, enforcement modes, references
// to thresholds); package prevention checks that each kind and its
// parameters make sense, when it compiles the snapshot.
//
// Canonical is the canonical JSON encoding every stopline hash is built on:
// RFC 8785 (JCS), so that any JCS implementation can recompute them.
package snapshot
