package sqlite_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
)

// A hold is answered once and a kill switch released once, and neither
// is ever deleted, against raw SQL on the file too.
func TestOperatorTriggersRefuseRawWrites(t *testing.T) {
	path := dbPath(t)
	s := openStore(t, path)
	snap := newSnap(t, "acme")
	if _, err := s.PublishPolicy(ctx, snap, governance.PolicyVersion{PublishedBy: "alice", PublishedAt: t0}); err != nil {
		t.Fatal(err)
	}
	startRun(t, s, snap, "RUN-held", governance.StatusRunning)
	for _, id := range []string{"HOLD-answered", "HOLD-pending"} {
		if err := s.PutHold(ctx, governance.Hold{ID: id, TenantID: "acme", RunID: "RUN-held", StepIndex: 0,
			StepType: prevention.StepToolCall, Tool: "wire", PolicyID: "approve", Source: prevention.SourcePolicy,
			RequestedAt: t0, Deadline: t0.Add(time.Hour), Status: governance.HoldPending, Step: []byte("{}")}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.AnswerHold(ctx, "acme", "HOLD-answered", governance.HoldAnswer{Status: governance.HoldApproved, By: "alice", Reason: "ok", At: t0.Add(time.Minute)}); err != nil {
		t.Fatal(err)
	}
	released, err := governance.Kill(ctx, s, "acme", governance.KillAgent, "researcher", "ops", "runaway")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := governance.Release(ctx, s, "acme", governance.KillAgent, "researcher", "ops"); err != nil {
		t.Fatal(err)
	}
	if _, err := governance.Kill(ctx, s, "acme", governance.KillTenant, "acme", "ops", "incident"); err != nil {
		t.Fatal(err)
	}

	db := rawDB(t, path)
	refused := []struct{ name, sql, want string }{
		{"answer again", `UPDATE holds SET status = 'denied', answered_by = 'mallory' WHERE hold_id = 'HOLD-answered'`, "answered once"},
		{"reopen an answered hold", `UPDATE holds SET status = 'pending' WHERE hold_id = 'HOLD-answered'`, "answered once"},
		{"move a pending hold's deadline", `UPDATE holds SET deadline = deadline + 1 WHERE hold_id = 'HOLD-pending'`, "answered once"},
		{"answer and change the step", `UPDATE holds SET status = 'approved', step = x'00' WHERE hold_id = 'HOLD-pending'`, "answered once"},
		{"delete a hold", `DELETE FROM holds WHERE hold_id = 'HOLD-answered'`, "never deleted"},
		{"release again", `UPDATE kill_switches SET released_by = 'mallory' WHERE kill_id = '` + released.ID + `'`, "released once"},
		{"un-release", `UPDATE kill_switches SET released_at = NULL WHERE kill_id = '` + released.ID + `'`, "released once"},
		{"rewrite who pulled it", `UPDATE kill_switches SET pulled_by = 'someone' WHERE released_at IS NULL`, "released once"},
		{"delete a kill switch", `DELETE FROM kill_switches WHERE released_at IS NULL`, "never deleted"},
		{"second active switch on a scope", `INSERT INTO kill_switches (tenant_id, kill_id, scope, target, pulled_by, reason, pulled_at) VALUES ('acme', 'KILL-x', 'tenant', 'acme', 'a', 'b', 1)`, "UNIQUE constraint failed"},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			_, err := db.Exec(tc.sql)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// Answering a pending hold is the one change a hold may take.
	if _, err := db.Exec(`UPDATE holds SET status = 'denied', answered_by = 'bob', answer_reason = 'no', answered_at = 1 WHERE hold_id = 'HOLD-pending'`); err != nil {
		t.Errorf("answering a pending hold with raw SQL: %v", err)
	}
}
