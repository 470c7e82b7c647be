package export

import (
	"context"
	"time"

	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/trace"
)

// EvidenceBundle is what exactly happened in one run, for an engineer:
// the run and its incident, the whole policy snapshot it was bound to,
// every step with its decision (policy, threshold, limit, observed value),
// status, inflection flag and hashes, the run's whole hash chain, and
// totals. It verifies offline (see Verify).
type EvidenceBundle struct {
	Header
	Provenance

	// ViolatedPolicyID and ViolationStepIndex name the policy that
	// stopped the run and the step it stopped at (the inflection point);
	// empty and null when no policy stopped it.
	ViolatedPolicyID   string `json:"violated_policy_id,omitempty"`
	ViolationStepIndex *int   `json:"violation_step_index"`

	Run      RunSummary         `json:"run"`
	Incident *incident.Incident `json:"incident,omitempty"`

	Steps []TraceStepEvidence `json:"steps"`
	Totals
}

// Type returns the bundle type (evidence, or soc2 when the evidence is
// embedded in a SOC2Bundle).
func (b *EvidenceBundle) Type() BundleType { return b.BundleType }

// ID returns the bundle id.
func (b *EvidenceBundle) ID() string { return b.BundleID }

func (b *EvidenceBundle) header() *Header         { return &b.Header }
func (b *EvidenceBundle) provenance() *Provenance { return &b.Provenance }

// Inflection returns the step the run was stopped at, if any.
func (b *EvidenceBundle) Inflection() (TraceStepEvidence, bool) {
	if b.ViolationStepIndex != nil {
		if i := *b.ViolationStepIndex; i >= 0 && i < len(b.Steps) && b.Steps[i].IsInflection {
			return b.Steps[i], true
		}
	}
	for _, s := range b.Steps {
		if s.IsInflection {
			return s, true
		}
	}
	return TraceStepEvidence{}, false
}

// Evidence builds the evidence bundle of an incident (req.IncidentID) or
// of any run (req.RunID). The store's records are verified first (chain,
// snapshot, run row and incident against the chain); records that do not
// verify are not exported (ErrStoreIntegrity).
func (e *Exporter) Evidence(ctx context.Context, req Request) (*EvidenceBundle, error) {
	if err := req.validate(TypeEvidence); err != nil {
		return nil, err
	}
	b, _, err := e.evidence(ctx, TypeEvidence, &req, true)
	return b, err
}

// evidence builds the evidence bundle of type t (evidence, or soc2 for
// the part a SOC2 bundle embeds), checked against the store's records
// when check is set.
func (e *Exporter) evidence(ctx context.Context, t BundleType, req *Request, check bool) (*EvidenceBundle, *runData, error) {
	d, err := e.load(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	b := d.evidence(t, req, e.clock.Now())
	if b.BundleID, err = e.bundleID(&b.Header, b.HeadHash, req); err != nil {
		return nil, nil, err
	}
	if check {
		if err := checkBuilt(b, d.records); err != nil {
			return nil, nil, err
		}
	}
	return b, d, nil
}

func (d *runData) evidence(t BundleType, req *Request, createdAt time.Time) *EvidenceBundle {
	b := &EvidenceBundle{
		Header: d.header(t, req, createdAt), Provenance: d.provenance(),
		Run: d.runSummary(), Incident: d.inc, Steps: d.steps(),
	}
	if inf, ok := trace.InflectionOf(d.records); ok {
		idx := inf.StepIndex
		b.ViolatedPolicyID, b.ViolationStepIndex = inf.PolicyID, &idx
	}
	b.Totals = totalsOf(d.records, runStart(&b.Run))
	return b
}
