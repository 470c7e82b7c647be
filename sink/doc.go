// Package sink delivers what governed runs do — incidents and run ends —
// to the places teams look: webhooks (NewWebhook, signed as Standard
// Webhooks specifies), OpenTelemetry logs (otelgov.NewLogSink), or any
// Sink of your own.
//
// Deliveries go through an outbox kept by the store
// (governance.OutboxStore; store/sqlite, store/postgres and
// store/memstore keep one). When a run ends, the Runner writes one
// delivery per event and sink in the same transaction that records the
// end and creates the incident: an end that is recorded has its
// deliveries, one that is not has none. A Dispatcher delivers them
// afterwards, at least once:
//
//	hook, err := sink.NewWebhook("https://hooks.example.com/stopline", os.Getenv("STOPLINE_WEBHOOK_SECRET"))
//	d, err := sink.NewDispatcher(store, []sink.Sink{hook}, sink.WithLogger(logger))
//	runner, err := governance.NewRunner(store, governance.WithOutbox(d))
//	go d.Run(ctx) // in this process, or in another one over the same store
//
// # Guarantees
//
// Nothing is delivered on a step's path: a step and a run's end wait for
// no sink (the end only adds rows to the transaction it commits anyway,
// and wakes the dispatcher without waiting). A sink that fails, blocks or
// panics changes no run's outcome.
//
// At least once: a delivery is acknowledged only after its sink returned
// nil. A process that dies after the commit of a run's end and before its
// deliveries were acknowledged (killed, crashed, the machine lost) leaves
// them in the outbox; a dispatcher started later, in any process, picks
// them up. One that dies while delivering leaves a claim whose lease ends
// (WithLease, default 1 min); then the delivery is due again. So a
// delivery may arrive twice: every attempt of one event to one sink
// carries the same ID (the webhook's webhook-id header), derived from the
// tenant, the run, the event type and the sink's name, and the same body.
//
// Retries: a failed attempt is retried after Backoff·2^(attempt-1), at
// most MaxBackoff, of which the second half is random (defaults 5 s and
// 1 h: 5 s, 10 s, 20 s, … 42 min, then hourly); after MaxAttempts
// (default 30: the last one 10 to 21 hours after the first) or an error
// wrapping ErrPermanent the delivery is dead. Dead deliveries stay in the outbox, listed with their
// last error (OutboxStore.Deliveries, `stopline outbox list --state
// dead`), and are delivered again only on request (RetryDelivery,
// `stopline outbox retry`).
//
// Several dispatchers — goroutines, processes, replicas on one PostgreSQL
// database — may deliver one outbox: a claim leases each delivery to one
// of them (FOR UPDATE SKIP LOCKED on PostgreSQL, the one writer on
// SQLite), so they never hold the same delivery at once. A dispatcher
// delivers only the deliveries of the sinks it has (by name).
//
// # Events
//
// EventIncidentCreated, when a policy or hook stopped a run (before its
// EventRunEnded), and EventRunEnded for every run's end. An Event's Body
// is a Payload in JSON: {"type", "timestamp", "data": {"run", "incident"}},
// with the run as stored once ended (status, reason, stopped-at step,
// policy, incident id, totals, head hash, labels) and the incident; never
// a step's text. Runs ended by governance.RecoverRun have no deliveries.
package sink
