package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/trace"
)

// verifyResult is what `stopline verify --json` prints.
type verifyResult struct {
	OK          bool            `json:"ok"`
	Tenants     int             `json:"tenants"`
	Runs        int             `json:"runs"`
	Records     int             `json:"records"`
	Checkpoints int             `json:"checkpoints"`
	Failures    []verifyFailure `json:"failures"`

	runID string // the run verified, when there is one
}

// verifyFailure is one run that failed verification, and its first bad
// record (seq -1: the run's row, not a record; null: not known).
type verifyFailure struct {
	TenantID string `json:"tenant_id,omitempty"`
	RunID    string `json:"run_id,omitempty"`
	Seq      *int   `json:"seq"`
	Error    string `json:"error"`
}

func verifyCmd() *command {
	var tenant, cpFile, cpKey, logHead, logKey string
	return &command{
		name:     "verify",
		section:  "Evidence and integrity",
		synopsis: "[RUN_ID] [--tenant T] [--checkpoint FILE] [--checkpoint-key FILE] [--log-head FILE --log-key FILE] [--json]",
		summary:  "recompute hash chains (one run, or every run) and check the stored facts against them",
		desc: `Recomputes the hash chain of one run (RUN_ID), or of every run of every tenant,
from the stored records, and checks that everything stored about each run
agrees with its chain: the snapshot's content hash, the run's head hash,
status, reason, stopped-at step, violating policy, size and totals, its one
incident (and no incident for a run that never stopped), each step's content,
and the columns the store keeps beside each record. Any changed, removed or
reordered record is found. Without RUN_ID, rows whose run's row is missing
(records, contents, checkpoints, incidents of a deleted run) are found too.

With --checkpoint-key PUB (the .pub of stopline keygen --checkpoint), the
checkpoints stored with each verified run are checked too: each must be signed
by that key, name that run and tenant, and cover records that are unchanged.
With --checkpoint FILE (a note written by stopline checkpoint) that
checkpoint's run is verified against it (with RUN_ID, the note must be of that
run): this catches even a writer who rewrote the records and recomputed every
hash.

With --log-head FILE (a tree head signed by stopline log head) and --log-key
PUB, the tenant's transparency log is verified against it instead: every run
and checkpoint the head covers must still be in the store, unchanged (the run
verifies and its final head, or its checkpoint, is the leaf's), the log's
first leaves must hash to the head's root, and the log now must extend it (a
consistency proof). A run deleted with its checkpoints, or a log rewritten
(forked) without it, fails, naming the leaf and the run. --json then prints
{"ok","tenant_id","head_size","head_root_hash","runs","current_size",
"current_root_hash","failures"}, each failure {"leaf","run_id","error"}.

Exit 0 when everything verifies; exit 1 when anything was altered, with one
line on stderr per failed run naming the run and its first bad record
("run RUN-…: record 3: …"). With no RUN_ID and stderr a terminal, progress is
shown on stderr.

--json prints {"ok","tenants","runs","records","checkpoints","failures"}, each
failure {"tenant_id","run_id","seq","error"} (seq -1 is the run's row, null
when no record is named).`,
		examples: []string{
			"stopline verify",
			"stopline verify RUN-3f2a9c0d1e4b5a67",
			"stopline verify --checkpoint RUN-3f2a9c0d1e4b5a67.checkpoint --checkpoint-key checkpoint.key.pub",
			"stopline verify --db /var/lib/stopline/stopline.db --json",
			"stopline verify --log-head acme.loghead --log-key checkpoint.key.pub",
		},
		maxArgs: 1, store: true, json: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&tenant, "tenant", "", "only this tenant's runs (`T`); with RUN_ID, the run's tenant")
			fs.StringVar(&cpFile, "checkpoint", "", "verify the run of this signed checkpoint note `FILE` against it (needs --checkpoint-key)")
			fs.StringVar(&cpKey, "checkpoint-key", "", "checkpoint verifier key `FILE`: also check the runs' stored checkpoints")
			fs.StringVar(&logHead, "log-head", "", "verify the tenant log against this signed tree head `FILE` (needs --log-key)")
			fs.StringVar(&logKey, "log-key", "", "verifier key `FILE` of the tree head (the .pub of stopline keygen --checkpoint)")
		},
		run: func(ctx context.Context, e *env, args []string) error {
			if logHead != "" || logKey != "" {
				switch {
				case logHead == "" || logKey == "":
					return usagef("--log-head FILE and --log-key FILE go together")
				case len(args) > 0 || cpFile != "" || cpKey != "" || tenant != "":
					return usagef("--log-head verifies a tenant's log (the head names the tenant): no RUN_ID, --tenant or --checkpoint")
				}
				return withStore(ctx, e, true, func(st governance.Store) error {
					return verifyLogHead(ctx, e, st, logHead, logKey)
				})
			}
			if cpFile != "" && cpKey == "" {
				return usagef("--checkpoint FILE needs --checkpoint-key FILE to check its signature")
			}
			var verifiers note.Verifiers
			if cpKey != "" {
				var err error
				if verifiers, err = readCheckpointVerifier(cpKey); err != nil {
					return err
				}
			}
			var cpNote []byte
			if cpFile != "" {
				var err error
				if cpNote, err = os.ReadFile(cpFile); err != nil {
					return fmt.Errorf("--checkpoint: %w", err)
				}
			}
			return withStore(ctx, e, true, func(st governance.Store) error {
				res, err := verify(ctx, e, st, args, tenant, cpNote, verifiers)
				if err != nil {
					return err
				}
				res.OK = len(res.Failures) == 0
				if e.jsonOut {
					if err := writeJSON(e.stdout, res); err != nil {
						return err
					}
				} else if res.OK {
					what := fmt.Sprintf("%s (%s) of %s verified", plural(res.Runs, "run"), plural(res.Records, "record"), plural(res.Tenants, "tenant"))
					if res.runID != "" {
						what = fmt.Sprintf("run %s: chain of %d records verified", res.runID, res.Records)
					}
					if verifiers != nil {
						what += ", " + plural(res.Checkpoints, "checkpoint")
					}
					fmt.Fprintln(e.stdout, what)
				}
				if res.OK {
					return nil
				}
				for _, f := range res.Failures {
					fmt.Fprintf(e.stderr, "stopline verify: %s\n", oneLine(f.Error))
				}
				if res.Runs > 1 {
					fmt.Fprintf(e.stderr, "stopline verify: %d of %d runs failed verification\n", len(res.Failures), res.Runs)
				}
				return errSilent
			})
		},
	}
}

// verify verifies what the arguments name. An error is returned only
// when the store could not be read; verification failures are in the
// result.
func verify(ctx context.Context, e *env, st governance.Store, args []string, tenant string, cpNote []byte, verifiers note.Verifiers) (verifyResult, error) {
	res := verifyResult{Failures: []verifyFailure{}}
	var runs []governance.RunRecord // the runs verified, for their stored checkpoints
	switch {
	case cpNote != nil:
		var (
			cp  governance.Checkpoint
			err error
		)
		if len(args) == 1 {
			// The note must be of this run: a note of another run proves
			// nothing about it.
			run, ferr := findRun(ctx, st, tenant, args[0])
			if ferr != nil {
				return res, ferr
			}
			cp, err = governance.VerifyRunCheckpoint(ctx, st, run.TenantID, run.RunID, cpNote, verifiers)
			cp.TenantID, cp.RunID = run.TenantID, run.RunID
		} else {
			cp, err = governance.VerifyCheckpoint(ctx, st, cpNote, verifiers)
			if err == nil && tenant != "" && cp.TenantID != tenant {
				err = &governance.CheckpointRunError{TenantID: tenant, RunID: cp.RunID, NoteTenantID: cp.TenantID, NoteRunID: cp.RunID, Size: cp.Size}
			}
		}
		if err != nil {
			res.Runs, res.Tenants = 1, 1
			res.Failures = append(res.Failures, failureOf(fmt.Errorf("checkpoint: %w", err), cp.TenantID, cp.RunID))
			return res, nil
		}
		res.Checkpoints = 1
		run, err := st.Run(ctx, cp.TenantID, cp.RunID)
		if err != nil {
			return res, err
		}
		runs = append(runs, run)
		res.verifyOne(ctx, st, run)
	case len(args) == 1:
		run, err := findRun(ctx, st, tenant, args[0])
		if err != nil {
			return res, err
		}
		runs = append(runs, run)
		res.verifyOne(ctx, st, run)
	case tenant != "":
		// One tenant's runs, and the rows of that tenant left without
		// their run's row.
		prog := newProgress(e, "runs verified:")
		rep, err := governance.VerifyTenant(ctx, st, tenant, prog.update)
		prog.done()
		if err != nil {
			return res, err
		}
		res.Tenants, res.Runs, res.Records = 1, rep.Runs, rep.Records
		for _, f := range rep.Failures {
			res.Failures = append(res.Failures, failureOf(f, "", ""))
		}
		if verifiers != nil {
			rs, err := st.Runs(ctx, governance.RunFilter{TenantID: tenant})
			if err != nil {
				return res, err
			}
			runs = rs
		}
	default:
		prog := newProgress(e, "runs verified:")
		rep, err := governance.VerifyStore(ctx, st, prog.update)
		prog.done()
		if err != nil {
			return res, err
		}
		res.Tenants, res.Runs, res.Records = rep.Tenants, rep.Runs, rep.Records
		for _, f := range rep.Failures {
			res.Failures = append(res.Failures, failureOf(f, "", ""))
		}
		if verifiers != nil {
			tenants, err := st.Tenants(ctx)
			if err != nil {
				return res, err
			}
			for _, t := range tenants {
				rs, err := st.Runs(ctx, governance.RunFilter{TenantID: t})
				if err != nil {
					return res, err
				}
				runs = append(runs, rs...)
			}
		}
	}
	if verifiers != nil && cpNote == nil {
		failed := map[string]bool{}
		for _, f := range res.Failures {
			failed[f.TenantID+"\x00"+f.RunID] = true
		}
		for _, run := range runs {
			if failed[run.TenantID+"\x00"+run.RunID] {
				continue // its chain already failed; one line per run
			}
			n, err := governance.VerifyRunCheckpoints(ctx, st, run.TenantID, run.RunID, verifiers)
			res.Checkpoints += n
			if err != nil {
				res.Failures = append(res.Failures, failureOf(fmt.Errorf("checkpoint: %w", err), run.TenantID, run.RunID))
			}
		}
	}
	return res, nil
}

// verifyOne verifies one run and adds it to the result.
func (res *verifyResult) verifyOne(ctx context.Context, st governance.Store, run governance.RunRecord) {
	n, err := governance.VerifyRun(ctx, st, run.TenantID, run.RunID)
	res.Tenants, res.runID = 1, run.RunID
	res.Runs++
	res.Records += n
	if err != nil {
		res.Failures = append(res.Failures, failureOf(err, run.TenantID, run.RunID))
	}
}

// failureOf describes a verification failure, naming the run and the
// first bad record. runID is the run verified, when known.
func failureOf(err error, tenantID, runID string) verifyFailure {
	f := verifyFailure{TenantID: tenantID, RunID: runID, Error: err.Error()}
	var (
		ce *trace.ChainError
		ie *governance.IntegrityError
		me *governance.CheckpointMismatchError
		re *governance.CheckpointRunError
		we *governance.CheckpointRowError
		oe *governance.OrphanError
	)
	switch {
	case errors.As(err, &ce):
		f.Seq = &ce.Seq
		if ce.RunID != "" {
			f.TenantID, f.RunID = ce.TenantID, ce.RunID
		}
	case errors.As(err, &oe):
		seq := -1 // the run's row is what is missing
		f.TenantID, f.RunID, f.Seq = oe.TenantID, oe.RunID, &seq
	case errors.As(err, &ie):
		f.TenantID, f.RunID, f.Seq = ie.TenantID, ie.RunID, &ie.Seq
	case errors.As(err, &me):
		seq := me.Size - 1
		f.RunID, f.Seq = me.RunID, &seq
	case errors.As(err, &re):
		f.TenantID, f.RunID = re.TenantID, re.RunID
	case errors.As(err, &we):
		f.TenantID, f.RunID = we.TenantID, we.RunID
	}
	if f.RunID != "" && !strings.Contains(f.Error, f.RunID) {
		f.Error = fmt.Sprintf("run %s: %s", f.RunID, f.Error)
	}
	return f
}
