package governance

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/trace"
)

// How Explain verified the records it explains (ExplainVerification.Method).
const (
	// VerifiedChain: the records were recomputed from the genesis hash.
	VerifiedChain = "chain"
	// VerifiedCheckpoint: they were recomputed from the genesis hash, and
	// a checkpoint signed with a key given to Explain states the hash of
	// the last record it covers.
	VerifiedCheckpoint = "checkpoint"
)

// ExplainVerification says what Explain checked before explaining, and so
// what the explanation may be trusted for.
//
// Explain reads the run's records from the first up to the instant (and
// the first record after it), and recomputes each one's hash from the
// genesis hash (trace.Verifier): the records it explains are exactly
// those of a sound chain from the run's start. That proves them unchanged
// against anyone who cannot recompute hashes; a writer of the database who
// rewrites a record and every later hash still gets a chain that
// verifies. Only a checkpoint signed with a key held outside the database
// proves more: with ExplainCheckpoints, the records a verified checkpoint
// covers are those that were signed (Method "checkpoint").
type ExplainVerification struct {
	// Method is VerifiedChain or VerifiedCheckpoint.
	Method string `json:"method"`
	// Records is how many records, from seq 0, were recomputed: those up
	// to the instant and the first after it (and those up to the
	// checkpoint, with one).
	Records int `json:"records"`
	// WholeChain is set when those are every record of the run's chain:
	// the chain length and head the explanation cites (Record.ChainLength,
	// Record.HeadHash) are then the recomputed ones. When it is not set
	// they are what the run's row states, not checked here (VerifyRun
	// checks them).
	WholeChain bool `json:"whole_chain"`
	// Checkpoint is the signed checkpoint the records were checked
	// against (Method "checkpoint"): its Size first records are those it
	// signed. It covers every record explained when its Size is at least
	// Record.Seq+1 (and the inflection record's seq + 1 once stopped).
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// Note says what could not be checked, when anything.
	Note string `json:"note,omitempty"`
}

// ExplainOption changes what Explain checks.
type ExplainOption func(*explainConfig)

type explainConfig struct {
	verifiers note.Verifiers
	notes     [][]byte
}

// ExplainCheckpoints has Explain check the records it explains against a
// signed checkpoint, with verifiers (the keys that sign checkpoints, held
// outside the database): the given notes (kept outside the database, as
// GUARANTEES.md advises) and the run's stored checkpoints whose notes
// verify with these keys. A given note that does not verify, or names
// another run, is an error; a stored one that does not verify with these
// keys is not used. Of the checkpoints left, Explain uses the smallest that
// covers every record it explains, reading and recomputing the records up
// to it; else the largest. Records that do not match a checkpoint that
// verified are an error matching ErrCheckpointMismatch: they were
// rewritten.
func ExplainCheckpoints(verifiers note.Verifiers, notes ...[]byte) ExplainOption {
	return func(c *explainConfig) {
		c.verifiers = verifiers
		c.notes = append(c.notes, notes...)
	}
}

// explainPrefix is what Explain keeps of the records up to the instant:
// enough to explain it without holding the chain.
type explainPrefix struct {
	first    trace.Record  // run_start
	last     trace.Record  // the last record at or before the instant
	lastStep *trace.Record // the last step at or before it (&step); nil when none
	step     trace.Record
	// inflection is the inflection record at or before the instant.
	inflection *trace.Record
	// steps has counted every step before lastStep (for the headroom).
	steps *stepRebuilder
	hooks hookOrder
}

// explainPage is the first page Explain reads; each next page is twice as
// large, up to explainMaxPage.
const (
	explainPage    = 256
	explainMaxPage = 2048
)

// readPrefix reads and recomputes the run's chain from its first record
// up to the first record after at (or its end), and, with checkpoints,
// up to the checkpoint it uses; it returns what explaining needs.
func readPrefix(ctx context.Context, store Store, run *RunRecord, at time.Time, cfg *explainConfig) (*explainPrefix, ExplainVerification, error) {
	tenantID, runID := run.TenantID, run.RunID
	ver := ExplainVerification{Method: VerifiedChain}
	cps, err := explainCheckpoints(ctx, store, run, cfg)
	if err != nil {
		return nil, ver, err
	}
	var (
		v       trace.Verifier
		p       = &explainPrefix{}
		done    bool // the first record after the instant was read
		hashAt  = map[int]string{}
		need    = 0 // records to read at least, for the checkpoint
		chosen  *Checkpoint
		explain = 0 // records explained: 0..explain-1
	)
	wanted := make(map[int]bool, len(cps))
	for _, c := range cps {
		wanted[c.Size] = true
	}
	add := func(r *trace.Record) error {
		if err := v.Add(r); err != nil {
			return err
		}
		if wanted[v.Len()] {
			hashAt[v.Len()] = r.Hash
		}
		if done || (v.Len() > 1 && r.At.After(at)) {
			done = true
			return nil
		}
		explain = v.Len()
		if r.Kind == trace.KindStep {
			if p.lastStep != nil {
				p.steps.skip(p.lastStep)
			}
			p.step, p.lastStep = *r, &p.step
			if r.Inflection {
				c := *r
				p.inflection = &c
			}
		}
		if v.Len() == 1 {
			p.first = *r
			p.steps = newStepRebuilder(run, r, 0)
		}
		p.last = *r
		p.hooks.add(r)
		return nil
	}
	// The records up to the instant, then those a checkpoint needs.
	end := true
	err = readPages(ctx, store, tenantID, runID, RecordRange{}, explainPage, explainMaxPage, 1, func(page []StoredRecord) error {
		for i := range page {
			if done {
				if chosen == nil {
					chosen, need = chooseCheckpoint(cps, explain)
				}
				if v.Len() >= need {
					end = false
					return errStopPages
				}
			}
			if err := add(&page[i].Record); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		var ce *trace.ChainError
		if errors.As(err, &ce) {
			return nil, ver, err
		}
		return nil, ver, fmt.Errorf("records of run %s: %w", runID, err)
	}
	if v.Len() == 0 {
		return nil, ver, &trace.ChainError{TenantID: tenantID, RunID: runID, Seq: 0, Problem: "no records"}
	}
	ver.Records = v.Len()
	ver.WholeChain = end
	if chosen == nil {
		chosen, _ = chooseCheckpoint(cps, explain)
	}
	if chosen != nil {
		mm := &CheckpointMismatchError{RunID: runID, Size: chosen.Size, Stored: v.Len(), Want: chosen.Head}
		got, ok := hashAt[chosen.Size]
		switch {
		case !ok:
			mm.Problem = "records the checkpoint covers are missing"
			return nil, ver, mm
		case got != chosen.Head:
			mm.Got, mm.Problem = got, "records the checkpoint covers were changed"
			return nil, ver, mm
		}
		ver.Method, ver.Checkpoint = VerifiedCheckpoint, chosen
		if chosen.Size < explain {
			ver.Note = fmt.Sprintf("the checkpoint covers records 0 to %d; records %d to %d were recomputed from it, which does not prove them against a writer who recomputes hashes", chosen.Size-1, chosen.Size, explain-1)
		}
	} else if cfg.verifiers != nil {
		ver.Note = "no checkpoint verified with the keys given covers these records"
	}
	if ver.WholeChain {
		// The chain read is the run's whole chain: its head is the one
		// the run row states, if the run has ended (an open run may have
		// grown since its row was read, never shrunk).
		if v.Len() < run.ChainLength || run.Status.Ended() && (run.ChainLength != v.Len() || run.HeadHash != v.Head()) {
			return nil, ver, &IntegrityError{TenantID: tenantID, RunID: runID, Seq: -1,
				Problem: fmt.Sprintf("run row states %d records with head %s; the chain has %d with head %s", run.ChainLength, run.HeadHash, v.Len(), v.Head())}
		}
		run.ChainLength, run.HeadHash = v.Len(), v.Head()
	}
	return p, ver, nil
}

// explainCheckpoints returns the checkpoints Explain may check the records
// against: the notes given and the stored ones that verify with the keys
// given, smallest size first.
func explainCheckpoints(ctx context.Context, store Store, run *RunRecord, cfg *explainConfig) ([]Checkpoint, error) {
	if cfg.verifiers == nil {
		return nil, nil
	}
	var out []Checkpoint
	for _, n := range cfg.notes {
		cp, err := OpenCheckpoint(n, cfg.verifiers)
		if err != nil {
			return nil, err
		}
		if cp.TenantID != run.TenantID || cp.RunID != run.RunID {
			return nil, &CheckpointRunError{TenantID: run.TenantID, RunID: run.RunID, NoteTenantID: cp.TenantID, NoteRunID: cp.RunID, Size: cp.Size}
		}
		out = append(out, cp)
	}
	rows, err := store.Checkpoints(ctx, run.TenantID, run.RunID)
	if err != nil {
		return nil, fmt.Errorf("checkpoints of run %s: %w", run.RunID, err)
	}
	for _, row := range rows {
		cp, err := OpenCheckpoint([]byte(row.Note), cfg.verifiers)
		if err != nil || cp.TenantID != run.TenantID || cp.RunID != run.RunID {
			continue // not signed by a key given, or of another run: proves nothing here
		}
		out = append(out, cp)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Size < out[j].Size })
	return out, nil
}

// chooseCheckpoint returns, of cps (smallest size first), the smallest
// that covers n records, else the largest, and how many records must be
// read to check it.
func chooseCheckpoint(cps []Checkpoint, n int) (*Checkpoint, int) {
	if len(cps) == 0 {
		return nil, 0
	}
	for i := range cps {
		if cps[i].Size >= n {
			return &cps[i], cps[i].Size
		}
	}
	c := &cps[len(cps)-1]
	return c, c.Size
}
