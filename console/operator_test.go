package console_test

import (
	"io"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/console"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
)

// The approvals queue and the kill switch: a viewer sees a pending hold
// without forms, an operator approves it once (the answer is the token),
// the hold is on the run's timeline before and after; a tenant-wide kill
// switch is always the operator's own tenant.
func TestOperatorPages(t *testing.T) {
	var st governance.Store
	f := newFixtureWith(t, func(s governance.Store) []console.Option {
		st = s
		return []console.Option{console.WithExtension(console.Approvals(s)), console.WithExtension(console.KillSwitches(s))}
	})
	r, err := governance.NewRunner(st, governance.WithHolds(time.Minute, time.Minute, 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	snap, err := snapshot.Parse("p.json", []byte(`{"tenant_id": "acme", "thresholds": {},
	  "policies": [{"id": "approve-wire", "kind": "requires_approval", "params": {"tools": ["wire_transfer"]}}]}`), time.Now(), r.Kinds())
	if err != nil {
		t.Fatal(err)
	}
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepToolCall, Tool: "wire_transfer"})
		done <- err
	}()
	var hold governance.Hold
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if hs, _ := governance.PendingHolds(ctx, st, "acme"); len(hs) == 1 {
			hold = hs[0]
			break
		}
	}
	if hold.ID == "" {
		t.Fatal("no hold")
	}
	viewer, op := f.client(t, "acme", access.Viewer), f.client(t, "acme", access.Operator)
	_, page := get(t, viewer, f.srv.URL+"/console/x/approvals")
	if !strings.Contains(page, `id="hold-`+hold.ID+`"`) || strings.Contains(page, `id="approve-`) {
		t.Errorf("viewer's approvals page: hold listed %t, approve offered %t", strings.Contains(page, hold.ID), strings.Contains(page, `id="approve-`))
	}
	if _, other := get(t, f.client(t, "globex", access.Admin), f.srv.URL+"/console/x/approvals"); strings.Contains(other, hold.ID) {
		t.Error("another tenant sees the hold")
	}
	_, runPage := get(t, viewer, f.srv.URL+"/console/runs/"+run.ID())
	if !strings.Contains(runPage, "held, waiting") {
		t.Error("the pending hold is not on the run's timeline")
	}
	_, page = get(t, op, f.srv.URL+"/console/x/approvals")
	csrf := csrfOf(t, page)
	post := func(path string, form url.Values) string {
		t.Helper()
		form.Set("csrf", csrf)
		resp, err := op.PostForm(f.srv.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("POST %s: %d %s", path, resp.StatusCode, b)
		}
		return string(b)
	}
	if body := post("/console/x/approvals/approve", url.Values{"hold": {hold.ID}, "reason": {"ticket 7"}}); !strings.Contains(body, "approved by token:TOK-") {
		t.Errorf("approve answered:\n%s", body)
	}
	if body := post("/console/x/approvals/deny", url.Values{"hold": {hold.ID}, "reason": {"too late"}}); !strings.Contains(body, "already answered") {
		t.Errorf("a second answer:\n%s", body)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("the held step after approval: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held step did not return")
	}
	_, runPage = get(t, viewer, f.srv.URL+"/console/runs/"+run.ID())
	if !strings.Contains(runPage, "held, approved by token:TOK-") {
		t.Error("the answered hold is not on the run's timeline")
	}

	// The kill switch: a tenant-wide switch is always the operator's own tenant.
	post("/console/x/kill-switch/pull", url.Values{"scope": {"tenant"}, "target": {"globex"}, "reason": {"incident 12"}})
	kills, _ := governance.ActiveKills(ctx, st, "acme")
	if len(kills) != 1 || kills[0].Target != "acme" || !strings.HasPrefix(kills[0].By, "token:TOK-") {
		t.Fatalf("active kills of acme: %+v", kills)
	}
	if gk, _ := governance.ActiveKills(ctx, st, "globex"); len(gk) != 0 {
		t.Fatalf("an acme operator pulled globex's switch: %+v", gk)
	}
	if body := post("/console/x/kill-switch/pull", url.Values{"scope": {"tenant"}, "reason": {"again"}}); !strings.Contains(body, "already pulled") {
		t.Errorf("pulling twice:\n%s", body)
	}
	post("/console/x/kill-switch/release", url.Values{"scope": {"tenant"}, "target": {"acme"}})
	if kills, _ := governance.ActiveKills(ctx, st, "acme"); len(kills) != 0 {
		t.Errorf("after release: %+v", kills)
	}
}
