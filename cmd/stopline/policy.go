package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/snapshot"
)

// loadPolicies reads and validates a policy file ("-" is stdin): the
// file's structure and every policy's kind and parameters, with the kinds
// the command runs (commandKinds). Errors name the file, the policy and
// the field.
func loadPolicies(e *env, path string) (*snapshot.PolicySnapshot, error) {
	var (
		data []byte
		err  error
		name = path
	)
	if path == "-" {
		name = "stdin"
		data, err = io.ReadAll(io.LimitReader(e.stdin, snapshot.MaxFileSize+1))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, err
	}
	return snapshot.Parse(name, data, time.Now(), commandKinds)
}

type policyCheckResult struct {
	SnapshotID  string `json:"snapshot_id"`
	ContentHash string `json:"content_hash"`
	TenantID    string `json:"tenant_id"`
	PolicyCount int    `json:"policy_count"`
}

func policyCheckCmd() *command {
	return &command{
		name:     "policy check",
		section:  "Policies",
		synopsis: "FILE [--json]",
		summary:  "validate a policy file; print its snapshot id and content hash",
		desc: `Validates a policy file (FILE, or - for stdin): its JSON, every threshold,
and every policy's kind and parameters, exactly as a run would compile them.
Prints the snapshot id and content hash the policy set will have: the same
policies and thresholds always give the same id, whatever the key order.
Nothing is stored. An invalid file exits 1 with an error naming the policy and
the field.

--json prints {"snapshot_id","content_hash","tenant_id","policy_count"}.`,
		examples: []string{
			"stopline policy check policies.json",
			"stopline policy check policies.json --json | jq -r .snapshot_id",
		},
		minArgs: 1, maxArgs: 1, json: true,
		run: func(ctx context.Context, e *env, args []string) error {
			snap, err := loadPolicies(e, args[0])
			if err != nil {
				return err
			}
			res := policyCheckResult{SnapshotID: snap.ID(), ContentHash: snap.ContentHash(), TenantID: snap.TenantID(), PolicyCount: snap.PolicyCount()}
			if e.jsonOut {
				return writeJSON(e.stdout, res)
			}
			name := args[0]
			if name == "-" {
				name = "stdin"
			}
			fmt.Fprintf(e.stdout, "%s: valid\n", name)
			t := newTable(e.stdout)
			t.row("Snapshot:", res.SnapshotID)
			t.row("Content hash:", res.ContentHash)
			t.row("Tenant:", res.TenantID)
			t.row("Policies:", fmt.Sprint(res.PolicyCount))
			return t.flush()
		},
	}
}

func policyPublishCmd() *command {
	var by, note string
	return &command{
		name:     "policy publish",
		section:  "Policies",
		synopsis: "FILE [--by NAME] [--note TEXT] [--json]",
		summary:  "make a policy file the tenant's active policy version",
		desc: `Validates the policy file and publishes it as the active policy set of the
file's tenant: a new version (1, 2, ...) with its snapshot id, who published it
and why. Runs started without an explicit policy file (stopline run without
--policies, or an application's runner) take the active version at their
start; runs already started keep their own snapshot. Versions are append-only:
the history is change-management evidence.

--json prints the stored version: {"tenant_id","version","snapshot_id",
"content_hash","published_by","published_at","note"}.`,
		examples: []string{
			`stopline policy publish policies.json --by alice --note "raise token budget to 20k"`,
		},
		minArgs: 1, maxArgs: 1, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&by, "by", "", "who publishes, recorded with the version (default $USER)")
			fs.StringVar(&note, "note", "", "why, recorded with the version")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			snap, err := loadPolicies(e, args[0])
			if err != nil {
				return err
			}
			if by == "" {
				by = e.getenv("USER")
			}
			if by == "" {
				by = "unknown"
			}
			return withStore(ctx, e, false, func(st governance.Store) error {
				runner, err := governance.NewRunner(st, governance.WithKinds(commandKinds))
				if err != nil {
					return err
				}
				v, err := runner.Publish(ctx, snap, by, note)
				if err != nil {
					return err
				}
				if e.jsonOut {
					return writeJSON(e.stdout, v)
				}
				fmt.Fprintf(e.stdout, "Published policy version %d for tenant %s: snapshot %s (%s)\n",
					v.Version, v.TenantID, v.SnapshotID, countOf(snap.PolicyCount(), "policy", "policies"))
				return nil
			})
		},
	}
}

func policyHistoryCmd() *command {
	var tenant string
	return &command{
		name:     "policy history",
		section:  "Policies",
		synopsis: "[--tenant T] [--json]",
		summary:  "list the published policy versions, the active one marked",
		desc: `Lists the policy versions of a tenant (of every tenant without --tenant),
oldest first: version, snapshot id, when and by whom it was published, and
the note. The last version of each tenant is its active policy set.

--json prints an array of {"tenant_id","version","snapshot_id","content_hash",
"published_by","published_at","note"}.`,
		examples: []string{
			"stopline policy history --tenant acme",
			"stopline policy history --json",
		},
		maxArgs: 0, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "only this tenant (`T`); default: every tenant")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			return withStore(ctx, e, true, func(st governance.Store) error {
				tenants, err := tenantsFor(ctx, st, tenant)
				if err != nil {
					return err
				}
				versions := []governance.PolicyVersion{}
				for _, t := range tenants {
					vs, err := st.PolicyVersions(ctx, t)
					if err != nil {
						return err
					}
					versions = append(versions, vs...)
				}
				if e.jsonOut {
					return writeJSON(e.stdout, versions)
				}
				if len(versions) == 0 {
					fmt.Fprintf(e.stdout, "No policy versions%s.\n", ofTenant(tenant))
					return nil
				}
				t := newTable(e.stdout)
				t.row("TENANT", "VERSION", "SNAPSHOT", "PUBLISHED", "BY", "ACTIVE", "NOTE")
				for i, v := range versions {
					active := ""
					if i == len(versions)-1 || versions[i+1].TenantID != v.TenantID {
						active = "yes"
					}
					t.row(v.TenantID, fmt.Sprint(v.Version), v.SnapshotID, fmtTime(v.PublishedAt), v.PublishedBy, orDash(active), v.Note)
				}
				return t.flush()
			})
		},
	}
}
