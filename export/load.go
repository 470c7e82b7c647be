package export

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/words"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// runData is what a bundle is built from: one run of one tenant as the
// store holds it.
type runData struct {
	run      governance.RunRecord
	inc      *incident.Incident
	snap     *snapshot.PolicySnapshot
	records  []trace.Record
	contents map[int]trace.Content    // nil unless the request includes content
	shadow   *snapshot.PolicySnapshot // the run's shadow snapshot, if it has one
	cpNote   string                   // the latest signed checkpoint of the run, if any
	logProof *bundle.TenantLogProof   // the run's proof in its tenant's log, if any
}

// load reads the run (and incident) a request names.
func (e *Exporter) load(ctx context.Context, req *Request) (*runData, error) {
	d, cps, err := e.loadRun(ctx, req)
	if err != nil {
		return nil, err
	}
	runID := d.run.RunID
	if d.records, err = e.store.Records(ctx, req.TenantID, runID); err != nil {
		return nil, fmt.Errorf("export: records of run %s: %w", runID, err)
	}
	d.cpNote = latestCheckpoint(cps, len(d.records))
	if len(d.records) > 0 {
		if err := e.loadShadow(ctx, d, &d.records[0]); err != nil {
			return nil, err
		}
	}
	if d.logProof, err = e.tenantLogProof(ctx, req.TenantID, runID, len(d.records)); err != nil {
		return nil, err
	}
	if req.IncludeContent {
		if d.contents, err = e.store.Contents(ctx, req.TenantID, runID); err != nil {
			return nil, fmt.Errorf("export: contents of run %s: %w", runID, err)
		}
	}
	return d, nil
}

// loadShadow reads the shadow snapshot the run_start record start names,
// if any.
func (e *Exporter) loadShadow(ctx context.Context, d *runData, start *trace.Record) error {
	if start.Kind != trace.KindRunStart || start.ShadowSnapshotID == "" {
		return nil
	}
	snap, err := e.store.Snapshot(ctx, d.run.TenantID, start.ShadowSnapshotID)
	if err != nil {
		return fmt.Errorf("export: shadow snapshot %s of run %s: %w", start.ShadowSnapshotID, d.run.RunID, err)
	}
	d.shadow = snap
	return nil
}

// loadRun reads what load reads but the records and contents: the run,
// its incident, its snapshot and its checkpoints.
func (e *Exporter) loadRun(ctx context.Context, req *Request) (*runData, []governance.Checkpoint, error) {
	d := &runData{}
	tenant := req.TenantID
	runID := req.RunID
	if req.IncidentID != "" {
		inc, err := e.store.Incident(ctx, tenant, req.IncidentID)
		if err != nil {
			return nil, nil, fmt.Errorf("export: incident %s: %w", req.IncidentID, err)
		}
		if runID != "" && runID != inc.RunID {
			return nil, nil, fmt.Errorf("%w: incident %s belongs to run %s, not %s", ErrInvalidRequest, inc.ID, inc.RunID, runID)
		}
		d.inc, runID = &inc, inc.RunID
	}
	run, err := e.store.Run(ctx, tenant, runID)
	if err != nil {
		return nil, nil, fmt.Errorf("export: run %s: %w", runID, err)
	}
	d.run = run
	if d.inc == nil && run.IncidentID != "" {
		inc, err := e.store.Incident(ctx, tenant, run.IncidentID)
		if err != nil {
			return nil, nil, fmt.Errorf("export: incident %s of run %s: %w", run.IncidentID, runID, err)
		}
		d.inc = &inc
	}
	if d.snap, err = e.store.Snapshot(ctx, tenant, run.SnapshotID); err != nil {
		return nil, nil, fmt.Errorf("export: snapshot %s of run %s: %w", run.SnapshotID, runID, err)
	}
	cps, err := e.store.Checkpoints(ctx, tenant, runID)
	if err != nil {
		return nil, nil, fmt.Errorf("export: checkpoints of run %s: %w", runID, err)
	}
	return d, cps, nil
}

// header fills a bundle header; the bundle id is derived from what makes
// the bundle unique (see bundleID).
func (d *runData) header(t bundle.Type, req *Request, createdAt time.Time) bundle.Header {
	h := bundle.Header{
		BundleType: t, CreatedAt: createdAt.UTC(), TenantID: d.run.TenantID, RunID: d.run.RunID,
		TraceID: d.run.TraceID, ExportedBy: exportedBy(req), ExportReason: req.Reason,
	}
	if d.inc != nil {
		h.IncidentID = d.inc.ID
	}
	return h
}

// bundleID derives a bundle id deterministically: "BND-" and the first 16
// hex digits of sha256("stopline/bundle-id/v1", 0, canonical JSON of the
// bundle's type, tenant, run, incident, chain head, creation time, who,
// why, the request's options and the ids of the keys that will sign it).
// The same export asked for at the same instant gets the same id;
// anything different gets another.
func (e *Exporter) bundleID(h *bundle.Header, head string, req *Request) (string, error) {
	keys := append([]string{}, e.keyIDs...)
	key := struct {
		Type           bundle.Type `json:"type"`
		Tenant         string      `json:"tenant"`
		Run            string      `json:"run"`
		Incident       string      `json:"incident"`
		Head           string      `json:"head"`
		CreatedAt      string      `json:"created_at"`
		By             string      `json:"by"`
		Reason         string      `json:"reason"`
		IncludeContent bool        `json:"include_content"`
		From           string      `json:"from"`
		To             string      `json:"to"`
		Notes          string      `json:"notes"`
		Keys           []string    `json:"keys"`
	}{h.BundleType, h.TenantID, h.RunID, h.IncidentID, head, words.RFC3339(h.CreatedAt), h.ExportedBy, h.ExportReason,
		req.IncludeContent, words.RFC3339(req.From), words.RFC3339(req.To), req.AuditorNotes, keys}
	canon, err := snapshot.CanonicalOf(key)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(append([]byte("stopline/bundle-id/v1\x00"), canon...))
	return "BND-" + hex.EncodeToString(sum[:8]), nil
}

// provenance returns the snapshot and chain of the run.
func (d *runData) provenance() bundle.Provenance {
	p := bundle.Provenance{
		PolicySnapshotID: d.snap.ID(), Snapshot: d.snap,
		Chain: make([]bundle.ChainRecord, len(d.records)), ChainLength: d.run.ChainLength, HeadHash: d.run.HeadHash,
		Checkpoint: d.cpNote, TenantLog: d.logProof,
	}
	var buf []byte
	for i := range d.records {
		r := &d.records[i]
		buf = trace.Encode(buf[:0], r)
		body := make([]byte, len(buf))
		copy(body, buf)
		p.Chain[i] = bundle.ChainRecord{PrevHash: r.PrevHash, Hash: r.Hash, Record: body}
	}
	return p
}

// runSummary is the run row as the bundle states it.
func (d *runData) runSummary() bundle.RunSummary {
	r := d.run
	s := bundle.RunSummary{
		Status: string(r.Status), TerminationReason: r.TerminationReason, ViolationPolicyID: r.ViolationPolicyID,
		PolicyVersion: r.PolicyVersion, Message: r.Message, Labels: r.Labels, CreatedAt: r.CreatedAt.UTC(),
		StepCount: r.StepCount,
	}
	if r.StoppedAtStep != nil {
		v := *r.StoppedAtStep
		s.StoppedAtStep = &v
	}
	if r.StartedAt != nil {
		v := r.StartedAt.UTC()
		s.StartedAt = &v
	}
	if r.EndedAt != nil {
		v := r.EndedAt.UTC()
		s.EndedAt = &v
	}
	return s
}

// steps derives every step's evidence from the chain.
func (d *runData) steps() []bundle.TraceStepEvidence {
	out := make([]bundle.TraceStepEvidence, 0, len(d.records))
	for i := range d.records {
		r := &d.records[i]
		if r.Kind != trace.KindStep {
			continue
		}
		s := bundle.StepOf(r)
		if d.contents != nil {
			if c, ok := d.contents[r.StepIndex]; ok {
				s.Content = &c
			}
		}
		out = append(out, s)
	}
	return out
}

// runStart is when the run started: its start time, or its creation when
// it never left the queue (bundle.TotalsOf's start).
func (d *runData) runStart() time.Time {
	if d.run.StartedAt != nil {
		return d.run.StartedAt.UTC()
	}
	return d.run.CreatedAt.UTC()
}

// latestCheckpoint returns the note of the checkpoint that covers most of
// a chain of n records, among a run's stored checkpoints (smallest size
// first): one signed after the records were read covers records the
// bundle does not hold, and is left out.
func latestCheckpoint(cps []governance.Checkpoint, n int) string {
	for i := len(cps) - 1; i >= 0; i-- {
		if cps[i].Size <= n {
			return cps[i].Note
		}
	}
	return ""
}
