package governance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// ErrIntegrity is matched when a run's stored facts disagree with its
// chain: a run row whose head, status or links do not match its records,
// an incident that does not match its inflection point, or step content
// that does not match its hash. Chain errors match trace.ErrChainBroken.
var ErrIntegrity = errors.New("governance: stored run disagrees with its chain")

// IntegrityError names the run and what disagrees.
type IntegrityError struct {
	TenantID string
	RunID    string
	Seq      int // the record concerned, -1 for the run row
	Problem  string
	Err      error // the underlying error, if the problem came from one
}

func (e *IntegrityError) Error() string {
	if e.Seq >= 0 {
		return fmt.Sprintf("run %s: record %d: %s", e.RunID, e.Seq, e.Problem)
	}
	return fmt.Sprintf("run %s: %s", e.RunID, e.Problem)
}

// Is matches ErrIntegrity.
func (e *IntegrityError) Is(target error) bool { return target == ErrIntegrity }

// Unwrap returns the underlying error, if any.
func (e *IntegrityError) Unwrap() error { return e.Err }

// VerifyRun recomputes a run's hash chain from the store and checks that
// everything stored about the run agrees with it: the snapshot's content
// hash and the one bound in run_start; the run's head hash, size, step
// count and totals, and (once ended) its status, reason, stopped-at step,
// violating policy and incident against the run_end record; the incidents
// that name the run (exactly the one its stop created, with the facts of
// the inflection record; none for a run that never stopped); each step's
// content against its content hash, and no content where no step is; and,
// for a store that implements AuditStore, the columns it keeps beside
// each record against the record. It returns the chain's length and the
// first problem found: a *trace.ChainError, or an *IntegrityError naming
// the run and the record (ErrIntegrity).
//
// The store's reads are not one snapshot: a run that records a step while
// it is verified can look inconsistent. A run that has not ended and
// whose chain grew while it was read is verified again (up to three
// times); the last error stands.
func VerifyRun(ctx context.Context, store Store, tenantID, runID string) (records int, err error) {
	records, _, err = verifiedRun(ctx, store, tenantID, runID, nil, false)
	return records, err
}

// readVerified is VerifyRun, returning what it read and verified: the
// run, its snapshot, its records and their contents, as one consistent
// reading (nil when verification failed). snaps, if not nil, holds the
// snapshots already read and verified by an earlier call on the same
// store, and gets those this one reads.
func readVerified(ctx context.Context, store Store, tenantID, runID string, snaps *verifiedSnapshots) (records int, rr *recordedRun, err error) {
	return verifiedRun(ctx, store, tenantID, runID, snaps, true)
}

// verifiedRun is VerifyRun; with keep, it returns what it read as
// readVerified does, else only the run's row in rr.
func verifiedRun(ctx context.Context, store Store, tenantID, runID string, snaps *verifiedSnapshots, keep bool) (records int, rr *recordedRun, err error) {
	for attempt := 1; ; attempt++ {
		run, rerr := store.Run(ctx, tenantID, runID)
		if rerr != nil {
			return 0, nil, rerr
		}
		rr = &recordedRun{run: run}
		records, err = verifyRun(ctx, store, tenantID, runID, run, rr, snaps, keep)
		if err == nil {
			return records, rr, nil
		}
		if run.Status.Ended() || attempt == 3 {
			return records, nil, err
		}
		now, rerr := store.Run(ctx, tenantID, runID)
		if rerr != nil || (now.ChainLength == run.ChainLength && now.HeadHash == run.HeadHash && now.Status == run.Status) {
			return records, nil, err // nothing moved: the failure is the store's
		}
	}
}

// verifiedSnapshots are snapshots read from a store and verified, by
// tenant and id, so that verifying many runs of one snapshot reads and
// hashes it once. It is safe for concurrent use; a nil one keeps nothing.
type verifiedSnapshots struct {
	mu sync.Mutex
	m  map[[2]string]*snapshot.PolicySnapshot
}

// snapshot returns the tenant's snapshot id, read and verified, or the
// problem found: the store's error (read is false), or the snapshot's
// failed verification.
func (vs *verifiedSnapshots) snapshot(ctx context.Context, store Store, tenantID, id string) (snap *snapshot.PolicySnapshot, read bool, err error) {
	if vs != nil {
		vs.mu.Lock()
		cached := vs.m[[2]string{tenantID, id}]
		vs.mu.Unlock()
		if cached != nil {
			return cached, true, nil
		}
	}
	snap, err = store.Snapshot(ctx, tenantID, id)
	if err != nil {
		return nil, false, err
	}
	if err := snap.Verify(); err != nil {
		return nil, true, err
	}
	if vs != nil {
		vs.mu.Lock()
		if vs.m == nil {
			vs.m = map[[2]string]*snapshot.PolicySnapshot{}
		}
		vs.m[[2]string{tenantID, id}] = snap
		vs.mu.Unlock()
	}
	return snap, true, nil
}

// verifyPage is how many records verifyRun reads at a time from a
// RangeStore.
const verifyPage = 4096

// verifyRun verifies the run as VerifyRun describes, and fills out with
// what it read when keep is set (its snapshot, records and contents).
// Its snapshot comes through snaps.
//
// It reads the chain in pages from a RangeStore (whole from any other
// Store) and checks each record as it comes, holding only what the checks
// after the last record need, unless keep. Its checks and their order of
// precedence are those of reading everything first: a broken chain is
// reported before anything else, then the chain's run and snapshot, the
// run row's head, the columns beside each record, the run row's facts,
// the policy version, the incidents, and the step contents, each failure
// at its first record.
func verifyRun(ctx context.Context, store Store, tenantID, runID string, run RunRecord, out *recordedRun, snaps *verifiedSnapshots, keep bool) (records int, err error) {
	bad := func(seq int, format string, args ...any) error {
		return &IntegrityError{TenantID: tenantID, RunID: runID, Seq: seq, Problem: fmt.Sprintf(format, args...)}
	}
	readErr := func(what string, err error) error {
		return &IntegrityError{TenantID: tenantID, RunID: runID, Seq: -1, Problem: what + ": " + err.Error(), Err: err}
	}
	as, audit := store.(AuditStore)
	var (
		v                 trace.Verifier
		first, last, infl trace.Record
		stopped           bool
		steps             int
		tokens            int64
		cost              float64
		indexErr, contErr error
		bound, misplaced  int
		recs              []trace.Record
		contents          map[int]trace.Content
		n                 int
	)
	if keep {
		contents = map[int]trace.Content{}
	}
	// One record as read: the chain first, then what is kept beside it.
	check := func(sr *StoredRecord) error {
		r := &sr.Record
		if err := v.Add(r); err != nil {
			var ce *trace.ChainError
			if errors.As(err, &ce) && ce.RunID == "" {
				ce.RunID, ce.TenantID = runID, tenantID
			}
			return err
		}
		if n == 0 {
			first = *r
		}
		n++
		last = *r
		if r.Kind == trace.KindStep {
			steps, tokens, cost = r.StepIndex+1, r.TotalTokens, r.TotalCostCents
			if r.Inflection {
				infl, stopped = *r, true
			}
		}
		if audit && indexErr == nil {
			if d := sr.Index.diff(IndexOf(r)); d != "" {
				indexErr = bad(r.Seq, "%s", d)
			} else if sr.Index.Body != nil && !bytes.Equal(sr.Index.Body, v.Body()) {
				indexErr = bad(r.Seq, "the stored body is not the canonical encoding of the record it decodes to (a key given twice or spelled another way, other spacing): a reader of the database may read another record than the one hashed")
			}
		}
		want := keptHash(first.Retention, r)
		if c := sr.Content; c != nil {
			if r.Kind != trace.KindStep {
				misplaced++
			} else {
				bound++
				if contErr == nil && trace.ContentHashOf(*c) != want {
					contErr = bad(r.Seq, "content of step %d does not match its %s", r.StepIndex, keptWhat(first.Retention))
				}
				if keep {
					contents[r.StepIndex] = *c
				}
			}
		} else if r.Kind == trace.KindStep && want != "" && contErr == nil {
			contErr = bad(r.Seq, "content of step %d is missing", r.StepIndex)
		}
		if keep {
			recs = append(recs, *r)
		}
		return nil
	}

	// The chain, and what is kept beside each record.
	var storedContents int
	if rs, ok := store.(RangeStore); ok {
		if keep {
			recs = make([]trace.Record, 0, max(run.ChainLength, 1))
		}
		var chainErr error
		err := readPages(ctx, rs, tenantID, runID, RecordRange{Index: audit, Content: true}, verifyPage, verifyPage, 2, func(page []StoredRecord) error {
			for i := range page {
				if chainErr = check(&page[i]); chainErr != nil {
					return chainErr
				}
			}
			return nil
		})
		if chainErr != nil {
			return n + 1, chainErr
		}
		if err != nil {
			// A record the store cannot decode is a record that was changed.
			return n, readErr("reading its records", err)
		}
		if storedContents, err = rs.ContentCount(ctx, tenantID, runID); err != nil {
			return n, readErr("reading its step contents", err)
		}
	} else {
		all, err := store.Records(ctx, tenantID, runID)
		if err != nil {
			return 0, readErr("reading its records", err)
		}
		var idx []RecordIndex
		if audit {
			if idx, err = as.RecordIndexes(ctx, tenantID, runID); err != nil {
				return len(all), readErr("reading its records' stored columns", err)
			}
		}
		stored, err := store.Contents(ctx, tenantID, runID)
		if err != nil {
			return len(all), readErr("reading its step contents", err)
		}
		storedContents = len(stored)
		if keep {
			recs = make([]trace.Record, 0, len(all))
		}
		for i := range all {
			sr := StoredRecord{Record: all[i]}
			if i < len(idx) {
				sr.Index = idx[i]
			}
			if all[i].Kind == trace.KindStep {
				if c, ok := stored[all[i].StepIndex]; ok {
					sr.Content = &c
				}
			}
			if err := check(&sr); err != nil {
				return len(all), err
			}
		}
		if audit && len(idx) != len(all) && indexErr == nil {
			indexErr = bad(-1, "the store indexes %d records, its chain has %d", len(idx), len(all))
		}
	}
	if n == 0 {
		return 0, &trace.ChainError{TenantID: tenantID, RunID: runID, Seq: 0, Problem: "no records"}
	}
	head := v.Head()

	if first.RunID != runID || first.TenantID != tenantID {
		return n, bad(0, "chain belongs to run %s of tenant %q", first.RunID, first.TenantID)
	}
	if first.SnapshotID != run.SnapshotID {
		return n, bad(0, "chain is bound to snapshot %s, run row says %s", first.SnapshotID, run.SnapshotID)
	}
	snap, read, err := snaps.snapshot(ctx, store, tenantID, run.SnapshotID)
	if err != nil && !read {
		return n, bad(-1, "snapshot %s: %v", run.SnapshotID, err)
	}
	if err != nil {
		return n, &IntegrityError{TenantID: tenantID, RunID: runID, Seq: -1, Problem: "its snapshot: " + err.Error(), Err: err}
	}
	if keep {
		out.records, out.head, out.snap = recs, head, snap
	}
	if first.SnapshotHash != snap.ContentHash() {
		return n, bad(0, "run_start binds snapshot hash %s, stored snapshot has %s", first.SnapshotHash, snap.ContentHash())
	}
	if id := first.ShadowSnapshotID; id != "" {
		shadow, read, err := snaps.snapshot(ctx, store, tenantID, id)
		if err != nil && !read {
			return n, bad(-1, "shadow snapshot %s: %v", id, err)
		}
		if err != nil {
			return n, &IntegrityError{TenantID: tenantID, RunID: runID, Seq: -1, Problem: "its shadow snapshot: " + err.Error(), Err: err}
		}
		if first.ShadowSnapshotHash != shadow.ContentHash() {
			return n, bad(0, "run_start binds shadow snapshot hash %s, stored snapshot %s has %s", first.ShadowSnapshotHash, id, shadow.ContentHash())
		}
		if keep {
			out.shadow = shadow
		}
	}
	if run.HeadHash != head {
		return n, bad(-1, "run head hash %s is not the chain's head %s", run.HeadHash, head)
	}
	if indexErr != nil {
		return n, indexErr
	}
	// What the run row states about the chain's size and its last step.
	if run.ChainLength != n || run.StepCount != steps || run.TotalTokens != tokens || run.TotalCostCents != cost {
		return n, bad(-1, "run row states %d records, %d steps, %d tokens, %g cents; the chain has %d records, %d steps, %d tokens, %g cents",
			run.ChainLength, run.StepCount, run.TotalTokens, run.TotalCostCents, n, steps, tokens, cost)
	}
	if run.Status.Ended() != (last.Kind == trace.KindRunEnd) {
		return n, bad(-1, "run status %s but chain ends with a %s record", run.Status, last.Kind)
	}
	if last.Kind == trace.KindRunEnd {
		if string(run.Status) != last.RunStatus || run.TerminationReason != last.Reason ||
			run.ViolationPolicyID != last.ViolationPolicyID || run.IncidentID != last.IncidentID ||
			!sameIntPtr(run.StoppedAtStep, last.StoppedAtStep) {
			return n, bad(last.Seq, "run row (%s, %s, policy %q, incident %q) disagrees with run_end record (%s, %s, policy %q, incident %q)",
				run.Status, run.TerminationReason, run.ViolationPolicyID, run.IncidentID,
				last.RunStatus, last.Reason, last.ViolationPolicyID, last.IncidentID)
		}
		if run.EndedAt == nil || !run.EndedAt.Equal(last.At) {
			return n, bad(last.Seq, "run row says ended %s, its run_end record at %s", fmtTimePtr(run.EndedAt), fmtTime(last.At))
		}
	} else if run.EndedAt != nil || run.TerminationReason != "" || run.StoppedAtStep != nil || run.ViolationPolicyID != "" {
		return n, bad(-1, "run row of a run that has not ended states an end (ended %s, reason %q, stopped at %v, policy %q)",
			fmtTimePtr(run.EndedAt), run.TerminationReason, derefInt(run.StoppedAtStep), run.ViolationPolicyID)
	}
	// When the run was created is its run_start record's time; a queued
	// run has no step.
	if !run.CreatedAt.Equal(first.At) {
		return n, bad(0, "run row says created at %s, run_start record at %s", fmtTime(run.CreatedAt), fmtTime(first.At))
	}
	if run.Status == StatusQueued && steps > 0 {
		return n, bad(-1, "run row says queued but the chain has %d steps", steps)
	}
	// The policy version the run row names, if any, published the
	// snapshot the chain is bound to.
	if run.PolicyVersion != 0 {
		vs, err := store.PolicyVersions(ctx, tenantID)
		if err != nil {
			return n, &IntegrityError{TenantID: tenantID, RunID: runID, Seq: -1, Problem: "reading the policy versions: " + err.Error(), Err: err}
		}
		ok := false
		for _, v := range vs {
			ok = ok || v.Version == run.PolicyVersion && v.SnapshotID == run.SnapshotID
		}
		if !ok {
			return n, bad(-1, "run row names policy version %d, which did not publish snapshot %s", run.PolicyVersion, run.SnapshotID)
		}
	}
	// Every incident that names the run: exactly the one its stop created,
	// and none for a run that never stopped.
	incs, err := store.Incidents(ctx, IncidentFilter{TenantID: tenantID, RunID: runID})
	if err != nil {
		return n, &IntegrityError{TenantID: tenantID, RunID: runID, Seq: -1, Problem: "reading its incidents: " + err.Error(), Err: err}
	}
	if !stopped {
		if run.IncidentID != "" {
			return n, bad(-1, "run row names incident %s but the chain has no inflection point", run.IncidentID)
		}
		if len(incs) > 0 {
			return n, bad(-1, "incident %s names this run, which never stopped (its chain has no inflection point)", incs[0].ID)
		}
	} else {
		inf, _ := trace.InflectionOf([]trace.Record{infl})
		if run.StoppedAtStep == nil || *run.StoppedAtStep != inf.StepIndex {
			return n, bad(inf.Seq, "inflection at step %d but run row says stopped at %v", inf.StepIndex, derefInt(run.StoppedAtStep))
		}
		if run.IncidentID == "" {
			return n, bad(inf.Seq, "the run stopped at step %d but names no incident", inf.StepIndex)
		}
		for _, other := range incs {
			if other.ID != run.IncidentID {
				return n, bad(inf.Seq, "incident %s also names this run, whose stop created incident %s", other.ID, run.IncidentID)
			}
		}
		if len(incs) != 1 {
			return n, bad(inf.Seq, "the store lists %d incidents of this run, want its one incident %s", len(incs), run.IncidentID)
		}
		inc, err := store.Incident(ctx, tenantID, run.IncidentID)
		if err != nil {
			return n, bad(-1, "incident %s: %v", run.IncidentID, err)
		}
		if inc.RunID != runID || inc.StepIndex != inf.StepIndex || inc.PolicyID != inf.PolicyID ||
			inc.RecordHash != inf.Hash || inc.SnapshotID != run.SnapshotID || inc.Reason != inf.Reason ||
			inc.TraceID != run.TraceID || !inc.CreatedAt.Equal(inf.At) {
			return n, bad(inf.Seq, "incident %s does not match the inflection record (step %d, policy %s, hash %s)",
				inc.ID, inf.StepIndex, inf.PolicyID, inf.Hash)
		}
		// The facts an incident states are the blocking decision's.
		if d := infl.Decision; d != nil && (inc.Source != d.Source || inc.Threshold != d.Threshold ||
			inc.Limit != d.Limit || inc.Observed != d.Observed || inc.Message != d.Message) {
			return n, bad(inf.Seq, "incident %s states %s %q, %s limit %g observed %g (%q); the inflection record's decision says %s %q, %s limit %g observed %g (%q)",
				inc.ID, inc.Source, inc.PolicyID, inc.Threshold, inc.Limit, inc.Observed, inc.Message,
				d.Source, d.PolicyID, d.Threshold, d.Limit, d.Observed, d.Message)
		}
	}
	if keep {
		out.contents = contents
	}
	if contErr != nil {
		return n, contErr
	}
	if misplaced > 0 || bound != storedContents {
		// Content stored for a step the chain does not have: read it
		// whole to name the steps.
		stored, err := store.Contents(ctx, tenantID, runID)
		if err != nil {
			return n, readErr("reading its step contents", err)
		}
		var extra []int
		for idx := range stored {
			if idx < 0 || idx >= steps {
				extra = append(extra, idx)
			}
		}
		sort.Ints(extra)
		return n, bad(-1, "content is stored for steps %v, which the chain does not have", extra)
	}
	return n, nil
}

// keptHash is the content hash of what a run kept of step r's content,
// under the retention its run_start record states: the content's own
// (ContentHash) in full, the kept content's when a redaction changed it,
// and under hashes what was kept of it ("" for nothing).
func keptHash(retention trace.Retention, r *trace.Record) string {
	switch {
	case r.Kind != trace.KindStep || retention == "":
		return r.ContentHash
	case retention == trace.RetentionRedacted && r.KeptContentHash == "":
		return r.ContentHash
	}
	return r.KeptContentHash
}

func keptWhat(retention trace.Retention) string {
	if retention == "" {
		return "content hash"
	}
	return "content hash, or the kept content hash of a run that keeps content " + string(retention)
}

func sameIntPtr(a, b *int) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return *a == *b
}

func fmtTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "never"
	}
	return fmtTime(*t)
}

func derefInt(p *int) any {
	if p == nil {
		return "none"
	}
	return *p
}

// StoreReport is the outcome of VerifyStore and VerifyTenant.
type StoreReport struct {
	Tenants  int
	Runs     int
	Records  int
	Orphans  int     // rows found without their run's row
	Failures []error // one per run that failed, naming the run and the first bad record
}

// VerifyStore runs VerifyRun on every run of every tenant, and looks for
// rows whose run's row is missing (records, step contents, checkpoints,
// incidents: one *OrphanError per run, matching ErrOrphan). That needs a
// store that implements AuditStore; for one that does not, the report
// has a failure matching ErrAuditUnsupported. progress, if not nil, is
// called after each run with the number verified so far. The error is
// non-nil only when the store itself could not be read; failed runs are
// in the report.
//
// A run deleted together with everything it recorded leaves nothing to
// find: per-run chains and checkpoints cannot reveal it.
func VerifyStore(ctx context.Context, store Store, progress func(done int)) (StoreReport, error) {
	var rep StoreReport
	tenants, err := store.Tenants(ctx)
	if err != nil {
		return rep, err
	}
	rep.Tenants = len(tenants)
	for _, t := range tenants {
		if err := verifyRuns(ctx, store, t, &rep, progress); err != nil {
			return rep, err
		}
	}
	return rep, verifyOrphans(ctx, store, "", &rep)
}

// VerifyTenant is VerifyStore for one tenant: its runs, and the rows of
// that tenant whose run's row is missing.
func VerifyTenant(ctx context.Context, store Store, tenantID string, progress func(done int)) (StoreReport, error) {
	rep := StoreReport{Tenants: 1}
	if err := verifyRuns(ctx, store, tenantID, &rep, progress); err != nil {
		return rep, err
	}
	return rep, verifyOrphans(ctx, store, tenantID, &rep)
}

func verifyRuns(ctx context.Context, store Store, tenantID string, rep *StoreReport, progress func(done int)) error {
	runs, err := store.Runs(ctx, RunFilter{TenantID: tenantID})
	if err != nil {
		return err
	}
	for _, r := range runs {
		n, err := VerifyRun(ctx, store, tenantID, r.RunID)
		rep.Runs++
		rep.Records += n
		if err != nil {
			rep.Failures = append(rep.Failures, err)
		}
		if progress != nil {
			progress(rep.Runs)
		}
	}
	return nil
}

func verifyOrphans(ctx context.Context, store Store, tenantID string, rep *StoreReport) error {
	as, ok := store.(AuditStore)
	if !ok {
		rep.Failures = append(rep.Failures, fmt.Errorf("%w: %T: rows left without their run's row and the columns beside each record were not checked", ErrAuditUnsupported, store))
		return nil
	}
	rows, err := as.Orphans(ctx)
	if err != nil {
		return err
	}
	for _, f := range orphanFailures(rows, tenantID) {
		rep.Orphans += len(f.(*OrphanError).Rows)
		rep.Failures = append(rep.Failures, f)
	}
	return nil
}
