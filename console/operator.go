package console

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/url"
	"strings"

	"github.com/stopline/stopline/access"
	"github.com/stopline/stopline/governance"
)

// The approvals queue and the kill switch: the Extensions the console
// adds by itself when its store keeps holds (governance.HoldStore) and
// kill switches (governance.KillStore).

// Approvals returns the approvals queue over store: the tenant's holds
// waiting for an answer, with approve and deny forms for operators, and
// the latest answered; each hold is a marker on its run's timeline.
func Approvals(store governance.Store) Extension { return &approvals{store: store} }

type approvals struct{ store governance.Store }

func (a *approvals) Section() Section {
	return Section{Path: "approvals", Title: "Approvals", View: access.Read, Act: access.Operate}
}

var approvalsPage = template.Must(template.New("approvals").Funcs(funcs).Parse(`
<table class="list" id="holds">
<thead><tr><th>Hold</th><th>Run</th><th>Step</th><th>Why</th><th>Requested</th><th>Deadline</th><th>Status</th><th></th></tr></thead>
<tbody>
{{range .Holds}}<tr class="hold hold-{{.Status}}" id="hold-{{.ID}}">
  <td><code>{{.ID}}</code></td>
  <td><a href="{{$.Base}}runs/{{.RunID}}">{{.RunID}}</a></td>
  <td>{{.StepIndex}} {{.StepType}} {{.Tool}}{{if .CostCents}} ({{num .CostCents}} cents){{end}}</td>
  <td><code>{{.PolicyID}}</code> {{.Message}}</td>
  <td>{{time .RequestedAt}}</td><td>{{time .Deadline}}</td>
  <td><span class="status status-{{.Status}}">{{.Status}}</span>{{if .AnsweredBy}} by {{.AnsweredBy}}{{if .AnswerReason}}: {{.AnswerReason}}{{end}}{{end}}</td>
  <td>{{if and $.Operate (eq (printf "%s" .Status) "pending")}}
    <form method="post" action="{{$.Approve}}">{{$.CSRF}}<input type="hidden" name="hold" value="{{.ID}}">
      <input name="reason" required maxlength="4096" placeholder="why" aria-label="reason">
      <button class="approve" id="approve-{{.ID}}">Approve</button></form>
    <form method="post" action="{{$.Deny}}">{{$.CSRF}}<input type="hidden" name="hold" value="{{.ID}}">
      <input name="reason" required maxlength="4096" placeholder="why" aria-label="reason">
      <button class="deny" id="deny-{{.ID}}">Deny</button></form>
  {{end}}</td>
</tr>{{else}}<tr><td colspan="8" class="empty">No holds.</td></tr>{{end}}
</tbody></table>`))

func (a *approvals) Page(ctx context.Context, v Viewer, q url.Values) (template.HTML, error) {
	hs, ok := a.store.(governance.HoldStore)
	if !ok {
		return "", governance.ErrNoHoldStore
	}
	pending, err := hs.Holds(ctx, governance.HoldFilter{TenantID: v.TenantID, Status: governance.HoldPending, Limit: maxListed})
	if err != nil {
		return "", err
	}
	all, err := hs.Holds(ctx, governance.HoldFilter{TenantID: v.TenantID})
	if err != nil {
		return "", err
	}
	holds := pending
	// The latest answered ones after the queue, newest first.
	for i := len(all) - 1; i >= 0 && len(holds) < len(pending)+50; i-- {
		if all[i].Status != governance.HoldPending {
			holds = append(holds, all[i])
		}
	}
	var b strings.Builder
	err = approvalsPage.Execute(&b, map[string]any{
		"Holds": holds, "Base": v.base, "CSRF": v.CSRFField, "Operate": v.Allows(access.Operate),
		"Approve": v.ActionURL("approvals", "approve"), "Deny": v.ActionURL("approvals", "deny"),
	})
	return template.HTML(b.String()), err
}

func (a *approvals) Act(ctx context.Context, v Viewer, action string, form url.Values) (string, error) {
	id, reason := form.Get("hold"), strings.TrimSpace(form.Get("reason"))
	if reason == "" || len(reason) > 4096 {
		return "", badInput("a reason (up to 4096 bytes) is required")
	}
	var (
		h   governance.Hold
		err error
	)
	switch action {
	case "approve":
		h, err = governance.Approve(ctx, a.store, v.TenantID, id, v.Actor, reason)
	case "deny":
		h, err = governance.Deny(ctx, a.store, v.TenantID, id, v.Actor, reason)
	default:
		return "", fmt.Errorf("approvals action %q: %w", action, governance.ErrNotFound)
	}
	if errors.Is(err, governance.ErrHoldAnswered) {
		return fmt.Sprintf("Hold %s was already answered.", id), nil
	}
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("Hold %s %s by %s.", h.ID, h.Status, v.Actor), nil
}

// Markers puts the run's pending hold, if any, on its timeline (an
// answered hold is in the step's record, which the timeline marks).
func (a *approvals) Markers(ctx context.Context, tenantID, runID string) ([]Marker, error) {
	hs, ok := a.store.(governance.HoldStore)
	if !ok {
		return nil, nil
	}
	list, err := hs.Holds(ctx, governance.HoldFilter{TenantID: tenantID, RunID: runID, Status: governance.HoldPending})
	if err != nil {
		return nil, err
	}
	out := make([]Marker, 0, len(list))
	for _, h := range list {
		out = append(out, Marker{At: h.RequestedAt, Kind: "hold", Label: fmt.Sprintf("step %d held, waiting", h.StepIndex)})
	}
	return out, nil
}

// KillSwitches returns the kill switch over store: the tenant's pulled
// switches with release forms, and a form to pull one over a run, an
// agent or the whole tenant, for operators.
func KillSwitches(store governance.Store) Extension { return &kills{store: store} }

type kills struct{ store governance.Store }

func (k *kills) Section() Section {
	return Section{Path: "kill-switch", Title: "Kill switch", View: access.Read, Act: access.Operate}
}

var killsPage = template.Must(template.New("kills").Funcs(funcs).Parse(`
{{if .Operate}}<form method="post" action="{{.Pull}}" class="filters" id="pull-form">{{.CSRF}}
  <label>Stop <select name="scope" id="kill-scope"><option value="run">one run</option><option value="agent">every run of an agent</option><option value="tenant">the whole tenant</option></select></label>
  <label>Run id or agent <input name="target" id="kill-target" placeholder="RUN-… or agent label"></label>
  <label>Reason <input name="reason" id="kill-reason" required maxlength="4096"></label>
  <button id="pull">Pull the kill switch</button>
</form>{{end}}
<table class="list" id="kills">
<thead><tr><th>Scope</th><th>Target</th><th>Pulled</th><th>By</th><th>Reason</th><th></th></tr></thead>
<tbody>
{{range .Kills}}<tr class="kill">
  <td>{{.Scope}}</td><td><code>{{.Target}}</code></td><td>{{time .PulledAt}}</td><td>{{.By}}</td><td>{{.Reason}}</td>
  <td>{{if $.Operate}}<form method="post" action="{{$.Release}}">{{$.CSRF}}<input type="hidden" name="scope" value="{{.Scope}}"><input type="hidden" name="target" value="{{.Target}}"><button class="release">Release</button></form>{{end}}</td>
</tr>{{else}}<tr><td colspan="6" class="empty">No kill switch is pulled.</td></tr>{{end}}
</tbody></table>`))

func (k *kills) Page(ctx context.Context, v Viewer, q url.Values) (template.HTML, error) {
	list, err := governance.ActiveKills(ctx, k.store, v.TenantID)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	err = killsPage.Execute(&b, map[string]any{
		"Kills": list, "CSRF": v.CSRFField, "Operate": v.Allows(access.Operate),
		"Pull": v.ActionURL("kill-switch", "pull"), "Release": v.ActionURL("kill-switch", "release"),
	})
	return template.HTML(b.String()), err
}

func (k *kills) Act(ctx context.Context, v Viewer, action string, form url.Values) (string, error) {
	scope := governance.KillScope(form.Get("scope"))
	if !scope.Valid() {
		return "", badInput("scope %q: want run, agent or tenant", scope)
	}
	target := strings.TrimSpace(form.Get("target"))
	if scope == governance.KillTenant {
		target = v.TenantID // an operator stops only their own tenant
	}
	if target == "" {
		return "", badInput("name the run or the agent to stop")
	}
	switch action {
	case "pull":
		reason := strings.TrimSpace(form.Get("reason"))
		if reason == "" || len(reason) > 4096 {
			return "", badInput("a reason (up to 4096 bytes) is required")
		}
		ks, err := governance.Kill(ctx, k.store, v.TenantID, scope, target, v.Actor, reason)
		if errors.Is(err, governance.ErrKillActive) {
			return fmt.Sprintf("A kill switch is already pulled over %s %s.", scope, target), nil
		}
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("Kill switch pulled over %s %s by %s.", ks.Scope, ks.Target, v.Actor), nil
	case "release":
		ks, err := governance.Release(ctx, k.store, v.TenantID, scope, target, v.Actor)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("Kill switch over %s %s released by %s.", ks.Scope, ks.Target, v.Actor), nil
	}
	return "", fmt.Errorf("kill-switch action %q: %w", action, governance.ErrNotFound)
}
