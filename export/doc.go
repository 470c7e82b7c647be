// Package export builds evidence bundles from what stopline recorded
// about a run (a governance.Store), for the people who must act on it,
// and hands them out: sealed as signed JSON, or rendered as PDF, and
// recorded in the store's export log.
//
// The bundles themselves, their sealing and their offline verification
// are package export/bundle, which an auditor imports alone; the PDF
// renderer is package export/pdf; the HTTP API is package export/httpapi.
// This package is what connects them to a store:
//
//   - Exporter.Evidence, SOC2 and ExecutiveDebrief build a bundle by
//     incident id (or an evidence bundle by run id), verifying the
//     stored records first: nothing is exported from records that do not
//     verify (ErrStoreIntegrity).
//   - Exporter.Export builds, seals with the exporter's keys (WithSigner),
//     encodes as JSON (a DSSE envelope) or renders as PDF (WithRenderer),
//     and records the export in the store's export log.
//   - RiskFor is the documented rule of an executive debrief's risk
//     level.
//
// The smallest use:
//
//	_, key, _ := bundle.GenerateKey(nil)
//	exp, err := export.New(store, export.WithSigner(key))
//	if err != nil { ... }
//	a, err := exp.Export(ctx, bundle.TypeEvidence, export.Request{
//		TenantID: "acme", IncidentID: incidentID, ExportedBy: "alice",
//	}, export.FormatJSON)
//	if err != nil { ... }
//	f, _ := os.Create(a.Filename)
//	a.WriteTo(f)
//
//	// Later, anywhere, without the database:
//	v, err := bundle.Verify(data, key.Public().(ed25519.PublicKey))
//
// An Exporter is safe for concurrent use.
package export
