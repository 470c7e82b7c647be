package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
)

func checkpointCmd() *command {
	var key, out, tenant string
	return &command{
		name:     "checkpoint",
		section:  "Evidence and integrity",
		synopsis: "RUN_ID --key FILE [-o FILE] [--tenant T] [--json]",
		summary:  "sign a checkpoint of a run's chain (size and head hash) and store it",
		desc: `Signs a checkpoint of a run's hash chain as it is stored now (how many records,
the hash of the last) with a checkpoint key held outside the database (from
stopline keygen --checkpoint), stores it with the run, and writes the signed
note to -o FILE, or to stdout. Keep a copy outside the database: even a writer
who rewrites the records and recomputes every hash cannot make them match a
checkpoint again (stopline verify --checkpoint FILE --checkpoint-key PUB).

If the run was already checkpointed at its current size with this key, the
stored checkpoint is written again.

--json prints {"tenant_id","run_id","size","head_hash","at","key_name","note"}.`,
		examples: []string{
			"stopline checkpoint RUN-3f2a9c0d1e4b5a67 --key checkpoint.key -o RUN-3f2a9c0d1e4b5a67.checkpoint",
		},
		minArgs: 1, maxArgs: 1, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&key, "key", "", "checkpoint signer key `FILE` (from stopline keygen --checkpoint; required)")
			fs.StringVar(&out, "o", "", "write the signed note to `FILE`; default stdout")
			fs.StringVar(&tenant, "tenant", "", "the run's tenant (`T`); needed only if the id exists under several")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if key == "" {
				return usagef("--key FILE is required")
			}
			signer, err := readCheckpointSigner(key)
			if err != nil {
				return err
			}
			return withStore(ctx, e, true, func(st governance.Store) error {
				run, err := findRun(ctx, st, tenant, args[0])
				if err != nil {
					return err
				}
				cp, err := governance.SignCheckpoint(ctx, st, signer, run.TenantID, run.RunID, time.Now())
				if errors.Is(err, governance.ErrChainConflict) {
					cp, err = storedCheckpoint(ctx, st, run, signer.Name(), err)
				}
				if err != nil {
					return err
				}
				if out != "" {
					if err := os.WriteFile(out, []byte(cp.Note), 0o644); err != nil {
						return err
					}
				}
				switch {
				case e.jsonOut:
					return writeJSON(e.stdout, cp)
				case out == "":
					_, err := fmt.Fprint(e.stdout, cp.Note)
					return err
				}
				t := newTable(e.stdout)
				t.row("Checkpoint:", fmt.Sprintf("run %s, %d records, head %s", cp.RunID, cp.Size, cp.Head))
				t.row("Signed by:", cp.KeyName+" at "+fmtTime(cp.At))
				t.row("Wrote:", out)
				return t.flush()
			})
		},
	}
}

// storedCheckpoint returns the checkpoint already stored for the run's
// current size with the key, after SignCheckpoint found one (err).
func storedCheckpoint(ctx context.Context, st governance.Store, run governance.RunRecord, keyName string, err error) (governance.Checkpoint, error) {
	cps, lerr := st.Checkpoints(ctx, run.TenantID, run.RunID)
	if lerr != nil {
		return governance.Checkpoint{}, errors.Join(err, lerr)
	}
	for _, cp := range cps {
		if cp.Size == run.ChainLength && cp.KeyName == keyName {
			return cp, nil
		}
	}
	return governance.Checkpoint{}, err
}

func readCheckpointSigner(path string) (note.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--key: %w", err)
	}
	s, err := note.NewSigner(strings.TrimSpace(string(data)))
	if err != nil {
		return nil, fmt.Errorf("--key %s: not a checkpoint signer key (make one with stopline keygen --checkpoint NAME): %w", path, err)
	}
	return s, nil
}

func readCheckpointVerifier(path string) (note.Verifiers, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--checkpoint-key: %w", err)
	}
	var vs []note.Verifier
	for _, line := range strings.Split(string(data), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		v, err := note.NewVerifier(line)
		if err != nil {
			return nil, fmt.Errorf("--checkpoint-key %s: not a checkpoint verifier key (the .pub of stopline keygen --checkpoint): %w", path, err)
		}
		vs = append(vs, v)
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("--checkpoint-key %s: no key in the file", path)
	}
	return note.VerifierList(vs...), nil
}
