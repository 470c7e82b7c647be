// Package bundle is the format of stopline's evidence bundles and their
// offline verification: the package an auditor imports. It needs no
// database and imports nothing of stopline's runtime (no governance, no
// store, no PDF): only the standard library, golang.org/x (signed notes,
// text), and the domain packages that define what a bundle holds
// (snapshot, trace, incident, prevention).
//
// A bundle is one of three documents about a run that a policy governed:
//
//   - Evidence, for an engineer: every step of the run with its decision
//     (policy, threshold, limit, observed value), status, inflection flag
//     and hashes, the whole policy snapshot, the run's whole hash chain,
//     the incident, totals, and its Outlook: each step's headroom (every
//     limit's observed value against its limit, the policy closest to
//     stopping the run) and, for a run with a shadow snapshot, that
//     snapshot and where it would have stopped the run.
//   - SOC2, for an auditor: the evidence plus the compliance period, the
//     population of every run of the tenant in the period, the period's
//     incidents, the policy version history, an attestation statement,
//     and which evidence supports which control (CC7.2, CC7.3, CC7.4,
//     CC8.1).
//   - ExecutiveDebrief, for an executive: what happened and what it
//     means, in plain words, with a risk level, time to detect and cost.
//
// Package export builds bundles from a store; this package seals them
// and verifies them. Seal encodes a bundle as canonical JSON (RFC 8785;
// its SHA-256 is the bundle hash) and signs it with ed25519 keys as a
// DSSE envelope (https://github.com/secure-systems-lab/dsse):
//
//	{"payload": "<base64 of the canonical JSON>",
//	 "payloadType": "application/vnd.stopline.bundle+json; version=1",
//	 "signatures": [{"keyid": "<KeyID>", "sig": "<base64 ed25519 over PAE(payloadType, payload)>"}]}
//
// so that any DSSE or in-toto verifier checks the signature. Verify
// checks all of it: the envelope and payload read strictly (one reading
// for every JSON reader), the signature, the snapshot's hash, the chain
// recomputed, every step and fact against the chain, the headroom and
// shadow comparison derived again from the chain (OutlookOf), with a sentinel
// error for each kind of failure. An unsigned bundle has no signatures;
// VerifyUnsigned checks it, and its hash ties it to the PDF and export
// log that cite it. Key files are PEM (GenerateKey,
// WriteKeyFiles, ReadPublicKeyFile); a key's id is its fingerprint
// (KeyID). VerifyCheckpoint checks the signed checkpoint a bundle
// carries with the checkpoint key.
//
// The smallest use, anywhere, without the database:
//
//	pub, err := bundle.ReadPublicKeyFile("export.key.pub")
//	if err != nil { ... }
//	data, err := os.ReadFile("evidence-INC-….json")
//	if err != nil { ... }
//	v, err := bundle.Verify(data, pub)
//	if err != nil { ... } // errors.Is(err, bundle.ErrChain), ...
//	ev := v.Bundle.(*bundle.Evidence)
//
// Verified and Sealed values are not changed after they are returned
// and are safe for concurrent reads; every function is safe for
// concurrent use.
package bundle
