package main

import (
	"context"
	"flag"
	"fmt"
	"sort"

	"github.com/stopline/stopline/governance"
)

// The commands of the people in the loop: approval holds and kill
// switches (governance.PendingHolds, Approve, Deny, Kill, Release,
// ActiveKills).

func approvalsCmd() *command {
	var tenant string
	return &command{
		name:     "approvals",
		section:  "Operators",
		synopsis: "[--tenant T] [--json]",
		summary:  "list the steps waiting for a person's approval, oldest first",
		desc: `Lists the pending approval holds: steps a requires_approval policy (or a Go
hook) held, waiting until someone approves or denies them (stopline approve,
stopline deny) or their deadline passes (then the step is blocked, timeout).

--json prints an array of holds: {"hold_id","tenant_id","run_id","step_index",
"step_type","tool","cost_cents","policy_id","source","message","requested_at",
"deadline","status"}.`,
		examples: []string{"stopline approvals", "stopline approvals --tenant acme --json"},
		maxArgs:  0, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "only this tenant (`T`); default: every tenant")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			return withStore(ctx, e, true, func(st governance.Store) error {
				tenants, err := tenantsFor(ctx, st, tenant)
				if err != nil {
					return err
				}
				holds := []governance.Hold{}
				for _, t := range tenants {
					hs, err := governance.PendingHolds(ctx, st, t)
					if err != nil {
						return err
					}
					holds = append(holds, hs...)
				}
				sort.SliceStable(holds, func(i, j int) bool { return holds[i].RequestedAt.Before(holds[j].RequestedAt) })
				if e.jsonOut {
					return writeJSON(e.stdout, holds)
				}
				if len(holds) == 0 {
					fmt.Fprintf(e.stdout, "No step is waiting for approval%s.\n", ofTenant(tenant))
					return nil
				}
				t := newTable(e.stdout)
				t.row("HOLD", "TENANT", "RUN", "STEP", "TYPE", "TOOL", "COST", "POLICY", "REQUESTED", "DEADLINE", "WHY")
				for _, h := range holds {
					t.row(h.ID, h.TenantID, h.RunID, fmt.Sprint(h.StepIndex), string(h.StepType), orDash(h.Tool), fmtNum(h.CostCents),
						h.PolicyID, fmtTime(h.RequestedAt), fmtTime(h.Deadline), orDash(h.Message))
				}
				return t.flush()
			})
		},
	}
}

func answerCmd(approve bool) *command {
	var tenant, by, reason string
	name, verb, effect := "deny", "deny", "the step is blocked and the run stops (policy_block)"
	if approve {
		name, verb, effect = "approve", "approve", "the step passes and the run goes on"
	}
	return &command{
		name:     name,
		section:  "Operators",
		synopsis: "HOLD_ID --by NAME --reason TEXT [--tenant T] [--json]",
		summary:  verb + " a step held for approval",
		desc: fmt.Sprintf(`Answers a pending approval hold: %s. The answer (who,
when, why) is recorded in the held step's trace record. A hold is answered
once; a hold whose deadline has passed can no longer be answered.

--json prints the hold as answered.`, effect),
		examples: []string{fmt.Sprintf("stopline %s HOLD-3f2a9c0d1e4b5a67 --by alice@acme --reason \"ticket 4411\"", name)},
		minArgs:  1, maxArgs: 1, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "the hold's tenant (`T`); needed only if the id exists under several")
			fs.StringVar(&by, "by", "", "who answers (`NAME`), required")
			fs.StringVar(&reason, "reason", "", "why (`TEXT`), required")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if by == "" || reason == "" {
				return usagef("--by and --reason are required")
			}
			return withStore(ctx, e, true, func(st governance.Store) error {
				t, err := findHoldTenant(ctx, st, tenant, args[0])
				if err != nil {
					return err
				}
				var h governance.Hold
				if approve {
					h, err = governance.Approve(ctx, st, t, args[0], by, reason)
				} else {
					h, err = governance.Deny(ctx, st, t, args[0], by, reason)
				}
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, h)
				}
				fmt.Fprintf(e.stdout, "Hold %s (run %s, step %d) %s by %s.\n", h.ID, h.RunID, h.StepIndex, h.Status, h.AnsweredBy)
				return nil
			})
		},
	}
}

// findHoldTenant returns the tenant of a hold id, searching every tenant
// without --tenant.
func findHoldTenant(ctx context.Context, st governance.Store, tenant, id string) (string, error) {
	hs, ok := st.(governance.HoldStore)
	if !ok {
		return "", governance.ErrNoHoldStore
	}
	var found []string
	err := eachTenant(ctx, st, tenant, func(t string) error {
		_, err := hs.Hold(ctx, t, id)
		if err == nil {
			found = append(found, t)
		}
		return err
	})
	if err != nil {
		return "", err
	}
	switch len(found) {
	case 0:
		return "", fmt.Errorf("hold %s%s: %w", id, ofTenant(tenant), governance.ErrNotFound)
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("hold %s exists under tenants %s: choose one with --tenant", id, tenantList(len(found), func(i int) string { return found[i] }))
}

// killTarget resolves the tenant of a kill switch's target: a run is
// looked up; an agent needs --tenant; a tenant is itself.
func killTarget(ctx context.Context, st governance.Store, scope governance.KillScope, id, tenant string) (string, error) {
	switch scope {
	case governance.KillRun:
		if tenant != "" {
			return tenant, nil
		}
		r, err := findRun(ctx, st, tenant, id)
		return r.TenantID, err
	case governance.KillAgent:
		if tenant == "" {
			return "", usagef("an agent is named within a tenant: give --tenant")
		}
		return tenant, nil
	case governance.KillTenant:
		if tenant != "" && tenant != id {
			return "", usagef("--tenant %q does not match the tenant %q to stop", tenant, id)
		}
		return id, nil
	}
	return "", usagef("scope %q: want run, agent or tenant", scope)
}

func killCmd(release bool) *command {
	var tenant, by, reason string
	c := &command{
		name:     "kill",
		section:  "Operators",
		synopsis: "run|agent|tenant ID --by NAME --reason TEXT [--tenant T] [--json]",
		summary:  "stop a run, every run of an agent, or a whole tenant, on every replica",
		desc: `Pulls a kill switch. The next step of every run in its scope — one run, every
run whose "agent" label is ID, every run of the tenant — is blocked with reason
user_abort on every process whose runner watches the store
(governance.WithKillSwitch); the run ends cancelled, with an incident naming
who pulled the switch and why. New runs in the scope are refused until the
switch is released (stopline release). An agent is named within a tenant:
give --tenant.

--json prints the switch as stored.`,
		examples: []string{
			"stopline kill agent mailer --tenant acme --by alice@acme --reason \"sending spam\"",
			"stopline kill run RUN-3f2a9c0d1e4b5a67 --by alice@acme --reason looping",
			"stopline kill tenant acme --by oncall --reason \"incident 42\"",
		},
		minArgs: 2, maxArgs: 2, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "the tenant (`T`); required for an agent")
			fs.StringVar(&by, "by", "", "who pulls it (`NAME`), required")
			fs.StringVar(&reason, "reason", "", "why (`TEXT`), required")
		},
	}
	if release {
		c.name, c.synopsis = "release", "run|agent|tenant ID --by NAME [--tenant T] [--json]"
		c.summary = "release a kill switch: new runs in its scope start again"
		c.desc = `Releases the active kill switch over a run, an agent or a tenant. Runs it
stopped stay stopped; new runs in the scope start again.

--json prints the switch as released.`
		c.examples = []string{"stopline release agent mailer --tenant acme --by alice@acme"}
		c.flags = func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "the tenant (`T`); required for an agent")
			fs.StringVar(&by, "by", "", "who releases it (`NAME`), required")
		}
	}
	c.run = func(ctx context.Context, e *env, args []string) error {
		scope := governance.KillScope(args[0])
		if !scope.Valid() {
			return usagef("scope %q: want run, agent or tenant", args[0])
		}
		if by == "" || (!release && reason == "") {
			if release {
				return usagef("--by is required")
			}
			return usagef("--by and --reason are required")
		}
		return withStore(ctx, e, true, func(st governance.Store) error {
			t, err := killTarget(ctx, st, scope, args[1], tenant)
			if err != nil {
				return err
			}
			var k governance.KillSwitch
			if release {
				k, err = governance.Release(ctx, st, t, scope, args[1], by)
			} else {
				k, err = governance.Kill(ctx, st, t, scope, args[1], by, reason)
			}
			if err != nil {
				return err
			}
			if e.jsonOut {
				return writeJSON(e.stdout, k)
			}
			if release {
				fmt.Fprintf(e.stdout, "Kill switch %s on %s %q of tenant %s released by %s.\n", k.ID, k.Scope, k.Target, k.TenantID, k.ReleasedBy)
			} else {
				fmt.Fprintf(e.stdout, "Kill switch %s pulled on %s %q of tenant %s by %s.\n", k.ID, k.Scope, k.Target, k.TenantID, k.By)
			}
			return nil
		})
	}
	return c
}

func killsCmd() *command {
	var tenant string
	return &command{
		name:     "kills",
		section:  "Operators",
		synopsis: "[--tenant T] [--json]",
		summary:  "list the active kill switches",
		desc: `Lists the kill switches pulled and not released, oldest first.

--json prints an array of switches: {"kill_id","tenant_id","scope","target",
"pulled_by","reason","pulled_at"}.`,
		examples: []string{"stopline kills --tenant acme"},
		maxArgs:  0, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "only this tenant (`T`); default: every tenant")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			return withStore(ctx, e, true, func(st governance.Store) error {
				ks, ok := st.(governance.KillStore)
				if !ok {
					return governance.ErrNoKillStore
				}
				all, err := ks.ActiveKills(ctx, tenant)
				if err != nil {
					return err
				}
				if all == nil {
					all = []governance.KillSwitch{}
				}
				if e.jsonOut {
					return writeJSON(e.stdout, all)
				}
				if len(all) == 0 {
					fmt.Fprintf(e.stdout, "No kill switch is pulled%s.\n", ofTenant(tenant))
					return nil
				}
				t := newTable(e.stdout)
				t.row("KILL", "TENANT", "SCOPE", "TARGET", "BY", "PULLED", "REASON")
				for _, k := range all {
					t.row(k.ID, k.TenantID, string(k.Scope), k.Target, k.By, fmtTime(k.PulledAt), k.Reason)
				}
				return t.flush()
			})
		},
	}
}
