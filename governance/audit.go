package governance

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/stopline/stopline/trace"
)

// AuditStore is implemented by stores that show a verifier what the Store
// methods do not: rows left behind without their run's row, and the
// columns a store keeps beside each record's hashed body and queries by.
// A writer of the database who deletes a run's row, or edits a column
// beside a body, leaves every chain intact; only these reads reveal it.
// VerifyStore and VerifyTenant need it (they report ErrAuditUnsupported
// for a store without it); VerifyRun compares the columns when the store
// has it. store/sqlite, store/postgres and store/memstore implement it.
type AuditStore interface {
	Store
	// Orphans lists every row, of every tenant, that names a run the
	// store holds no run row for: records, step contents, checkpoints
	// and incidents.
	Orphans(ctx context.Context) ([]Orphan, error)
	// RecordIndexes returns what the store keeps beside each record of
	// a run, as stored, in the order Records returns the records. An
	// unknown run (of this tenant) is ErrNotFound.
	RecordIndexes(ctx context.Context, tenantID, runID string) ([]RecordIndex, error)
}

// ErrAuditUnsupported is reported by VerifyStore and VerifyTenant for a
// store that does not implement AuditStore: rows without a run and the
// columns beside the records could not be checked.
var ErrAuditUnsupported = errors.New("governance: the store does not implement governance.AuditStore")

// ErrOrphan is matched when a store holds rows of a run — records, step
// contents, checkpoints, incidents — but not the run's row: the run was
// deleted, and what it recorded was left. It also matches ErrIntegrity.
var ErrOrphan = errors.New("governance: rows of a run whose row is missing")

// OrphanKind says what an orphan row is.
type OrphanKind string

// Orphan kinds.
const (
	OrphanRecord     OrphanKind = "record"
	OrphanContent    OrphanKind = "content"
	OrphanCheckpoint OrphanKind = "checkpoint"
	OrphanIncident   OrphanKind = "incident"
)

// Orphan is one row that names a run the store holds no row for.
type Orphan struct {
	TenantID string
	RunID    string
	Kind     OrphanKind
	// Seq is the record's seq (a record, or the record whose step content
	// it is), or the checkpoint's size; -1 for an incident.
	Seq int
	// ID is the incident's id, or the checkpoint's key name.
	ID string
}

// OrphanError names a run whose row is missing and the rows of it that
// are left. It matches ErrOrphan and ErrIntegrity.
type OrphanError struct {
	TenantID string
	RunID    string
	Rows     []Orphan
}

func (e *OrphanError) Error() string {
	var recs, conts, cps, incs []string
	for _, o := range e.Rows {
		switch o.Kind {
		case OrphanRecord:
			recs = append(recs, strconv.Itoa(o.Seq))
		case OrphanContent:
			conts = append(conts, strconv.Itoa(o.Seq))
		case OrphanCheckpoint:
			cps = append(cps, fmt.Sprintf("%d (key %s)", o.Seq, o.ID))
		case OrphanIncident:
			incs = append(incs, o.ID)
		default:
			incs = append(incs, fmt.Sprintf("%s %s", o.Kind, o.ID))
		}
	}
	var parts []string
	for _, p := range []struct {
		what string
		list []string
	}{{"records", recs}, {"step contents of records", conts}, {"checkpoints of sizes", cps}, {"incidents", incs}} {
		if len(p.list) > 0 {
			parts = append(parts, p.what+" "+strings.Join(p.list, ", "))
		}
	}
	return fmt.Sprintf("run %s (tenant %q): the run's row is missing, but the store holds its %s", e.RunID, e.TenantID, strings.Join(parts, "; "))
}

// Is matches ErrOrphan and ErrIntegrity.
func (e *OrphanError) Is(target error) bool { return target == ErrOrphan || target == ErrIntegrity }

// RecordIndex is what a store keeps beside a record's hashed body, in
// columns it queries by (a run's step count, totals and head while it is
// open; its content by step index; one inflection and one run_end per
// run). Each must say what the hashed body says: IndexOf gives the index
// of a record, and VerifyRun compares the stored one with it.
type RecordIndex struct {
	Seq            int
	Kind           trace.Kind
	StepIndex      int
	At             time.Time
	Status         trace.Status
	Inflection     bool
	PolicyID       string // the deciding policy of a step; the violating policy of a run_end
	TotalTokens    int64
	TotalCostCents float64
	// Body is the stored body, byte for byte: it must be exactly the
	// record's canonical encoding (trace.Encode), not merely decode to
	// the same record — a key given twice (encoding/json keeps the last,
	// a reader of the database the first), a key in another case, other
	// spacing. IndexOf leaves it nil.
	Body []byte
}

// IndexOf returns the index a store keeps for r.
func IndexOf(r *trace.Record) RecordIndex {
	policyID := r.ViolationPolicyID
	if r.Decision != nil {
		policyID = r.Decision.PolicyID
	}
	return RecordIndex{
		Seq: r.Seq, Kind: r.Kind, StepIndex: r.StepIndex, At: r.At, Status: r.Status, Inflection: r.Inflection,
		PolicyID: policyID, TotalTokens: r.TotalTokens, TotalCostCents: r.TotalCostCents,
	}
}

// diff names the first field in which the stored index x differs from
// want, with both values ("" when they agree).
func (x RecordIndex) diff(want RecordIndex) string {
	f := func(field string, got, want any) string {
		return fmt.Sprintf("stored column %s is %v, the hashed record says %v", field, got, want)
	}
	switch {
	case x.Seq != want.Seq:
		return f("seq", x.Seq, want.Seq)
	case x.Kind != want.Kind:
		return f("kind", x.Kind, want.Kind)
	case x.StepIndex != want.StepIndex:
		return f("step_index", x.StepIndex, want.StepIndex)
	case !x.At.Equal(want.At):
		return f("time", x.At.UTC().Format(time.RFC3339Nano), want.At.UTC().Format(time.RFC3339Nano))
	case x.Status != want.Status:
		return f("status", strconv.Quote(string(x.Status)), strconv.Quote(string(want.Status)))
	case x.Inflection != want.Inflection:
		return f("inflection", x.Inflection, want.Inflection)
	case x.PolicyID != want.PolicyID:
		return f("policy_id", strconv.Quote(x.PolicyID), strconv.Quote(want.PolicyID))
	case x.TotalTokens != want.TotalTokens:
		return f("total_tokens", x.TotalTokens, want.TotalTokens)
	case x.TotalCostCents != want.TotalCostCents:
		return f("total_cost_cents", x.TotalCostCents, want.TotalCostCents)
	}
	return ""
}

// orphanFailures groups orphan rows by run, one *OrphanError per run,
// in tenant and run order. tenantID, if not empty, keeps that tenant's.
func orphanFailures(rows []Orphan, tenantID string) []error {
	byRun := map[[2]string][]Orphan{}
	var keys [][2]string
	for _, o := range rows {
		if tenantID != "" && o.TenantID != tenantID {
			continue
		}
		k := [2]string{o.TenantID, o.RunID}
		if _, ok := byRun[k]; !ok {
			keys = append(keys, k)
		}
		byRun[k] = append(byRun[k], o)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i][0] != keys[j][0] {
			return keys[i][0] < keys[j][0]
		}
		return keys[i][1] < keys[j][1]
	})
	out := make([]error, 0, len(keys))
	for _, k := range keys {
		rs := byRun[k]
		sort.SliceStable(rs, func(i, j int) bool {
			if rs[i].Kind != rs[j].Kind {
				return rs[i].Kind > rs[j].Kind // records, incidents, contents, checkpoints
			}
			if rs[i].Seq != rs[j].Seq {
				return rs[i].Seq < rs[j].Seq
			}
			return rs[i].ID < rs[j].ID
		})
		out = append(out, &OrphanError{TenantID: k[0], RunID: k[1], Rows: rs})
	}
	return out
}
