package export

import (
	"context"
	"fmt"
	"time"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/trace"
)

// Evidence builds the evidence bundle of an incident (req.IncidentID) or
// of any run (req.RunID). The store's records are verified first (chain,
// snapshot, run row and incident against the chain); records that do not
// verify are not exported (ErrStoreIntegrity).
func (e *Exporter) Evidence(ctx context.Context, req Request) (*bundle.Evidence, error) {
	if err := req.validate(bundle.TypeEvidence); err != nil {
		return nil, err
	}
	b, _, err := e.evidence(ctx, bundle.TypeEvidence, &req, true)
	return b, err
}

// evidence builds the evidence bundle of type t (evidence, or soc2 for
// the part a SOC2 bundle embeds), checked against the store's records
// when check is set.
func (e *Exporter) evidence(ctx context.Context, t bundle.Type, req *Request, check bool) (*bundle.Evidence, *runData, error) {
	d, err := e.load(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	b, err := d.evidence(t, req, e.clock.Now())
	if err != nil {
		return nil, nil, err
	}
	if b.BundleID, err = e.bundleID(&b.Header, b.HeadHash, req); err != nil {
		return nil, nil, err
	}
	if check {
		if err := checkBuilt(b); err != nil {
			return nil, nil, err
		}
	}
	return b, d, nil
}

func (d *runData) evidence(t bundle.Type, req *Request, createdAt time.Time) (*bundle.Evidence, error) {
	b := &bundle.Evidence{
		Header: d.header(t, req, createdAt), Provenance: d.provenance(),
		Run: d.runSummary(), Incident: d.inc, Steps: d.steps(),
	}
	if inf, ok := trace.InflectionOf(d.records); ok {
		idx := inf.StepIndex
		b.ViolatedPolicyID, b.ViolationStepIndex = inf.PolicyID, &idx
	}
	b.Totals = bundle.TotalsOf(d.records, d.runStart())
	out, err := bundle.OutlookOf(d.snap, d.shadow, &b.Run, d.records)
	if err != nil {
		return nil, fmt.Errorf("%w: run %s: %w", ErrStoreIntegrity, d.run.RunID, err)
	}
	b.Outlook = out
	return b, nil
}

// checkBuilt runs bundle.Check on a bundle just built from the store's
// records, so that nothing is exported from records that do not verify.
func checkBuilt(b bundle.Bundle) error {
	if err := bundle.Check(b); err != nil {
		return fmt.Errorf("%w: %s %s of run %s: %w", ErrStoreIntegrity, b.Type(), b.ID(), headerOf(b).RunID, err)
	}
	return nil
}

// headerOf returns the header of a bundle this package built.
func headerOf(b bundle.Bundle) *bundle.Header {
	switch b := b.(type) {
	case *bundle.Evidence:
		return &b.Header
	case *bundle.SOC2:
		return &b.Header
	case *bundle.ExecutiveDebrief:
		return &b.Header
	}
	return &bundle.Header{}
}
