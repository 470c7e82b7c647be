// Package otelgov exports what governed runs do as OpenTelemetry traces
// and metrics: a span for each run and for each of its steps, the step
// that stopped a run and its incident as span events, and counts and
// latencies of steps, decisions and runs. It is a governance.Observer and
// depends on the OpenTelemetry API alone (go.opentelemetry.io/otel,
// otel/trace, otel/metric, otel/log): the program chooses the SDK, its processors
// and its exporters.
//
//	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exporter))
//	obs, err := otelgov.New(otelgov.WithTracerProvider(tp)) // default: the global providers
//	runner, err := governance.NewRunner(store, governance.WithObserver(obs))
//	...
//	obs.Shutdown(ctx) // at exit: hands over what is queued; then tp.Shutdown(ctx)
//
// LogSink (NewLogSink) is a sink.Sink that emits each incident and each
// run's end as an OpenTelemetry log record, through the logs API
// (go.opentelemetry.io/otel/log), delivered from the store's outbox by a
// sink.Dispatcher, never on a step's path:
//
//	logs, err := otelgov.NewLogSink(otelgov.WithLoggerProvider(lp)) // default: the global LoggerProvider
//	d, err := sink.NewDispatcher(store, []sink.Sink{logs})
//	runner, err := governance.NewRunner(store, governance.WithOutbox(d), governance.WithObserver(obs))
//	go d.Run(ctx)
//
// # Spans
//
// Spans and measurements are made by the Observer's goroutine, from the
// events the runner reports, within 100 ms of each (see "Bounded delay").
//
// "stopline.run" spans a run, from its start (Runner.Start, Run or
// Enqueue) to its end (Finish, Abort, or the step that stopped it), on
// the runner's clock. It is a child of the span in the context given to
// Start, so that a run joins the caller's trace; without one it is a
// root span.
//
// "stopline.step TYPE" (TYPE: llm_response, tool_call, tool_result,
// message) spans a step, a child of its run's span, from the step's time
// (StepEvent.At) for as long as Run.Step took (StepEvent.Duration:
// evaluating, recording durably, checkpoints). When the context given
// to Step carries another span than the run's parent (the agent's own
// span for a tool call), the step's span links to it. A step stopped by
// Run.Check or Withhold is not timed by the runner: its span has no
// length. Both kinds are SpanKindInternal.
//
// Events. On a step's span, "stopline.finding" for each finding (a
// warning, a monitor-mode would-block, the block); on the step that
// stopped the run and on the run's span, "stopline.inflection" (where
// and why: step index, policy, reason, threshold, limit, observed value,
// message, record hash) and "stopline.incident" (stopline.incident.id);
// "exception" (Span.RecordError) for a failure.
//
// Status. Error on the step that stopped the run (the description names
// the step, the policy or hook and the reason), on a step that could not
// be recorded (with its error), and on the span of a run that ended
// failed_policy or failed, or whose end could not be recorded. Otherwise
// Unset: an allowed step, a warning, a completed or cancelled run.
//
// # Attributes
//
// Governance attributes, on the run's span (R), the step's (S), and the
// finding (F) and inflection (I) events:
//
//	stopline.run.id                R S      the run id (RUN-…)
//	stopline.tenant.id             R S      the run's tenant
//	stopline.snapshot.id           R S      the policy snapshot the run is bound to (SNAP-…)
//	stopline.snapshot.hash         R        the snapshot's content hash
//	stopline.policy.version        R        the tenant's policy version the run took, when it took one
//	stopline.run.status            R        queued or running at the start; succeeded, failed_policy, failed, cancelled at the end
//	stopline.termination_reason    R S I    why the run ended (completed, policy_block, budget_exceeded, rate_limited, timeout, user_abort, system_failure); on S only at the step that stopped it
//	stopline.run.steps             R        steps recorded
//	stopline.run.total_tokens      R S      the run's total tokens (on S: with this step)
//	stopline.run.total_cost_cents  R S      the run's total cost in cents (on S: with this step)
//	stopline.stopped_at_step       R        the index of the step that stopped the run
//	stopline.incident.id           R S      the incident the stop created (INC-…)
//	stopline.record.hash           R S I    the record in the run's hash chain: the step's record (S, I), the chain's head at the end (R)
//	stopline.run.label.KEY         R        the run label KEY, for the keys given to WithLabels only
//	stopline.step.index            S I      the step's index in the run, from 0
//	stopline.step.type             S        llm_response, tool_call, tool_result or message
//	stopline.step.status           S        ok, warning or violation, as recorded
//	stopline.step.tokens           S        the tokens the agent reported for the step (input and output together)
//	stopline.step.cost_cents       S        the step's cost in cents
//	stopline.decision              S F      allow, warn or block: the step's decision (S), the finding's action (F)
//	stopline.enforcement           F        the policy's mode: block, warn or monitor (a monitor finding has action block)
//	stopline.policy.id             R S F I  the deciding policy or hook (S: when the decision is not allow; R: the one that stopped the run)
//	stopline.decision.source       S F I    policy (the snapshot's) or hook (Go code beside it)
//	stopline.decision.reason       S F I    the decision's reason
//	stopline.threshold             S F I    the named threshold the policy applied
//	stopline.limit                 S F I    its value in the snapshot
//	stopline.observed              S F I    the value observed at this step
//	stopline.decision.message      F I      the policy's or hook's message
//	error.type                     R S      record_failed: the step, or the run's end, could not be recorded
//
// GenAI semantic conventions (development stability; the names of
// semantic conventions v1.41.0, since moved to the OpenTelemetry GenAI
// conventions), on step spans. The spans are the governance of a model
// call or a tool call, not the call itself:
//
//	gen_ai.operation.name       chat on llm_response steps, execute_tool on tool_call and tool_result steps
//	gen_ai.response.model       the model of an llm_response step (the one the response names, when llmhttp recorded it)
//	gen_ai.request.model        the model of any other step (for a tool call: the model that asked for it)
//	gen_ai.tool.name            the tool of a step that names one
//	gen_ai.usage.input_tokens   on llm_response steps recorded by llmhttp: the input tokens, cached ones included
//	gen_ai.usage.output_tokens  likewise, the output tokens
//
// stopline records one token count per step (stopline.step.tokens), not
// its split: the gen_ai.usage attributes are set only where the split is
// known, from the metadata llmhttp records (stopline.input_tokens and
// stopline.output_tokens, read only when both are decimal integers; no
// other metadata is read).
//
// # What is not exported
//
// By default no step text is put on a span or an event: not the step's
// input or output, no metadata value, no run label. Decision messages
// are (they are the policies' and hooks' own text: a content policy's
// names the field and the pattern, never the text matched; a hook that
// quotes step text in its message exports it). WithContent adds the
// step's text (stopline.step.input, stopline.step.output,
// stopline.step.metadata.KEY), which may be personal data; WithLabels
// adds the run labels named.
//
// # Metrics
//
// Meter "github.com/stopline/stopline/otelgov":
//
//	stopline.steps                 counter {step}      steps evaluated: stopline.step.type, stopline.decision; error.type=record_failed for a step not recorded
//	stopline.decisions             counter {decision}  findings (warnings, monitor would-blocks, blocks): stopline.decision (the action), stopline.enforcement, stopline.policy.id, stopline.decision.source
//	stopline.runs                  counter {run}       runs ended: stopline.run.status, stopline.termination_reason; error.type=record_failed for an end not recorded
//	stopline.runs.active           updown  {run}       runs started or queued and not yet ended
//	stopline.step.duration         histogram s         how long Run.Step took (StepEvent.Duration): stopline.step.type, stopline.decision
//	stopline.evaluation.duration   histogram s         how long the policies and hooks took (StepEvent.EvaluationTime): stopline.step.type
//
// The histograms advise boundaries from 10 µs to 10 s. Run ids and
// tenants are never metric attributes (their number has no bound);
// policy ids are, on stopline.decisions.
//
// # Bounded delay
//
// The runner calls an Observer synchronously, while the step waits. The
// Observer only queues the event there: it copies it under a mutex
// (about 0.3–1 µs, BenchmarkStepDone's step-wait-ns/op) and returns,
// never waiting for OpenTelemetry. Its own goroutine makes the spans and
// the measurements (about 4–5 µs an event with the SDK), woken once for
// up to 256 events or 100 ms after the first. So an SDK that is slow,
// an exporter that blocks forever or fails, even a span processor that
// exports synchronously (sdktrace.NewSimpleSpanProcessor), never delays
// a step by more than that copy and never changes a run's outcome: when
// the goroutine cannot keep up, events beyond WithMaxQueue (2048) are
// dropped, counted, and reported through otel.Handle. A run whose start
// is dropped is not traced; the end of a run whose start was queued is
// always queued, so that its span is ended. Use a batch span processor
// all the same (sdktrace.WithBatcher): behind a synchronous one, the
// goroutine waits for every export and drops what it cannot take.
//
// TestBoundedDelay checks it: with span and metric exporters that block
// forever, or fail at once, behind a batch processor or a synchronous
// one, 1,025 steps each return in well under a second (the bound the
// test asserts; they take microseconds), and every decision and record
// is what it is without the Observer. A panic in a provider loses the
// event that caused it, nothing else.
//
// At exit, call the Observer's Shutdown (it hands over what is queued),
// then the providers' Shutdown, each with a context that bounds it.
// (With the SDK v1.47.0, a PeriodicReader's Shutdown waits for an export
// in progress even past its context's deadline when the exporter ignores
// the context: wait for it in another goroutine if that must be bounded,
// as the stopline command does.)
//
// # Runs that never end
//
// The Observer keeps each run's span from its start to its end. A run
// that is never ended (its Run dropped without Finish or Abort, in a
// process that goes on) keeps its span open and a few hundred bytes, for
// the Observer's lifetime; Runner.Run always ends its run. Shutdown does
// not end the spans of runs in progress.
package otelgov
