// Package postgres is the governance.Store for several agent-runtime
// replicas sharing one PostgreSQL database (github.com/jackc/pgx/v5). It
// has the semantics of store/sqlite and passes the same store/storetest
// suite; what differs is that any number of processes write at once, so
// every check that keeps the record consistent is made by the database,
// inside the statement that writes.
//
// The smallest use:
//
//	st, err := postgres.Open(ctx, "postgres://user@db.internal/stopline")
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	runner, err := governance.NewRunner(st)
//
// An application that has its own pgxpool.Pool passes it to New instead.
//
// What does not depend on the database — validation, the columns each
// value is stored in, the mapping of constraint violations to the
// governance errors, the reads, the export log, checkpoints, the ledger's
// calendar windows, the migrations runner — is internal/sqlstore's, and
// store/sqlite runs the same code; this package holds the pool, the
// one-statement append, the rolling ledger function and the SQL
// PostgreSQL says otherwise (querier.go).
//
// # Schema and migrations
//
// The schema is a series of migrations embedded in the package
// (migrations/NNNN_name.sql), applied by Open and New, each in its own
// transaction that first takes a transaction-level advisory lock
// (pg_advisory_xact_lock): replicas starting at once apply each migration
// exactly once, the others wait for it, and a replica that dies holding
// the lock releases it with its transaction. Applied versions are
// recorded in schema_migrations; a database migrated by a newer version
// of the package is refused (ErrSchemaTooNew) rather than written to.
// Where an operator changes the schema rather than every replica, the
// replicas open the database WithoutMigrate, which refuses one that is
// not current (ErrSchemaOutdated, naming both versions), and the operator
// runs Migrate or the stopline migrate command, which says what it
// applied.
// Every row carries its tenant, and every key, index and query includes
// it. Times are bigint unix nanoseconds (timestamptz keeps microseconds,
// and a record's time must read back as it was hashed). Record bodies are
// stored as the exact bytes their hash covers.
//
// # The chain is checked where it is stored
//
// AppendStep is one INSERT, committed on its own: one round trip, one
// commit. The AppendSteps that wait at the same moment in a Store (steps
// of concurrent runs) go out together, as one pgx batch that PostgreSQL
// runs as one implicit transaction: one round trip and one commit for
// all of them; if the database refuses any, that transaction is rolled
// back and each is sent again alone for its own answer. A step that finds
// none waiting is sent at once. A BEFORE INSERT trigger (records_chain) checks, inside that
// statement, that the record follows the hash stored at seq - 1 and that
// that record is not the run_end that closed the chain (for a run_start:
// that the run exists and has not ended); the primary key (tenant_id,
// run_id, seq) lets only one of two writers racing for the same seq in,
// whichever replica they run on. So a record that does not extend the
// stored head is refused (governance.ErrChainConflict) without a read
// before the write, without reading or locking the run's row, and
// without any lock shared by different runs: appends to different runs
// never wait for each other, and a run may move from one replica to
// another between steps. The check holds against raw SQL too. It costs
// one primary-key lookup: about 10 µs per insert on the development
// machine, the same as checking with INSERT ... SELECT ... WHERE EXISTS in
// the statement itself, and half of what also reading the run's row cost.
// A governed step (20 built-in policies, sealing, this INSERT) measured
// 1.07–1.18× a plain INSERT of the same row and commit over the same pool
// (BenchmarkGovernedStepVsRawPostgres), depending on the disk's fsync
// time.
//
// The runs row is not touched per step: while a run is open, its step
// count, totals, head hash and chain length are read from its last record
// (in the same statement as the row, so they agree). CreateRun sends the
// run and its run_start record in one batch, which PostgreSQL runs as one
// implicit transaction. CloseRun writes the blocking step, the incident,
// the run_end record and the run's final fields in one transaction that
// first locks the run's row (SELECT ... FOR UPDATE), so that replicas
// closing the same run queue for each other; the trigger checks each
// record against the one before it, this transaction's own included. It
// takes two round trips: BEGIN with the locking read, then the writes
// with COMMIT.
// PublishPolicy numbers versions under a per-tenant advisory lock.
//
// Triggers make the record append-only against any SQL, not only this
// package's: snapshots, policy versions, trace records, the export log and
// checkpoints refuse UPDATE, DELETE and TRUNCATE; runs and incidents are
// never deleted or truncated; an ended run never changes; a run's
// identity never changes; an incident changes only its lifecycle
// columns, and only forward. They raise SQLSTATEs of class SL, which the
// store maps to the governance errors (wrapped with %w). A writer who
// drops the triggers and rewrites a chain consistently is caught by
// signed checkpoints, kept outside the database.
//
// # Limits across runs
//
// The Store keeps the ledger that tenant_budget and tenant_rate_limit
// policies are checked against (governance.LedgerStore; see package
// prevention for the kinds and reserve-then-settle). It is built so that
// concurrent charges from any number of replicas never take a counter
// past the limit they were checked against:
//
//   - A calendar window (a UTC day or month) is one row of
//     ledger_windows per tenant, counter and window start. A charge is one
//     statement, INSERT ... ON CONFLICT DO UPDATE SET used = used + amount
//     WHERE used + amount <= limit RETURNING used: PostgreSQL waits for the
//     row's lock and evaluates the WHERE against the latest committed
//     total, so the check and the add are one atomic step, and no row
//     comes back when the charge does not fit. Settling and releasing are
//     single UPDATEs of the same row.
//   - A rolling window keeps one row per hold in ledger_events. A charge
//     is one call of the stopline_ledger_charge function, which takes a
//     transaction-level advisory lock on the tenant's counter, then sums
//     the holds in the window and inserts the new one only if the sum stays
//     within the limit: each statement of the function reads the latest
//     committed rows, after the lock. Charges of one counter are
//     serialized; charges of other counters and tenants never wait.
//
// The ledger's rows are counters, not evidence (every step's amounts are
// in its trace record), so they are updated in place and rolling holds
// older than two windows are pruned as charges go by.
//
// Each charge is its own commit, before the step's record is written, so
// a step under a tenant-wide limit costs one more round trip and commit
// per counter (BenchmarkGovernedStepTenantLimitsPostgres: about 0.6 ms
// instead of 0.22 ms with a daily budget on the development machine). A
// counter's lock is held until its charge has committed, so charges of
// one counter — one tenant's daily cost, say — go one at a time, at most
// one per commit latency (thousands per second on a disk that syncs in a
// fraction of a millisecond); other counters and tenants are not held up.
// A rolling window adds up its holds at each charge: cheap for rate
// limits, which hold at most their limit, and slower for rolling budgets
// with many steps in the window (use a calendar period for those).
//
// # Approval holds and kill switches
//
// The Store is a governance.HoldStore and a governance.KillStore (tables
// holds and kill_switches, schema 3): a hold is answered by one
// conditional UPDATE, so that of two replicas answering at once one wins
// and the other gets governance.ErrHoldAnswered; at most one switch is
// active per scope (a partial unique index). Triggers refuse any other
// change and every deletion, and announce each change with NOTIFY on the
// channel stopline_operator. The Store is a governance.Changes: from the
// first time a runner waits on a hold or watches the kill switches until
// Close, one connection is held in LISTEN stopline_operator (taken out of
// the pool, and opened again after a failure), so that an approval or a kill given on
// any replica reaches the others in milliseconds rather than at their
// next poll (BenchmarkKillReachesReplicaPostgres,
// BenchmarkApprovalReachesReplicaPostgres).
//
// # Concurrency
//
// A Store is safe for concurrent use. It holds no state between calls
// besides its pool: nothing is cached per run, so a run may be continued
// by another replica. Methods honour ctx; the Runner passes a context
// that outlives the caller's cancellation for final records.
package postgres
