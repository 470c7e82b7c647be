package memstore

import (
	"github.com/stopline/stopline/internal/translog"
	"golang.org/x/mod/sumdb/tlog"
	"sort"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/trace"
)

// Tamper edits a Store behind its back, for storetest.RunTamper.
type Tamper struct{ S *Store }

func (tm Tamper) DeleteRunRow(t testing.TB, tenantID, runID string) {
	s := tm.S
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.runs[key{tenantID, runID}]; !ok {
		t.Fatalf("no run %s of %s", runID, tenantID)
	}
	delete(s.runs, key{tenantID, runID}) // its records and contents live in it
}

func (tm Tamper) EditRecordIndex(t testing.TB, tenantID, runID string, seq int, edit func(*governance.RecordIndex)) {
	s := tm.S
	s.mu.Lock()
	defer s.mu.Unlock()
	r := tm.record(t, tenantID, runID, seq)
	x := governance.IndexOf(r)
	edit(&x)
	r.Seq, r.Kind, r.StepIndex, r.At, r.Status, r.Inflection = x.Seq, x.Kind, x.StepIndex, x.At, x.Status, x.Inflection
	r.TotalTokens, r.TotalCostCents = x.TotalTokens, x.TotalCostCents
	if r.Decision != nil {
		d := *r.Decision
		d.PolicyID = x.PolicyID
		r.Decision = &d
	} else {
		r.ViolationPolicyID = x.PolicyID
	}
}

func (tm Tamper) SetBody(t testing.TB, tenantID, runID string, seq int, body []byte) {
	s := tm.S
	s.mu.Lock()
	defer s.mu.Unlock()
	tm.record(t, tenantID, runID, seq)
	st := s.runs[key{tenantID, runID}]
	for i := range st.records {
		if st.records[i].Seq == seq {
			st.bodies[i] = body
		}
	}
}

func (tm Tamper) SetContent(t testing.TB, tenantID, runID string, seq int, c trace.Content) {
	s := tm.S
	s.mu.Lock()
	defer s.mu.Unlock()
	r := tm.record(t, tenantID, runID, seq)
	s.runs[key{tenantID, runID}].contents[r.StepIndex] = c
}

func (tm Tamper) record(t testing.TB, tenantID, runID string, seq int) *trace.Record {
	st, ok := tm.S.runs[key{tenantID, runID}]
	if !ok {
		t.Fatalf("no run %s of %s", runID, tenantID)
	}
	for i := range st.records {
		if st.records[i].Seq == seq {
			return &st.records[i]
		}
	}
	t.Fatalf("no record %d in run %s", seq, runID)
	return nil
}

func (tm Tamper) InsertIncident(t testing.TB, inc incident.Incident) {
	s := tm.S
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{inc.TenantID, inc.ID}
	s.n++
	s.incidents[k], s.incSeq[k] = inc, s.n
}

func (tm Tamper) InsertCheckpoint(t testing.TB, c governance.Checkpoint) {
	s := tm.S
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{c.TenantID, c.RunID}
	s.checkpts[k] = append(s.checkpts[k], c)
	sort.SliceStable(s.checkpts[k], func(i, j int) bool { return s.checkpts[k][i].Size < s.checkpts[k][j].Size })
}

// DeleteRun implements storetest.LogTamper.
func (tm Tamper) DeleteRun(t testing.TB, tenantID, runID string) {
	s := tm.S
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{tenantID, runID}
	st, ok := s.runs[k]
	if !ok {
		t.Fatalf("no run %s of %s", runID, tenantID)
	}
	if st.run.IncidentID != "" {
		delete(s.incidents, key{tenantID, st.run.IncidentID})
	}
	delete(s.runs, k)
	delete(s.checkpts, k)
}

// ReplaceTenantLog implements storetest.LogTamper.
func (tm Tamper) ReplaceTenantLog(t testing.TB, tenantID string, leaves []governance.LogLeaf, hashes []tlog.Hash, frontier []byte) {
	s := tm.S
	s.mu.Lock()
	defer s.mu.Unlock()
	f, err := translog.DecodeFrontier(int64(len(leaves)), frontier)
	if err != nil {
		t.Fatal(err)
	}
	s.logs[tenantID] = &tenantLog{leaves: leaves, hashes: hashes, frontier: f}
}
