package governance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/stopline/stopline/incident"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/trace"
)

// StepInput is a step the agent reports: an LLM response, a tool call
// (BEFORE the tool runs), a tool result, or a message.
type StepInput struct {
	Type      prevention.StepType
	Model     string
	Tool      string
	Input     string
	Output    string
	Tokens    int64
	CostCents float64
	Metadata  map[string]string
}

// StepResult is what the runner decided and recorded for a step.
type StepResult struct {
	Index      int
	Evaluation prevention.Evaluation
	Status     trace.Status
	// Hash is the step record's hash in the run's chain ("" when the
	// step was allowed fail-open without being recorded).
	Hash     string
	Recorded bool
}

// Run is a governed run in progress. Report each step with Step; end the
// run with Finish or Abort (or use Runner.Run, which does so). A Run is
// safe for concurrent use; steps are evaluated and recorded one at a time,
// in the order the calls take the run's lock.
type Run struct {
	r      *Runner
	engine *prevention.Engine

	agent string // the run's AgentLabel, for the kill switch

	mu         sync.Mutex
	rec        RunRecord
	head       string
	seq        int
	nextIndex  int
	startedAt  time.Time
	queued     bool
	times      []int64
	step       prevention.Step
	ended      bool
	cause      error
	unrecorded int
	buf        []byte // the body of the step being recorded, reused
	// shadow is the engine of the run's shadow snapshot, if any
	// (StartOptions.Shadow); shadowScan compares its recorded decisions.
	shadow     *prevention.Engine
	shadowScan ShadowScan
	retention  trace.Retention
	// The system-clock times of the Step call in progress, for observers
	// (zero when the runner has none, or for a check that stops the run).
	obsBegan time.Time
	obsEval  time.Duration
}

// ID returns the run id.
func (run *Run) ID() string { return run.rec.RunID }

// TenantID returns the run's tenant.
func (run *Run) TenantID() string { return run.rec.TenantID }

// Snapshot returns the policy snapshot the run is bound to.
func (run *Run) Snapshot() *snapshot.PolicySnapshot { return run.engine.Snapshot() }

// Record returns the run's current state as the runner knows it.
func (run *Run) Record() RunRecord {
	run.mu.Lock()
	defer run.mu.Unlock()
	rec := run.rec
	rec.Labels = cloneLabels(rec.Labels)
	return rec
}

// Ended reports whether the run has ended.
func (run *Run) Ended() bool {
	run.mu.Lock()
	defer run.mu.Unlock()
	return run.ended
}

// Step evaluates the step against the run's snapshot and hooks, records
// it durably, and only then returns.
//
// On Allow (or Warn) it returns the result and nil. On Block the run stops
// at this step: the step is recorded as the inflection point, the run's
// final status and the incident are stored in one transaction, and Step
// returns a *Violation. After the run has ended, every call returns a
// *StoppedError (errors.Is(err, ErrRunStopped)) and records nothing.
//
// If the store cannot record the step, it is not allowed: Step returns an
// error matching ErrRecordFailed and the run ends as failed /
// system_failure (unless the runner was made WithFailOpen). A hook error
// or panic ends the run the same way, recording the failed check as the
// inflection point. A malformed step (unknown type, negative or
// non-finite tokens or cost, a model or tool name longer than
// MaxNameBytes or that prevention.CheckName refuses — invalid UTF-8, a
// control or invisible character —, tokens or cost that would overflow the
// run's totals) returns an error matching ErrInvalidStep and records
// nothing. Invalid UTF-8 in the step's input, output and metadata is
// replaced with U+FFFD before policies see it.
func (run *Run) Step(ctx context.Context, in StepInput) (StepResult, error) {
	return run.stepCarrying(ctx, in, nil)
}

// stepCarrying is Step, settling the holds of a Reservation (carry) if any.
func (run *Run) stepCarrying(ctx context.Context, in StepInput, carry []prevention.Hold) (StepResult, error) {
	run.mu.Lock()
	defer run.mu.Unlock()
	carried := len(carry) == 0 // [tenant limits] a step that ends before its evaluation gives them back
	defer func() {
		if !carried {
			run.releaseHolds(ctx, carry)
		}
	}()
	if run.ended {
		return StepResult{}, run.stoppedError()
	}
	if err := validateStep(&in); err != nil {
		return StepResult{}, err
	}
	if err := run.checkTotals(&in); err != nil {
		return StepResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return StepResult{}, err
	}
	cfg := &run.r.cfg
	observed := run.r.observed()
	if observed {
		run.obsBegan = time.Now()
		defer func() { run.obsBegan, run.obsEval = time.Time{}, 0 }()
	}
	idx := run.nextIndex
	totalTokens := run.rec.TotalTokens + in.Tokens
	totalCost := run.rec.TotalCostCents + in.CostCents
	// [tenant limits] Limits that span runs count the step in the store's
	// ledger while it is evaluated (ledger.go).
	ch := run.charges()
	if ch != nil {
		ch.Carry(carry)
		carried = true
	}
	var (
		now     time.Time
		ev      prevention.Evaluation
		evalErr error
	)
	if k := run.r.killed(run.rec.TenantID, run.agent, run.rec.RunID); k != nil {
		// [kill switch] kill.go: the step is not evaluated, it is blocked.
		now = run.stepTime()
		d := k.decision()
		ev = prevention.Evaluation{Decision: d, Findings: []prevention.Decision{d}}
	} else {
		now, ev, evalErr = run.evaluateNext(ctx, &in, ch)
	}
	if observed {
		run.obsEval = time.Since(run.obsBegan)
	}
	if evalErr != nil && ctx.Err() != nil {
		// The caller gave up while the step was being evaluated: nothing
		// was decided, nothing is recorded, the run stays as it was.
		run.releaseCharges(ctx, ch)
		return StepResult{}, ctx.Err()
	}

	content := run.content(&in)
	rec := trace.Record{
		TenantID: run.rec.TenantID, RunID: run.rec.RunID, Seq: run.seq, Kind: trace.KindStep, At: now,
		SnapshotID: run.rec.SnapshotID, StepIndex: idx, StepType: in.Type, Model: in.Model, Tool: in.Tool,
		Tokens: in.Tokens, CostCents: in.CostCents, TotalTokens: totalTokens, TotalCostCents: totalCost,
		ContentHash: trace.ContentHashOf(content),
	}
	if evalErr == nil && ev.Decision.Action == prevention.HoldForApproval {
		// [holds] hold.go: the step waits for a person's answer, which
		// decides it and is recorded with it.
		rec.Findings = ev.Findings
		ev, rec.Approval, evalErr = run.await(ctx, &rec, content)
	}
	if evalErr != nil {
		var he *prevention.HookError
		d := prevention.Decision{Action: prevention.Block, Reason: prevention.ReasonSystemFailure, Message: evalErr.Error()}
		if errors.As(evalErr, &he) {
			d.PolicyID, d.Source = he.PolicyID, he.Source
		}
		ev = prevention.Evaluation{Decision: d, Findings: []prevention.Decision{d}}
	}
	rec.Status = trace.StatusOf(ev)
	rec.Decision = &ev.Decision
	rec.Findings = ev.Findings
	res := StepResult{Index: idx, Evaluation: ev, Status: rec.Status}
	if run.shadow != nil || run.retention != trace.RetentionFull {
		content = run.complete(ctx, &rec, &in, &in, content)
	}

	if ev.Decision.Action == prevention.Block {
		run.releaseCharges(ctx, ch) // [tenant limits] a blocked step counts nothing
		recorded, err := run.stopAt(ctx, &rec, content, evalErr)
		res.Hash, res.Recorded = rec.Hash, recorded
		return res, err
	}

	run.buf = trace.Seal(&rec, run.head, run.buf)
	body := run.buf
	err := run.commitCharges(ctx, ch) // [tenant limits] counted before it is recorded
	if err == nil {
		wctx, wcancel := run.r.writeContext(ctx)
		err = run.r.store.AppendStep(wctx, StepWrite{Record: rec, Body: body, Content: contentPtr(content), MarkRunning: run.queued})
		wcancel()
	}
	if err != nil {
		if !cfg.failOpen {
			run.releaseCharges(ctx, ch) // [tenant limits] not recorded, not allowed
		}
		recErr := fmt.Errorf("%w: step %d of run %s: %w", ErrRecordFailed, idx, run.rec.RunID, err)
		if observed {
			run.notifyStep(ctx, &rec, content, false, "", recErr)
		}
		if cfg.failOpen {
			run.unrecorded++
			run.rec.TotalTokens, run.rec.TotalCostCents = totalTokens, totalCost
			return res, nil
		}
		run.failClosed(ctx, recErr)
		return res, recErr
	}
	run.advance(&rec, now, totalTokens, totalCost)
	res.Hash, res.Recorded = rec.Hash, true
	if observed {
		run.notifyStep(ctx, &rec, content, true, "", nil)
	}
	if every := cfg.cpEvery; every > 0 && cfg.cpSigner != nil && run.nextIndex%every == 0 {
		if err := run.checkpoint(ctx, now); err != nil {
			return res, err
		}
	}
	return res, nil
}

// checkpoint signs and stores a checkpoint of the chain as it is now.
// The step or end it follows is already recorded; a failure is reported
// (matching ErrRecordFailed) but changes nothing that was decided.
func (run *Run) checkpoint(ctx context.Context, at time.Time) error {
	wctx, cancel := run.r.writeContext(ctx)
	defer cancel()
	if _, err := putCheckpoint(wctx, run.r.store, run.r.cfg.cpSigner, run.rec.TenantID, run.rec.RunID, run.seq, run.head, at); err != nil {
		return fmt.Errorf("%w: %w", ErrRecordFailed, err)
	}
	return nil
}

func (run *Run) advance(rec *trace.Record, now time.Time, totalTokens int64, totalCost float64) {
	if run.queued {
		run.queued = false
		run.rec.Status = StatusRunning
		run.rec.StartedAt = &now
		run.startedAt = now
	}
	run.head = rec.Hash
	run.seq++
	run.nextIndex++
	if run.shadow != nil {
		run.shadowScan.Add(rec)
	}
	run.times = append(run.times, now.UnixNano())
	run.rec.TotalTokens, run.rec.TotalCostCents = totalTokens, totalCost
	run.rec.StepCount = run.nextIndex
	run.rec.HeadHash, run.rec.ChainLength = rec.Hash, run.seq
}

// stopAt records rec as the inflection point and ends the run, with its
// incident, in one store transaction. cause is a hook failure, if any.
func (run *Run) stopAt(ctx context.Context, rec *trace.Record, content trace.Content, cause error) (recorded bool, err error) {
	// A decision made from a failure carries the failure's text, which
	// can be anything: make it recordable, as the engine does its own.
	rec.Decision.Message = prevention.RecordableText(rec.Decision.Message)
	for i := range rec.Findings {
		rec.Findings[i].Message = prevention.RecordableText(rec.Findings[i].Message)
	}
	d := *rec.Decision
	now := rec.At
	idx := rec.StepIndex
	rec.Inflection = true
	status := StatusFailedPolicy
	switch {
	case cause != nil:
		status = StatusFailed
	case d.Reason == prevention.ReasonUserAbort:
		// The kill switch, or a caller who gave up on a held step.
		status = StatusCancelled
	}
	stepBody := trace.Seal(rec, run.head, nil)

	inc := incident.Incident{
		ID: run.r.cfg.newID("incident"), TenantID: run.rec.TenantID, RunID: run.rec.RunID, TraceID: run.rec.TraceID,
		SnapshotID: run.rec.SnapshotID, PolicyID: d.PolicyID, Source: d.Source, StepIndex: idx, RecordHash: rec.Hash,
		Reason: d.Reason, Threshold: d.Threshold, Limit: d.Limit, Observed: d.Observed,
		Severity: incident.SeverityFor(d.Reason, rec.StepType), Status: incident.StatusOpen,
		Title: incident.TitleFor(d, idx), Message: d.Message, CreatedAt: now,
	}
	end := run.endRecord(rec.Seq+1, now, status, d.Reason, &idx, d.PolicyID, inc.ID, d.Message, rec.TotalTokens, rec.TotalCostCents)
	endBody := trace.Seal(&end, rec.Hash, nil)
	c := Close{
		TenantID: run.rec.TenantID, RunID: run.rec.RunID,
		Step:     &StepWrite{Record: *rec, Body: stepBody, Content: contentPtr(content)},
		Incident: &inc, End: StepWrite{Record: end, Body: endBody},
		Status: status, Reason: d.Reason, StoppedAtStep: &idx, ViolationPolicyID: d.PolicyID,
		IncidentID: inc.ID, Message: end.Message, EndedAt: now, MarkRunning: run.queued,
	}
	v := &Violation{
		RunID: run.rec.RunID, TenantID: run.rec.TenantID, SnapshotID: run.rec.SnapshotID,
		StepIndex: idx, Decision: d, IncidentID: inc.ID, RecordHash: rec.Hash,
	}
	if cause != nil {
		err = fmt.Errorf("%w: %w", ErrRunStopped, cause)
	} else {
		err = v
	}
	wctx, cancel := run.r.writeContext(ctx)
	defer cancel()
	if serr := run.r.store.CloseRun(wctx, c); serr != nil {
		// The step is blocked whether or not the stop was recorded.
		run.ended = true
		run.cause = err
		run.rec.Status, run.rec.TerminationReason = status, d.Reason
		recErr := fmt.Errorf("%w: stop of run %s at step %d: %w", ErrRecordFailed, run.rec.RunID, idx, serr)
		if run.r.observed() {
			run.notifyStep(ctx, rec, content, false, "", recErr)
			run.notifyEnd(ctx, now, v, recErr)
		}
		return false, errors.Join(err, recErr)
	}
	run.advance(rec, now, rec.TotalTokens, rec.TotalCostCents)
	run.finishState(&end, c)
	run.cause = err
	if run.r.observed() {
		run.notifyStep(ctx, rec, content, true, inc.ID, cause)
		run.notifyEnd(ctx, now, v, nil)
	}
	if run.r.cfg.cpSigner != nil {
		if cerr := run.checkpoint(ctx, now); cerr != nil {
			return true, errors.Join(err, cerr)
		}
	}
	return true, err
}

func (run *Run) endRecord(seq int, now time.Time, status RunStatus, reason prevention.RunTerminationReason, stoppedAt *int, policyID, incidentID, msg string, totalTokens int64, totalCost float64) trace.Record {
	if run.unrecorded > 0 {
		msg = strings.TrimSpace(fmt.Sprintf("%s (fail-open: %d steps unrecorded)", msg, run.unrecorded))
	}
	msg = prevention.RecordableText(msg) // an Abort's message, a failure's text
	return trace.Record{
		TenantID: run.rec.TenantID, RunID: run.rec.RunID, Seq: seq,
		Kind: trace.KindRunEnd, At: now, SnapshotID: run.rec.SnapshotID, StepIndex: -1,
		RunStatus: string(status), Reason: reason, StoppedAtStep: stoppedAt,
		ViolationPolicyID: policyID, IncidentID: incidentID, Message: msg,
		TotalTokens: totalTokens, TotalCostCents: totalCost,
	}
}

func (run *Run) finishState(end *trace.Record, c Close) {
	run.ended = true
	run.head = end.Hash
	run.seq++
	run.rec.Status, run.rec.TerminationReason = c.Status, c.Reason
	run.rec.StoppedAtStep, run.rec.ViolationPolicyID, run.rec.IncidentID = c.StoppedAtStep, c.ViolationPolicyID, c.IncidentID
	run.rec.Message = end.Message
	endedAt := c.EndedAt
	run.rec.EndedAt = &endedAt
	run.rec.HeadHash, run.rec.ChainLength = end.Hash, run.seq
}

// failClosed ends the run after a step could not be recorded. The end is
// recorded if the store allows; if not, the run stays unfinished in the
// store, for recovery.
func (run *Run) failClosed(ctx context.Context, cause error) {
	_, _ = run.end(ctx, prevention.ReasonSystemFailure, cause.Error())
	run.ended = true
	run.cause = cause
	run.rec.Status, run.rec.TerminationReason = StatusFailed, prevention.ReasonSystemFailure
}

// Finish ends the run as succeeded / completed.
func (run *Run) Finish(ctx context.Context) (RunRecord, error) {
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.ended {
		return run.rec, run.stoppedError()
	}
	return run.end(ctx, prevention.ReasonCompleted, "")
}

// Abort ends the run between steps with the given reason: user_abort
// (cancelled), timeout or system_failure (failed). message says why.
func (run *Run) Abort(ctx context.Context, reason prevention.RunTerminationReason, message string) (RunRecord, error) {
	if !reason.Valid() || reason == prevention.ReasonCompleted {
		return RunRecord{}, fmt.Errorf("governance: abort: %q is not an abort reason", reason)
	}
	run.mu.Lock()
	defer run.mu.Unlock()
	if run.ended {
		return run.rec, run.stoppedError()
	}
	return run.end(ctx, reason, message)
}

func (run *Run) end(ctx context.Context, reason prevention.RunTerminationReason, message string) (RunRecord, error) {
	now := run.r.cfg.clock.Now().UTC()
	status := StatusFor(reason, false)
	end := run.endRecord(run.seq, now, status, reason, nil, "", "", message, run.rec.TotalTokens, run.rec.TotalCostCents)
	body := trace.Seal(&end, run.head, nil)
	c := Close{
		TenantID: run.rec.TenantID, RunID: run.rec.RunID, End: StepWrite{Record: end, Body: body},
		Status: status, Reason: reason, Message: end.Message, EndedAt: now, MarkRunning: run.queued,
	}
	wctx, cancel := run.r.writeContext(ctx)
	defer cancel()
	if err := run.r.store.CloseRun(wctx, c); err != nil {
		err = fmt.Errorf("%w: end of run %s: %w", ErrRecordFailed, run.rec.RunID, err)
		if run.r.observed() {
			// The run ends here all the same (the store shows it
			// unfinished): observers see the status it ended with.
			rec := run.rec
			run.rec.Status, run.rec.TerminationReason = status, reason
			run.notifyEnd(ctx, now, nil, err)
			run.rec = rec
		}
		return run.rec, err
	}
	run.finishState(&end, c)
	if run.r.observed() {
		run.notifyEnd(ctx, now, nil, nil)
	}
	if run.r.cfg.cpSigner != nil {
		if err := run.checkpoint(ctx, now); err != nil {
			return run.rec, err
		}
	}
	return run.rec, nil
}

// stopCause is what stopped the run, if a step did: its *Violation, or
// the error that ended it. It is nil for a run ended by Finish or Abort.
func (run *Run) stopCause() error {
	run.mu.Lock()
	defer run.mu.Unlock()
	return run.cause
}

func (run *Run) stoppedError() error {
	return &StoppedError{RunID: run.rec.RunID, Status: run.rec.Status, Reason: run.rec.TerminationReason, Cause: run.cause}
}

// Validate reports whether the runner would refuse in as malformed (an
// error matching ErrInvalidStep naming the field), without a run: for
// checking a transcript or a request before anything is recorded. It
// does not change in; Step replaces invalid UTF-8, Validate accepts it.
func (in StepInput) Validate() error {
	return validateStep(&in)
}

func validateStep(in *StepInput) error {
	bad := func(field, why string) error {
		return fmt.Errorf("%w: %s %s", ErrInvalidStep, field, why)
	}
	if !in.Type.Valid() {
		return bad("type", fmt.Sprintf("%q is not llm_response, tool_call, tool_result or message", in.Type))
	}
	if in.Tokens < 0 {
		return bad("tokens", fmt.Sprintf("%d is negative", in.Tokens))
	}
	if math.IsNaN(in.CostCents) || math.IsInf(in.CostCents, 0) || in.CostCents < 0 {
		return bad("cost_cents", fmt.Sprintf("%v is not a finite, non-negative number", in.CostCents))
	}
	if len(in.Model) > MaxNameBytes || len(in.Tool) > MaxNameBytes {
		return bad("model or tool", fmt.Sprintf("name of %d bytes is longer than %d", max(len(in.Model), len(in.Tool)), MaxNameBytes))
	}
	// A name is compared by policies and read by the agent's dispatcher
	// and by people: one with characters no one sees, or not valid UTF-8,
	// is refused rather than guessed at (prevention.CheckName).
	if err := prevention.CheckName(in.Tool); err != nil {
		return fmt.Errorf("%w: tool: %w", ErrInvalidStep, err)
	}
	if err := prevention.CheckName(in.Model); err != nil {
		return fmt.Errorf("%w: model: %w", ErrInvalidStep, err)
	}
	// Invalid UTF-8 in text is replaced by U+FFFD, so that what policies
	// see is exactly what is recorded and hashed.
	for _, s := range []*string{&in.Input, &in.Output} {
		if !utf8.ValidString(*s) {
			*s = strings.ToValidUTF8(*s, "\uFFFD")
		}
	}
	for k, v := range in.Metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			in.Metadata = validMetadata(in.Metadata) // a copy: the caller's map is left as it was
			break
		}
	}
	return nil
}

// MaxNameBytes bounds a step's model and tool names (a longer one makes
// the step invalid), so that every step record fits trace.MaxRecordSize.
const MaxNameBytes = 1 << 10

// validMetadata returns a copy of md with invalid UTF-8 in its keys and
// values replaced by U+FFFD (of keys that become equal, the greatest
// original key's value is kept).
func validMetadata(md map[string]string) map[string]string {
	keys := make([]string, 0, len(md))
	for k := range md {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make(map[string]string, len(md))
	for _, k := range keys {
		out[strings.ToValidUTF8(k, "\uFFFD")] = strings.ToValidUTF8(md[k], "\uFFFD")
	}
	return out
}

// checkTotals refuses a step whose tokens or cost would overflow the run's
// totals: a total that wrapped around (negative tokens) or became infinite
// would pass a budget it exceeds, and could not be recorded.
func (run *Run) checkTotals(in *StepInput) error {
	if in.Tokens > math.MaxInt64-run.rec.TotalTokens {
		return fmt.Errorf("%w: tokens %d would overflow the run's total of %d", ErrInvalidStep, in.Tokens, run.rec.TotalTokens)
	}
	if math.IsInf(run.rec.TotalCostCents+in.CostCents, 0) {
		return fmt.Errorf("%w: cost_cents %v would overflow the run's total of %v", ErrInvalidStep, in.CostCents, run.rec.TotalCostCents)
	}
	return nil
}

func (run *Run) content(in *StepInput) trace.Content {
	c := trace.Content{Input: in.Input, Output: in.Output, Metadata: in.Metadata}
	max := run.r.cfg.maxContent
	var cut []string
	if len(c.Input) > max {
		c.Input, cut = truncateUTF8(c.Input, max), append(cut, "input")
	}
	if len(c.Output) > max {
		c.Output, cut = truncateUTF8(c.Output, max), append(cut, "output")
	}
	if len(cut) > 0 {
		md := cloneLabels(c.Metadata)
		if md == nil {
			md = map[string]string{}
		}
		md["stopline.truncated"] = strings.Join(cut, ",")
		c.Metadata = md
	}
	return c
}

func truncateUTF8(s string, n int) string {
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func contentPtr(c trace.Content) *trace.Content {
	if c.Input == "" && c.Output == "" && len(c.Metadata) == 0 {
		return nil
	}
	return &c
}

// notifyStep tells the observers about the step rec (with its stored
// content): recorded or not, the inflection point with its incident.
// The caller holds run.mu.
func (run *Run) notifyStep(ctx context.Context, rec *trace.Record, content trace.Content, recorded bool, incidentID string, err error) {
	e := StepEvent{
		RunID: run.rec.RunID, TenantID: run.rec.TenantID, SnapshotID: run.rec.SnapshotID,
		SnapshotHash: run.engine.Snapshot().ContentHash(), Index: rec.StepIndex, At: rec.At,
		Input: StepInput{Type: rec.StepType, Model: rec.Model, Tool: rec.Tool, Input: content.Input, Output: content.Output,
			Tokens: rec.Tokens, CostCents: rec.CostCents, Metadata: content.Metadata},
		Status: rec.Status, Recorded: recorded, RecordHash: rec.Hash, Inflection: rec.Inflection && recorded,
		IncidentID: incidentID, TotalTokens: rec.TotalTokens, TotalCostCents: rec.TotalCostCents,
		EvaluationTime: run.obsEval, Err: err,
	}
	if !recorded {
		e.RecordHash = ""
	}
	if rec.Decision != nil {
		e.Evaluation = prevention.Evaluation{Decision: *rec.Decision, Findings: rec.Findings}
	}
	if !run.obsBegan.IsZero() {
		e.Duration = time.Since(run.obsBegan)
	}
	run.r.notify(func(o Observer) { o.StepDone(ctx, e) })
}

// notifyEnd tells the observers the run has ended (or that its end could
// not be recorded: err). The caller holds run.mu.
func (run *Run) notifyEnd(ctx context.Context, at time.Time, v *Violation, err error) {
	e := RunEvent{Run: run.rec, SnapshotHash: run.engine.Snapshot().ContentHash(), Violation: v, Err: err, At: at}
	e.Run.Labels = cloneLabels(e.Run.Labels)
	run.r.notify(func(o Observer) { o.RunEnded(ctx, e) })
}
