package governance_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// The isolation suite: two tenants with the same run, incident and bundle
// ids, and a third with nothing. Every read method of the Store, and
// every function that reads through it (Explain, VerifyRun, checkpoints,
// RecoverRun), is asked, as one tenant, for the other's ids: the answer
// is "not found" (errors.Is ErrNotFound) or an empty list, never the
// other tenant's data, never "forbidden" (which would confirm the id
// exists). Asked for a shared id, each tenant sees only its own. Runs on
// the in-memory store and on SQLite.

// tenantData is what one tenant holds.
type tenantData struct {
	snapID   string // snapshot of this tenant only (its own thresholds)
	onlyRun  string // a stopped run whose id only this tenant has
	onlyInc  string // its incident
	openRun  string // a run still running
	note     string // a checkpoint note of onlyRun
	secret   string // text in this tenant's step contents
	versions int
}

func isolationFixture(t *testing.T, st governance.Store) map[string]*tenantData {
	t.Helper()
	signer, _ := checkpointKeys(t, "stopline-isolation")
	out := map[string]*tenantData{}
	for i, tenant := range []string{"acme", "globex"} {
		d := &tenantData{onlyRun: "RUN-" + tenant + "-only", onlyInc: "INC-" + tenant + "-only",
			openRun: "RUN-" + tenant + "-open", secret: "secret of " + tenant}
		incIDs := []string{"INC-shared", d.onlyInc}
		r, err := governance.NewRunner(st, governance.WithClock(governance.NewFakeClock(t0)),
			governance.WithCheckpoints(signer, 1),
			governance.WithIDGenerator(func(kind string) string {
				if kind == "incident" {
					id := incIDs[0]
					incIDs = incIDs[1:]
					return id
				}
				return fmt.Sprintf("%s-%s-%d", kind, tenant, time.Now().UnixNano())
			}))
		if err != nil {
			t.Fatal(err)
		}
		snap := parse(t, fmt.Sprintf(`{"tenant_id":%q,"thresholds":{"max_steps":%d},"policies":[
			{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
			{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`, tenant, 10+i))
		d.snapID = snap.ID()
		if _, err := r.Publish(ctx, snap, "admin-"+tenant, "v1"); err != nil {
			t.Fatal(err)
		}
		d.versions = 1
		for _, runID := range []string{"RUN-shared", d.onlyRun, d.openRun} {
			run, err := r.Start(ctx, governance.StartOptions{TenantID: tenant, RunID: runID, Labels: map[string]string{"owner": tenant}})
			if err != nil {
				t.Fatal(err)
			}
			for _, tool := range []string{"search", "search", "shell"} {
				if runID == d.openRun && tool == "shell" {
					break
				}
				run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: tool, Output: d.secret, Tokens: 5})
			}
		}
		cps, err := st.Checkpoints(ctx, tenant, d.onlyRun)
		if err != nil || len(cps) == 0 {
			t.Fatal(cps, err)
		}
		d.note = cps[len(cps)-1].Note
		for _, b := range []string{"BND-shared", "BND-" + tenant + "-only"} {
			run := "RUN-shared"
			if b != "BND-shared" {
				run = d.onlyRun
			}
			if err := st.RecordExport(ctx, governance.ExportRecord{TenantID: tenant, BundleID: b, BundleType: "evidence",
				Format: "json", BundleHash: strings.Repeat("ab", 32), RunID: run, IncidentID: d.onlyInc,
				ExportedBy: "auditor-" + tenant, CreatedAt: t0}); err != nil {
				t.Fatal(err)
			}
		}
		out[tenant] = d
	}
	return out
}

// leaks reports whether v, rendered as JSON, shows anything of owner.
func leaks(v any, owner string) bool {
	b, _ := json.Marshal(v)
	s := string(b)
	return strings.Contains(s, owner)
}

func TestTenantIsolation(t *testing.T) {
	for _, sk := range stores {
		t.Run(sk.name, func(t *testing.T) {
			st := sk.open(t)
			data := isolationFixture(t, st)
			signer, verifiers := checkpointKeys(t, "unused")
			for _, viewer := range []string{"acme", "globex", "initech"} {
				for owner, d := range data {
					if owner == viewer {
						continue
					}
					t.Run(viewer+" reads "+owner, func(t *testing.T) {
						notFound := []struct {
							method string
							err    error
						}{
							{"Snapshot", second(st.Snapshot(ctx, viewer, d.snapID))},
							{"Run", second(st.Run(ctx, viewer, d.onlyRun))},
							{"Records", second(st.Records(ctx, viewer, d.onlyRun))},
							{"Contents", second(st.Contents(ctx, viewer, d.onlyRun))},
							{"Incident", second(st.Incident(ctx, viewer, d.onlyInc))},
							{"Checkpoints", second(st.Checkpoints(ctx, viewer, d.onlyRun))},
							{"Explain", second(governance.Explain(ctx, st, viewer, d.onlyRun, t0.Add(time.Hour)))},
							{"VerifyRun", second(governance.VerifyRun(ctx, st, viewer, d.onlyRun))},
							{"VerifyRunCheckpoints", second(governance.VerifyRunCheckpoints(ctx, st, viewer, d.onlyRun, verifiers))},
							{"SignCheckpoint", second(governance.SignCheckpoint(ctx, st, signer, viewer, d.onlyRun, t0))},
							{"RecoverRun", second(governance.RecoverRun(ctx, st, viewer, d.openRun, "", t0))},
							{"UpdateIncident", st.UpdateIncident(ctx, incident.Incident{ID: d.onlyInc, TenantID: viewer, Status: incident.StatusResolved})},
							{"PutCheckpoint", st.PutCheckpoint(ctx, governance.Checkpoint{TenantID: viewer, RunID: d.onlyRun, Size: 1,
								Head: strings.Repeat("0", 64), KeyName: "k", Note: "n", At: t0})},
							{"AppendStep", st.AppendStep(ctx, forgedStep(viewer, d.openRun))},
							{"CloseRun", st.CloseRun(ctx, forgedClose(viewer, d.openRun))},
						}
						if viewer == "initech" {
							notFound = append(notFound, struct {
								method string
								err    error
							}{"ActivePolicy", second(st.ActivePolicy(ctx, viewer))})
						}
						for _, c := range notFound {
							if !errors.Is(c.err, governance.ErrNotFound) {
								t.Errorf("%s of %s's id as %s: got %v, want ErrNotFound", c.method, owner, viewer, c.err)
							}
							if c.err != nil && strings.Contains(c.err.Error(), d.secret) {
								t.Errorf("%s: the error shows %s's data: %v", c.method, owner, c.err)
							}
						}
						// Lists: filtered to the viewer, whatever the filter names.
						lists := []struct {
							method string
							v      any
							err    error
						}{}
						add := func(method string, v any, err error) {
							lists = append(lists, struct {
								method string
								v      any
								err    error
							}{method, v, err})
						}
						runs, err := st.Runs(ctx, governance.RunFilter{TenantID: viewer})
						add("Runs", runs, err)
						incs, err := st.Incidents(ctx, governance.IncidentFilter{TenantID: viewer})
						add("Incidents", incs, err)
						incs, err = st.Incidents(ctx, governance.IncidentFilter{TenantID: viewer, RunID: d.onlyRun})
						add("Incidents of the other's run", incs, err)
						if len(incs) != 0 {
							t.Errorf("Incidents of %s's run as %s: %v", owner, viewer, incs)
						}
						vs, err := st.PolicyVersions(ctx, viewer)
						add("PolicyVersions", vs, err)
						exps, err := st.Exports(ctx, governance.ExportFilter{TenantID: viewer})
						add("Exports", exps, err)
						exps, err = st.Exports(ctx, governance.ExportFilter{TenantID: viewer, RunID: d.onlyRun})
						add("Exports of the other's run", exps, err)
						if len(exps) != 0 {
							t.Errorf("Exports of %s's run as %s: %v", owner, viewer, exps)
						}
						if viewer != "initech" {
							active, err := st.ActivePolicy(ctx, viewer)
							add("ActivePolicy", active, err)
						}
						for _, l := range lists {
							if l.err != nil {
								t.Errorf("%s as %s: %v", l.method, viewer, l.err)
							}
							if leaks(l.v, owner) {
								t.Errorf("%s as %s shows %s's data: %+v", l.method, viewer, owner, l.v)
							}
						}
					})
				}
			}
			// The shared ids: each tenant sees its own, and only its own.
			for viewer, d := range data {
				owner := "globex"
				if viewer == "globex" {
					owner = "acme"
				}
				t.Run(viewer+" reads its shared ids", func(t *testing.T) {
					run, err := st.Run(ctx, viewer, "RUN-shared")
					if err != nil || run.TenantID != viewer || run.SnapshotID != d.snapID || run.Labels["owner"] != viewer {
						t.Errorf("Run: %+v %v", run, err)
					}
					recs, err := st.Records(ctx, viewer, "RUN-shared")
					if err != nil || len(recs) == 0 {
						t.Fatalf("Records: %v", err)
					}
					for _, r := range recs {
						if r.TenantID != viewer {
							t.Errorf("Records: a record of tenant %s", r.TenantID)
						}
					}
					cs, err := st.Contents(ctx, viewer, "RUN-shared")
					for _, c := range cs {
						if c.Output != d.secret {
							t.Errorf("Contents: %q %v", c.Output, err)
						}
					}
					inc, err := st.Incident(ctx, viewer, "INC-shared")
					if err != nil || inc.TenantID != viewer || inc.SnapshotID != d.snapID {
						t.Errorf("Incident: %+v %v", inc, err)
					}
					cps, err := st.Checkpoints(ctx, viewer, "RUN-shared")
					for _, c := range cps {
						if c.TenantID != viewer || !strings.Contains(c.Note, "\n"+viewer+"\n") {
							t.Errorf("Checkpoints: %+v %v", c, err)
						}
					}
					exps, err := st.Exports(ctx, governance.ExportFilter{TenantID: viewer, RunID: "RUN-shared"})
					if err != nil || len(exps) != 1 || exps[0].TenantID != viewer {
						t.Errorf("Exports: %+v %v", exps, err)
					}
					ex, err := governance.Explain(ctx, st, viewer, "RUN-shared", t0.Add(time.Hour))
					if err != nil || ex.TenantID != viewer || ex.SnapshotID != d.snapID {
						t.Errorf("Explain: %+v %v", ex, err)
					}
					if _, err := governance.VerifyRun(ctx, st, viewer, "RUN-shared"); err != nil {
						t.Errorf("VerifyRun: %v", err)
					}
					for name, v := range map[string]any{"Run": run, "Records": recs, "Contents": cs, "Incident": inc, "Checkpoints": cps, "Exports": exps} {
						if leaks(v, owner) {
							t.Errorf("%s of the shared id as %s shows %s's data", name, viewer, owner)
						}
					}
				})
			}
			// What was refused changed nothing.
			for tenant, d := range data {
				if run, err := st.Run(ctx, tenant, d.openRun); err != nil || run.Status != governance.StatusRunning {
					t.Errorf("%s's open run after the other tenants' attempts: %+v %v", tenant, run, err)
				}
				if inc, err := st.Incident(ctx, tenant, d.onlyInc); err != nil || inc.Status != incident.StatusOpen {
					t.Errorf("%s's incident after the other tenants' attempts: %+v %v", tenant, inc, err)
				}
			}
			rep, err := governance.VerifyStore(ctx, st, nil)
			if err != nil || len(rep.Failures) > 0 || rep.Tenants != 2 {
				t.Errorf("VerifyStore: %+v %v", rep, err)
			}
		})
	}
}

func second[T any](_ T, err error) error { return err }

// forgedStep is a step record that claims viewer's tenant for a run only
// another tenant has.
func forgedStep(viewer, runID string) governance.StepWrite {
	r := trace.Record{TenantID: viewer, RunID: runID, Seq: 3, Kind: trace.KindStep, At: t0, SnapshotID: "SNAP-x",
		StepIndex: 2, StepType: prevention.StepMessage}
	body := trace.Seal(&r, strings.Repeat("1", 64), nil)
	return governance.StepWrite{Record: r, Body: body}
}

func forgedClose(viewer, runID string) governance.Close {
	r := trace.Record{TenantID: viewer, RunID: runID, Seq: 3, Kind: trace.KindRunEnd, At: t0, SnapshotID: "SNAP-x",
		StepIndex: -1, RunStatus: "succeeded", Reason: prevention.ReasonCompleted}
	body := trace.Seal(&r, strings.Repeat("1", 64), nil)
	return governance.Close{TenantID: viewer, RunID: runID, End: governance.StepWrite{Record: r, Body: body},
		Status: governance.StatusSucceeded, Reason: prevention.ReasonCompleted, EndedAt: t0}
}
