package governance

import (
	"context"
	"fmt"
	"time"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// RecoverRun closes a run that was left unfinished — its process died
// between steps, so the store still shows it queued or running — as
// failed / system_failure, with a run_end record that extends its stored
// chain (after verifying it) and says why. Every step that was recorded
// stays as it was. Call it only for runs that no live process owns, for
// example runs still running after a restart (list them with
// Store.Runs and RunFilter{Status: StatusRunning}). A step of the run
// still held for approval is not recorded; its hold is answered
// cancelled, so that nobody can approve it any more. To go on with the
// run instead (waiting for the hold), use Runner.Resume.
//
// A runner with an outbox (WithOutbox) should recover runs with
// Runner.RecoverRun, which stores the end's deliveries with it.
func RecoverRun(ctx context.Context, store Store, tenantID, runID, message string, at time.Time) (RunRecord, error) {
	return recoverRun(ctx, store, nil, tenantID, runID, message, at)
}

// RecoverRun is the package's RecoverRun at the runner's clock, through
// the runner's store, with the deliveries the runner's outbox (WithOutbox)
// asks for stored in the same transaction as the run's end, so that the
// sinks hear of a run that ended without its process as of any other.
func (r *Runner) RecoverRun(ctx context.Context, tenantID, runID, message string) (RunRecord, error) {
	return recoverRun(ctx, r.store, r.cfg.outbox, tenantID, runID, message, r.cfg.clock.Now())
}

func recoverRun(ctx context.Context, store Store, o Outbox, tenantID, runID, message string, at time.Time) (RunRecord, error) {
	run, err := store.Run(ctx, tenantID, runID)
	if err != nil {
		return RunRecord{}, err
	}
	if run.Status.Ended() {
		return run, fmt.Errorf("governance: recover run %s: %w", runID, ErrRunEnded)
	}
	records, err := store.Records(ctx, tenantID, runID)
	if err != nil {
		return run, err
	}
	head, err := trace.Verify(records)
	if err != nil {
		return run, fmt.Errorf("governance: recover run %s: %w", runID, err)
	}
	last := records[len(records)-1]
	// The totals the run_end states are the last recorded step's, from
	// its verified record, not from what the store keeps beside it.
	var tokens int64
	var cost float64
	for i := len(records) - 1; i >= 0; i-- {
		if records[i].Kind == trace.KindStep {
			tokens, cost = records[i].TotalTokens, records[i].TotalCostCents
			break
		}
	}
	if message == "" {
		message = "recovered: the run's process ended without finishing it"
	}
	message = prevention.RecordableText(message)
	// [holds] A step held when the process died is never let pass: its
	// hold is cancelled (Runner.Resume waits for it instead).
	if err := cancelHolds(ctx, store, tenantID, runID, "recovered: "+message, at.UTC()); err != nil {
		return run, fmt.Errorf("governance: recover run %s: cancelling its holds: %w", runID, err)
	}
	if at.Before(last.At) {
		at = last.At
	}
	end := trace.Record{
		TenantID: tenantID, RunID: runID, Seq: len(records), Kind: trace.KindRunEnd, At: at.UTC(),
		SnapshotID: run.SnapshotID, StepIndex: -1, RunStatus: string(StatusFailed), Reason: prevention.ReasonSystemFailure,
		Message: message, TotalTokens: tokens, TotalCostCents: cost,
	}
	body := trace.Seal(&end, head, nil)
	c := Close{
		TenantID: tenantID, RunID: runID, End: StepWrite{Record: end, Body: body},
		Status: StatusFailed, Reason: prevention.ReasonSystemFailure, Message: message, EndedAt: end.At,
		MarkRunning: run.Status == StatusQueued,
	}
	var outErr error
	if o != nil {
		outErr = addDeliveries(o, run, &c)
	}
	if err := store.CloseRun(ctx, c); err != nil {
		return run, fmt.Errorf("governance: recover run %s: %w", runID, err)
	}
	if o != nil && len(c.Deliveries) > 0 {
		storedDeliveries(o, c.Deliveries)
	}
	rec, err := store.Run(ctx, tenantID, runID)
	if err == nil {
		err = outErr
	}
	return rec, err
}
