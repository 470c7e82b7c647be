// Package export hands out what stopline recorded about a run to the
// people who must act on it, as bundles that anyone can verify without
// the database:
//
//   - EvidenceBundle, for an engineer: every step of the run with its
//     decision (policy, threshold, limit, observed value), status,
//     inflection flag and hashes, the whole policy snapshot, the run's
//     whole hash chain, the incident, and totals.
//   - SOC2Bundle, for an auditor: the evidence bundle plus the compliance
//     period, the population of every run of the tenant in the period
//     (to draw a sample from), the period's incidents, the policy version
//     history, an attestation statement, and which evidence supports
//     which control (CC7.2, CC7.3, CC7.4, CC8.1).
//   - ExecutiveDebriefBundle, for an executive: what happened and what it
//     means, in plain words generated deterministically from the records,
//     with a risk level by documented rules (RiskFor), time to detect and
//     cost incurred.
//
// An Exporter builds a bundle from a governance.Store by incident id (or
// an evidence bundle by run id), verifying the stored records first.
// Seal encodes the bundle as canonical JSON (snapshot.Canonical), hashes
// it with SHA-256 and signs the hash with ed25519 keys (GenerateKey,
// key files in PEM, KeyID the key's fingerprint); the JSON export is the
// envelope {bundle, bundle_hash, signatures, version}. Verify checks an
// envelope offline: its hash, its signature, the snapshot's hash, the
// chain recomputed with trace.Verify, the steps against the chain records
// and the bundle's facts against the chain, with a sentinel error for
// each kind of failure (ErrBundleHash, ErrSignature, ErrSnapshot,
// ErrChain, ErrStepMismatch, ...).
//
// A Renderer renders sealed bundles as PDF (codeberg.org/go-pdf/fpdf,
// the maintained continuation of gofpdf), set in fonts embedded in the
// module: DejaVu Sans, and Droid Sans Fallback for CJK. The same bundle
// always renders to the same bytes, and every page shows "Page N of M",
// the bundle's SHA-256 and the signing key id.
//
// Exporter.Export does it all and records the export in the store's
// export log; Handler serves it over HTTP.
//
// The smallest use:
//
//	_, key, _ := export.GenerateKey(nil)
//	exp, err := export.New(store, export.WithSigner(key))
//	if err != nil { ... }
//	a, err := exp.Export(ctx, export.TypeEvidence, export.Request{
//		TenantID: "acme", IncidentID: incidentID, ExportedBy: "alice",
//	}, export.FormatJSON)
//	if err != nil { ... }
//	os.WriteFile(a.Filename, a.Data, 0o644)
//
//	// Later, anywhere, without the database:
//	v, err := export.Verify(data, key.Public().(ed25519.PublicKey))
//
// Exporter, Renderer, Signer and the handler are safe for concurrent use.
package export
