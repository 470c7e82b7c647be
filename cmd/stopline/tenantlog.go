package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/tenantlog"
)

func logHeadCmd() *command {
	var key, out, tenant string
	return &command{
		name:     "log head",
		section:  "Evidence and integrity",
		synopsis: "--key FILE [-o FILE] [--tenant T] [--json]",
		summary:  "sign the tree head of a tenant's transparency log",
		desc: `Signs the current tree head of a tenant's transparency log (how many leaves,
the Merkle tree hash) with a key held outside the database (from stopline
keygen --checkpoint), and writes the signed note to -o FILE, or to stdout.
Every run's end and every checkpoint is a leaf of its tenant's log, appended
in the transaction that stores it. Keep the note outside the database:
stopline verify --log-head FILE --log-key PUB later proves that every run the
head covers is still in the store, unchanged, and that the log only grew
since; a run deleted with its checkpoints, or a log rewritten without it,
fails.

--tenant is needed when the store holds several tenants.

--json prints {"tenant_id","size","root_hash","at","key_name","note"}.`,
		examples: []string{
			"stopline log head --key checkpoint.key --tenant acme -o acme.loghead",
		},
		store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&key, "key", "", "signer key `FILE` (from stopline keygen --checkpoint; required)")
			fs.StringVar(&out, "o", "", "write the signed note to `FILE`; default stdout")
			fs.StringVar(&tenant, "tenant", "", "the tenant (`T`); needed when the store holds several")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if key == "" {
				return usagef("--key FILE is required")
			}
			signer, _, err := readCheckpointKey(key)
			if err != nil {
				return err
			}
			return withStore(ctx, e, true, func(st governance.Store) error {
				if tenant == "" {
					ts, err := st.Tenants(ctx)
					if err != nil {
						return err
					}
					if len(ts) != 1 {
						return usagef("--tenant T is required: the store holds %d tenants", len(ts))
					}
					tenant = ts[0]
				}
				h, err := tenantlog.SignHead(ctx, st, signer, tenant, time.Now())
				if err != nil {
					return err
				}
				if out != "" {
					if err := os.WriteFile(out, []byte(h.Note), 0o644); err != nil {
						return err
					}
				}
				switch {
				case e.jsonOut:
					return writeJSON(e.stdout, h)
				case out == "":
					_, err := fmt.Fprint(e.stdout, h.Note)
					return err
				}
				t := newTable(e.stdout)
				t.row("Tree head:", fmt.Sprintf("tenant %s, %d leaves, root %s", h.TenantID, h.Size, h.Root))
				t.row("Signed by:", h.KeyName+" at "+fmtTime(h.At))
				t.row("Wrote:", out)
				return t.flush()
			})
		},
	}
}

// logVerifyResult is what `stopline verify --log-head --json` prints.
type logVerifyResult struct {
	OK          bool               `json:"ok"`
	TenantID    string             `json:"tenant_id"`
	HeadSize    int64              `json:"head_size"`
	HeadRoot    string             `json:"head_root_hash"`
	Runs        int                `json:"runs"`
	CurrentSize int64              `json:"current_size"`
	CurrentRoot string             `json:"current_root_hash"`
	Failures    []logVerifyFailure `json:"failures"`
}

// logVerifyFailure is one failure: a leaf (and its run) when one is
// named, else the log as a whole.
type logVerifyFailure struct {
	Leaf  *int64 `json:"leaf"`
	RunID string `json:"run_id,omitempty"`
	Error string `json:"error"`
}

// verifyLogHead is stopline verify --log-head: tenantlog.Verify.
func verifyLogHead(ctx context.Context, e *env, st governance.Store, headFile, keyFile string) error {
	msg, err := os.ReadFile(headFile)
	if err != nil {
		return fmt.Errorf("--log-head: %w", err)
	}
	verifiers, err := readLogVerifier(keyFile)
	if err != nil {
		return err
	}
	rep, err := tenantlog.Verify(ctx, st, msg, verifiers)
	if errors.Is(err, tenantlog.ErrUnsupported) {
		return err
	}
	res := logVerifyResult{OK: err == nil, TenantID: rep.Head.TenantID, HeadSize: rep.Head.Size, HeadRoot: rep.Head.Root,
		Runs: rep.Runs, CurrentSize: rep.Current.Size, CurrentRoot: rep.Current.Root, Failures: []logVerifyFailure{}}
	if err != nil {
		for _, f := range flatten(err) {
			lf := logVerifyFailure{Error: f.Error()}
			var le *tenantlog.LeafError
			if errors.As(f, &le) {
				lf.Leaf, lf.RunID = &le.Leaf.Index, le.Leaf.RunID
			}
			res.Failures = append(res.Failures, lf)
		}
	}
	if e.jsonOut {
		if err := writeJSON(e.stdout, res); err != nil {
			return err
		}
	} else if res.OK {
		fmt.Fprintf(e.stdout, "tenant %s: tree head of %d leaves verified (%s present and unchanged); the log now holds %d leaves and extends it\n",
			res.TenantID, res.HeadSize, plural(res.Runs, "run"), res.CurrentSize)
	}
	if res.OK {
		return nil
	}
	for _, f := range res.Failures {
		fmt.Fprintf(e.stderr, "stopline verify: %s\n", oneLine(f.Error))
	}
	return errSilent
}

// flatten lists the failures of a *tenantlog.VerifyError (err itself
// otherwise).
func flatten(err error) []error {
	var ve *tenantlog.VerifyError
	if errors.As(err, &ve) {
		return ve.Failures
	}
	return []error{err}
}

func readLogVerifier(path string) (note.Verifiers, error) {
	vs, err := readCheckpointVerifier(path)
	if err != nil {
		return nil, fmt.Errorf("--log-key: %w", err)
	}
	return vs, nil
}
