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

It signs only a run that verifies (stopline verify RUN_ID), and whose stored
checkpoints signed by this key still verify: a rewritten chain is not signed
again.

If the run was already checkpointed at its current size with this key, the
stored checkpoint is written again (only if its signature verifies with this
very key and it states the run's current size and head). If the store holds,
for that size, a note under the key's name that this key did not sign, a new
checkpoint signed with this key is written all the same, but it cannot be
stored: the command says so and exits 1.

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
			signer, verifier, err := readCheckpointKey(key)
			if err != nil {
				return err
			}
			return withStore(ctx, e, true, func(st governance.Store) error {
				run, err := findRun(ctx, st, tenant, args[0])
				if err != nil {
					return err
				}
				// Sign only what verifies: the run, and every checkpoint this
				// very key signed of it before.
				if err := earlierCheckpoints(ctx, st, verifier, run.TenantID, run.RunID); err != nil {
					return fmt.Errorf("not signing: %w", err)
				}
				cp, err := governance.SignCheckpoint(ctx, st, signer, run.TenantID, run.RunID, time.Now())
				var notStored error
				if errors.Is(err, governance.ErrChainConflict) {
					cp, notStored = storedOrUnstored(ctx, st, verifier, cp, err)
				} else if err != nil {
					return fmt.Errorf("not signing: %w", err)
				}
				if err := writeCheckpoint(e, cp, out); err != nil {
					return err
				}
				if notStored != nil {
					fmt.Fprintf(e.stderr, "stopline checkpoint: %s\n", oneLine(notStored.Error()))
					return errSilent
				}
				return nil
			})
		},
	}
}

// writeCheckpoint writes the note to out (or stdout) and says what it is.
func writeCheckpoint(e *env, cp governance.Checkpoint, out string) error {
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
}

// storedOrUnstored is called when SignCheckpoint signed cp but found
// another note stored for its size under the key's name (conflict). It
// returns the stored checkpoint if one verifies with this very key and
// states the same size and head: the one this key made before. Otherwise
// the note stored under the key's name was signed by another key (two
// keys may share a name; a writer of the database may store anything): it
// returns cp, signed with this key but not stored, and an error saying so.
func storedOrUnstored(ctx context.Context, st governance.Store, verifier note.Verifier, cp governance.Checkpoint, conflict error) (governance.Checkpoint, error) {
	stored, err := governance.StoredCheckpoint(ctx, st, verifier, cp.TenantID, cp.RunID, cp.Size, cp.Head)
	if err == nil {
		return stored, nil
	}
	if !errors.Is(err, governance.ErrNotFound) {
		return cp, errors.Join(conflict, err)
	}
	return cp, fmt.Errorf("run %s: the checkpoint was signed but NOT stored: the store already holds, for size %d and key name %s, a note that key %s did not sign (another key with the same name, or a note written into the database): %w",
		cp.RunID, cp.Size, verifier.Name(), verifier.Name(), conflict)
}

// earlierCheckpoints verifies, against the run's records, every stored
// checkpoint of the run that this key signed (notes under its name that
// it did not sign are not its own, and are left to verify).
func earlierCheckpoints(ctx context.Context, st governance.Store, verifier note.Verifier, tenantID, runID string) error {
	cps, err := st.Checkpoints(ctx, tenantID, runID)
	if err != nil {
		return err
	}
	vs := note.VerifierList(verifier)
	for _, row := range cps {
		if _, err := governance.OpenCheckpoint([]byte(row.Note), vs); err != nil {
			continue // not signed by this key
		}
		if _, err := governance.VerifyRunCheckpoint(ctx, st, tenantID, runID, []byte(row.Note), vs); err != nil {
			return fmt.Errorf("an earlier checkpoint of this key: %w", err)
		}
	}
	return nil
}

func readCheckpointSigner(path string) (note.Signer, error) {
	s, _, err := readCheckpointKey(path)
	return s, err
}

// readCheckpointKey reads a checkpoint signer key and returns the signer
// and the verifier of the same key.
func readCheckpointKey(path string) (note.Signer, note.Verifier, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("--key: %w", err)
	}
	skey := strings.TrimSpace(string(data))
	s, err := note.NewSigner(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("--key %s: not a checkpoint signer key (make one with stopline keygen --checkpoint NAME): %w", path, err)
	}
	vkey, err := governance.CheckpointVerifierKey(skey)
	if err != nil {
		return nil, nil, fmt.Errorf("--key %s: %w", path, err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		return nil, nil, fmt.Errorf("--key %s: %w", path, err)
	}
	return s, v, nil
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
