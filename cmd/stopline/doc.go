// Command stopline uses the stopline library without writing Go: try a
// policy set on a recorded transcript before deploying it, look at what
// happened in a run, explain any instant of it, export evidence, verify a
// database or an exported bundle, and serve the HTTP API.
//
// It has no logic of its own: runs go through governance.Runner and the
// store, explanations are governance.Explain, verification is
// governance.VerifyRun, VerifyStore, VerifyTenant and the checkpoint
// verifiers, bundles are made by package export, sealed and checked by
// export/bundle, rendered by export/pdf and served by export/httpapi.
//
// # Contract
//
// Scripts may depend on what follows; it is kept stable.
//
//   - --db PATH selects the database: a SQLite file, or a postgres:// (or
//     postgresql://) URL for the Postgres store. Default: $STOPLINE_DB,
//     else ./stopline.db. It may be given before or after the command.
//     Commands that only read refuse a SQLite file that does not exist
//     rather than create an empty one.
//   - --json, on every command that prints data, prints one JSON document
//     on stdout (an object, or an array for lists) instead of text.
//   - Errors go to stderr as one line: "stopline COMMAND: what is wrong".
//     A verification that finds several failures prints one line each.
//   - Exit status: 0 success (a run stopped by a policy is a success),
//     1 failure (bad input, verification failed, store error), 2 usage
//     error (unknown command or flag, missing argument, bad flag value).
//   - Flags may come before or after positional arguments; "--" ends the
//     flags. `stopline --help` lists the commands, `stopline CMD --help`
//     explains every flag with an example.
//   - run and serve log on stderr (log/slog text lines: time=… level=…
//     msg=… key=value …) from the level --log-level LEVEL gives (debug,
//     info, warn, error; before or after the command), else
//     $STOPLINE_LOG_LEVEL, else warn (info for serve). A log line never
//     replaces a command's error line, and at the default level a
//     command that succeeds writes nothing on stderr. See Logs.
//   - run and serve export traces and metrics only when the OTEL_*
//     environment asks for them. See Telemetry.
//   - Human-readable output is aligned in columns; times are UTC with
//     milliseconds (2025-03-01T12:00:01.500Z); step times in show and
//     explain are milliseconds after the run's start (+1500ms). Long work
//     (verifying a whole database, building an export) shows progress on
//     stderr only when stderr is a terminal.
//
// # Commands
//
//	stopline policy check FILE [--json]
//
// Validates a policy file (- for stdin) as a run would compile it and
// prints its snapshot id and content hash. Nothing is stored. --json:
// {"snapshot_id","content_hash","tenant_id","policy_count"}.
//
//	stopline policy publish FILE [--by NAME] [--note TEXT] [--json]
//
// Makes the file the active policy version of its tenant (versions 1, 2,
// ... are append-only); prints the version and snapshot id. --by defaults
// to $USER. --json: {"tenant_id","version","snapshot_id","content_hash",
// "published_by","published_at","note"}.
//
//	stopline policy history [--tenant T] [--json]
//
// Lists the policy versions, oldest first, the active one marked. Without
// --tenant, every tenant's. --json: an array of versions as above.
//
//	stopline whatif --policies FILE [--tenant T] [--since TIME] [--until TIME] [--status S] [--json]
//
// Evaluates a candidate policy file on the recorded runs of its tenant
// (governance.Runner.WhatIf; created in [--since, --until), RFC 3339 or
// YYYY-MM-DD; --status) and says per run what would have changed:
// unchanged, would_stop (a run not stopped at a step that the candidate
// stops), would_continue (the candidate lets the stopping step pass),
// stops_earlier, stops_later (never seen from records, which end at a
// stop); what the run recorded after the candidate's stop (saved), or
// that the cost past a recorded stop is unknown; and flags for what could
// not be evaluated exactly (Go hooks, limits across the tenant's runs,
// text stored cut, withheld steps). Nothing is written. A run that does
// not verify is not evaluated: exit 1, one stderr line per such run.
// --json: {"tenant_id","candidate_snapshot_id","candidate_content_hash",
// "runs","totals"}, each run {"run_id","policy_snapshot_id","created_at",
// "change","recorded","candidate","saved","cost_note","flags","error"},
// recorded and candidate {"status","stopped_at_step","policy_id","reason",
// "message"}; totals {"runs","unchanged","would_stop","would_continue",
// "stops_earlier","stops_later","not_evaluated","flagged","saved",
// "cost_unknown"}.
//
//	stopline run [--policies FILE] --steps FILE [--tenant T] [--shadow FILE] [--retention full|redacted|hashes] [--checkpoint-key FILE] [--webhook URL] [--log-level LEVEL] [--json]
//
// A governed run of scripted steps through the real runner and store.
// Without --policies the tenant's active version is used (--tenant is
// then required). The steps file (- for stdin) is JSONL, one object per
// line, blank lines skipped, with fields type (llm_response, tool_call,
// tool_result, message; required), tokens, cost_cents, model, tool, input,
// output, metadata (object of strings) and at_ms (milliseconds after the
// run's start; absent: the previous step's time, 0 for the first). The
// run's clock is driven by at_ms. The whole file is checked first: a bad
// line is an error naming its line number and nothing is recorded. A run
// stopped by a policy exits 0; steps after the blocked one are not
// reported. --checkpoint-key signs a checkpoint of the chain at the run's
// end. --shadow FILE evaluates a second policy file of the same tenant at
// every step, recording its decisions, never enforcing them. --retention
// keeps the steps' content in full (default), redacted (content policies'
// matches masked) or as hashes only. --json: {"run_id","tenant_id",
// "snapshot_id","status","termination_reason","stopped_at_step",
// "violation_policy_id","incident_id","steps_recorded","warnings",
// "retention","shadow"}; shadow is null without --shadow, else
// {"snapshot_id","would_stop_at_step","policy_id","reason","blocks",
// "change"}, the first three null when the shadow would not have stopped
// the run; stopped_at_step,
// violation_policy_id and incident_id are null when no policy stopped the
// run; warnings lists the findings that did not stop it (warn- and
// monitor-mode policies), each {"step_index","action","reason",
// "policy_id","source","threshold","limit","observed","message",
// "enforcement"}.
//
//	stopline runs [--tenant T] [--status S] [--json]
//
// Lists runs, newest first. --json: an array of runs as stored
// (governance.RunRecord: "run_id","tenant_id","policy_snapshot_id",
// "status","termination_reason","stopped_at_step",...).
//
//	stopline show RUN_ID [--tenant T] [--json]
//
// A run, its snapshot, and every step with its decision, the inflection
// point marked, and for a run with a shadow snapshot where the shadow
// would have stopped it and each step's shadow decision. --json: {"run",
// "snapshot","inflection","records","retention","shadow"}, the records
// being the whole hash chain, each step's record with its stored content,
// shadow the comparison (governance.ShadowOutcome) or null.
//
//	stopline incidents [--tenant T] [--json]
//
// Lists incidents, newest first. --json: an array of incident.Incident.
//
//	stopline explain RUN_ID --at TIME [--tenant T] [--json]
//
// What governance.Explain says of the instant TIME (RFC 3339, or +MS
// milliseconds after the run's start): the snapshot and thresholds in
// force, the last decision and the policy behind it, how close that step
// came to each threshold ("headroom": cost_cents 120 of 150) and which
// policy was closest to stopping the run, continuing or stopped and why,
// and the chain record that holds it. --json: the governance.Explanation
// (with "headroom", each {"policy_id","kind","threshold","limit",
// "observed","unit","fraction","enforcement",...}, and "closest").
//
//	stopline verify [RUN_ID] [--tenant T] [--checkpoint FILE] [--checkpoint-key FILE] [--log-head FILE --log-key FILE] [--json]
//
// Recomputes the hash chain of one run or of every run and checks the
// stored facts against it; without RUN_ID, also finds rows whose run's row
// is missing; exit 1 with one line per failed run naming the run and its
// first bad record. --checkpoint-key also checks the runs' stored
// checkpoints (each must be of the run it is stored with);
// --checkpoint FILE verifies that signed checkpoint's run against it (with
// RUN_ID, it must be that run's). --json: {"ok","tenants","runs","records",
// "checkpoints","failures"}, each failure {"tenant_id","run_id","seq","error"}.
// With --log-head FILE (from stopline log head) and --log-key PUB it
// verifies the head's tenant log instead (package tenantlog): every run and
// checkpoint the head covers is in the store, unchanged; the log's first
// leaves hash to the head's root; the log now extends it. Exit 1 with one
// line per failure naming the leaf and its run. --json: {"ok","tenant_id",
// "head_size","head_root_hash","runs","current_size","current_root_hash",
// "failures"}, each failure {"leaf","run_id","error"}.
//
//	stopline replay RUN_ID [--tenant T] [--json]
//
// Verifies the run, then evaluates each step again against its recorded
// snapshot (governance.Runner.Replay, with the built-in kinds and CEL
// expressions, no Go hooks) and compares every decision and finding with
// the stored ones: reproduced, partial (reproduced, but part of it taken
// from the records or read on text stored cut), mismatch, or
// not_replayable (withheld steps; text stored cut that a policy reads
// otherwise), or content_not_kept (a run that kept content redacted or as
// hashes, where a policy reads text). A run's shadow decisions are
// evaluated again too, a changed one a mismatch. Exit 0 when no decision
// differs; 1 when one does, one
// stderr line per step naming it with the stored and recomputed decision,
// or when the run does not verify. --json: {"tenant_id","run_id",
// "policy_snapshot_id","content_hash","run_status","retention","records",
// "not_replayable","steps","totals","shadow_snapshot_id","shadow_totals"},
// each step {"step_index","seq","outcome","stored","recomputed",
// "difference","gaps","shadow"}.
//
//	stopline approvals [--tenant T] [--json]
//	stopline approve HOLD_ID --by NAME --reason TEXT [--tenant T] [--json]
//	stopline deny HOLD_ID --by NAME --reason TEXT [--tenant T] [--json]
//
// List the steps held for a person's approval (a requires_approval
// policy, or a Go hook's HoldForApproval), oldest first, and answer one:
// approve lets the step pass, deny blocks it (policy_block). The answer
// (who, when, why) is recorded in the held step's trace record; a hold is
// answered once, and not after its deadline (then the step is blocked,
// timeout). The run's process may be another one, on another machine: it
// waits on the store (governance.Approve, Deny, PendingHolds). --json:
// an array of holds, or the hold answered: {"hold_id","tenant_id",
// "run_id","step_index","step_type","tool","cost_cents","policy_id",
// "source","message","requested_at","deadline","status","answered_by",
// "answer_reason","answered_at"}.
//
//	stopline kill run|agent|tenant ID --by NAME --reason TEXT [--tenant T] [--json]
//	stopline release run|agent|tenant ID --by NAME [--tenant T] [--json]
//	stopline kills [--tenant T] [--json]
//
// Pull, release and list kill switches (governance.Kill, Release,
// ActiveKills). While a switch is pulled, the next step of every run in
// its scope — one run, every run whose "agent" label is ID (give
// --tenant), every run of a tenant — is blocked with reason user_abort on
// every runner that watches the store (governance.WithKillSwitch), with
// an incident naming who pulled it and why; new runs in the scope are
// refused (governance.ErrKilled) until it is released. --json: the
// switch {"kill_id","tenant_id","scope","target","pulled_by","reason",
// "pulled_at","released_by","released_at"}, or an array of them.
//
//	stopline checkpoint RUN_ID --key FILE [-o FILE] [--tenant T] [--json]
//
// Signs a checkpoint of the run's chain (size and head hash, signed-note
// format) with the key given, stores it, and writes the note to -o FILE or
// stdout (a note already stored for that size is written again only if
// that very key signed it; if another key of the same name did, the new
// note is written but cannot be stored, and the exit status is 1). --json:
// {"tenant_id","run_id","size","head_hash","at","key_name","note"}.
//
//	stopline log head --key FILE [-o FILE] [--tenant T] [--json]
//
// Signs the tenant's transparency log tree head (size and root, signed-note
// format) with the key given and writes the note to -o FILE or stdout;
// --tenant is needed when the store holds several tenants. --json:
// {"tenant_id","size","root_hash","at","key_name","note"}.
//
//	stopline export evidence|soc2|debrief INCIDENT_ID [--format json|pdf] [-o FILE]
//	        [--sign-key FILE] [--by NAME] [--reason TEXT] [--tenant T] [--content]
//	        [--from TIME --to TIME] [--notes TEXT]
//
// Builds, seals (and with --sign-key signs) and writes an incident's
// evidence bundle (default json: a DSSE envelope whose payload is the
// bundle's canonical JSON), SOC 2 bundle (default pdf; --from/--to
// is the compliance period, RFC 3339 or YYYY-MM-DD, default the incident's
// calendar quarter; --notes auditor notes) or executive debrief (default
// pdf). --content includes step content (evidence and soc2). The file goes
// to -o FILE (- for stdout), by default to the bundle's own name in the
// current directory. Every export is recorded in the store's export log.
// --json: {"file","tenant_id","bundle_id","bundle_type","format",
// "bundle_hash","run_id","incident_id","key_id","exported_by",
// "export_reason","created_at"}.
//
//	stopline verify-bundle FILE [--pubkey FILE] [--hash HEX] [--checkpoint-key FILE] [--json]
//
// Verifies an exported JSON bundle offline; without --pubkey every check
// but the signature. JSON that readers can read two ways (a key twice, a
// key in another case, invalid UTF-8, a payload that is not the bundle's
// canonical JSON) is refused, and a carried checkpoint must be a
// well-formed checkpoint of the bundle's chain; with --checkpoint-key it
// must also be signed by that key (and be there). --hash requires the
// bundle hash (the payload's SHA-256) to be the one given. Exit 1 with one
// line per failed check. --json: {"ok","file","bundle_id","bundle_type",
// "bundle_hash","signature_verified","hash_matched","key_id","tenant_id",
// "run_id","incident_id","checkpoint","failures"}.
//
//	stopline keygen -o PREFIX [--checkpoint NAME] [--json]
//
// Writes an ed25519 key pair, the private key to PREFIX (0600) and the
// public key to PREFIX.pub, never overwriting: PEM keys for signing
// bundles, or, with --checkpoint NAME, signed-note keys named NAME for
// checkpoints. --json: {"private_key_file","public_key_file","key_id"}
// (or "key_name").
//
//	stopline serve [--addr HOST:PORT] [--trust-tenant-header [--tenant-header NAME] [--role-header NAME] [--actor-header NAME]] [--sign-key FILE] [--webhook URL [--webhook-bundles]] [--log-level LEVEL]
//
// Serves the HTTP API (export/httpapi) and the web console (package
// console, under /console/) over the database on --addr (default
// 127.0.0.1:8080). By default every request needs an API token
// (httpapi.TokenHandler; the console's sign-in page), which says the
// tenant and the role. With --trust-tenant-header the tenant, the
// console's role and the actor are taken from request headers
// (X-Stopline-Tenant, X-Stopline-Role, X-Stopline-Actor by default): put
// serve behind a proxy that authenticates callers and sets those headers.
// SIGINT or SIGTERM shuts it down gracefully (requests in flight get up
// to 15 s).
//
//	stopline token create --tenant T --role viewer|auditor|operator|admin [--expires 90d] [--name N] [--by NAME] [--json]
//	stopline token list [--tenant T] [--json]
//	stopline token revoke ID [--json]
//
// Make, list and revoke the API tokens of serve (package access). create
// prints the secret once ("stl_…"); the database keeps only its SHA-256.
// list never shows secrets; revoke refuses the token at once on every
// server sharing the database, and keeps it listed as revoked.
//
//	stopline migrate [--db PATH|URL] [--json]
//
// Applies the schema migrations the binary embeds that the database does
// not have yet, each once, in its own transaction, and prints the version
// it found and the one it left; a database already current is left alone,
// and a SQLite file that does not exist is created. It is safe while
// stores and replicas have the database open and when several processes
// migrate at once. A database migrated by a newer binary is refused (exit
// 1) and left alone. --json: {"database","from","to","migrated"}.
//
// The other commands migrate an older database when they open it, as the
// library's Open and New do by default: the command is a tool for looking
// at and verifying any database, a new file or one an upgraded binary
// meets first, and refusing it would only add a step that changes nothing
// the operator could decide otherwise (a migration only adds). Where an
// operator changes the schema and the applications open the database with
// WithoutMigrate (sqlite.WithoutMigrate, postgres.WithoutMigrate), this
// command, or sqlite.Migrate / postgres.Migrate, is how it is done, and
// its output is the record of what was applied.
//
// # Sinks
//
//	stopline run ... --webhook URL [--webhook-secret-file FILE] [--deliver-wait DURATION]
//	stopline serve ... --webhook URL [--webhook-secret-file FILE] [--webhook-bundles]
//	stopline outbox list [--tenant T] [--state pending|delivered|dead] [--run ID] [--sink NAME] [--limit N] [--json]
//	stopline outbox retry --tenant T DELIVERY...
//
// With --webhook, a run's end and its incident are written to the
// database's outbox in the transaction that records them (package sink),
// and delivered to URL as JSON signed as Standard Webhooks specifies
// (webhook-id, webhook-timestamp, webhook-signature "v1,<base64>"), with
// the secret "whsec_<base64>" read from $STOPLINE_WEBHOOK_SECRET or
// --webhook-secret-file, never from the command line. run waits up to
// --deliver-wait (30 s) for its deliveries and leaves the rest in the
// outbox (a warning says so); serve delivers the outbox in the
// background for as long as it runs, at least once, retried with
// exponential backoff and jitter, each delivery with the same webhook-id
// on every attempt; several serve processes on one PostgreSQL database
// never deliver the same one at once; with --webhook-bundles each
// incident's webhook carries its run's evidence bundle (data.bundle,
// sealed, signed with --sign-key). outbox list shows the deliveries and
// their state; a delivery is dead after 30 failed attempts (10 to 21
// hours), and outbox retry makes it due again.
//
// # Logs
//
// run logs what the runner does (governance.WithLogger: a run's start and
// each allowed step at debug, a step with findings and the run's end at
// info, a stop by a policy at warn, a failure at error; attributes such as
// run_id, step_index, policy_id, reason, never the step's text) at
// --log-level info or debug. At warn and error the runner's log is left
// out: the result on stdout and the error line already say all it would.
// Warnings that telemetry could not be exported are logged at warn.
//
// serve logs at info where it listens (msg="serve: listening"
// url=http://HOST:PORT console=… auth=token, or auth=trusted-header
// tenant_header=…) and when it shuts down; each request it refuses (4xx)
// at info, with the reason (reason=…: a token missing, unknown, expired
// or revoked, a role that does not allow the route, an id not found), and
// each that fails (5xx) at error, with its error, as msg="request
// refused" or "request failed" method=… path=… status=… duration=…; each request answered at debug; the HTTP
// server's own errors (a bad TLS handshake, a broken connection) at warn.
//
// # Telemetry
//
// run and serve set up OpenTelemetry from the standard environment
// variables, and nothing without them:
//
//   - OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER: a comma-separated
//     list of otlp (OTLP over HTTP/protobuf, configured by
//     OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS,
//     OTEL_EXPORTER_OTLP_TIMEOUT and the rest of OTEL_EXPORTER_OTLP_*,
//     signal-specific ones included, as the OpenTelemetry Go exporters
//     read them), console (JSON on stderr: one line per span; one document
//     per metric export) and none. Unset means none (the specification's
//     default is otlp: the command sends nothing unless asked). An unknown
//     exporter, and an OTLP protocol other than http/protobuf (gRPC is
//     not built in), are warnings and ignored.
//   - OTEL_LOGS_EXPORTER, the same list: each incident and each run's end
//     as an OpenTelemetry log record (otelgov.LogSink; console prints one
//     JSON line per record), delivered from the database's outbox like
//     --webhook (see Sinks).
//   - OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES set the resource
//     (default service.name=stopline, service.version from the build).
//   - OTEL_SDK_DISABLED=true turns it all off.
//   - OTEL_BSP_* (the batch span processor) and OTEL_METRIC_EXPORT_INTERVAL
//     and _TIMEOUT (the periodic metric reader) are read by the SDK.
//   - TRACEPARENT and TRACESTATE (W3C trace context) make the run's span
//     (run) a child of the span they name, so a run started by a CI job
//     or a script joins its trace.
//
// run exports each run as package otelgov does (a span for the run, a
// child span for each step, the stop and its incident as events, the
// stopline.* metrics; never a step's text). serve exports a server span
// for each request, named by its route (GET /runs/{id}) and joining the
// caller's traceparent, and the http.server.* metrics
// (go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp).
//
// Spans go through a batch processor and metrics through a periodic
// reader, so an exporter that fails or hangs never changes a run or an
// answer; export failures are warnings on stderr. When the command ends it
// flushes what is left, waiting at most 5 s (then warns that not all was
// exported); its exit status does not depend on it.
package main
