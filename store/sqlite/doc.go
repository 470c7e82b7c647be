// Package sqlite is the default governance.Store: one SQLite file, no
// server (github.com/mattn/go-sqlite3, so it needs cgo).
//
// The smallest use:
//
//	st, err := sqlite.Open(ctx, "stopline.db")
//	if err != nil {
//		return err
//	}
//	defer st.Close()
//	runner, err := governance.NewRunner(st)
//
// An application that opens its database itself passes its *sql.DB to
// New instead, which checks that it is set up as Open sets up its own
// write connection (see New) and refuses it otherwise.
//
// # Durability
//
// The file runs in WAL mode. With Full, the default, every commit is
// fsynced before the method that made it returns: a step the agent was
// told about survives a crash of the process or of the machine. Steps of
// concurrent runs share commits (see Group commit), so a commit, and its
// fsync, may hold many steps; each returns after the one that holds it. With
// WithSynchronous(Normal) commits are fsynced only at WAL checkpoints,
// several times faster per step; the last commits may be lost on power
// loss (never on a crash of the process alone), and the database is never
// corrupted.
//
// # Concurrency
//
// A Store is safe for concurrent use. SQLite allows one writer per file,
// and a transaction that reads and then writes fails with "database is
// locked" when another writer got in between, whatever the busy timeout.
// So every write goes through one connection, in BEGIN IMMEDIATE
// transactions (which take the write lock before their first read) or
// single statements, and concurrent writers of one Store queue for that
// connection instead of failing. Reads use a separate pool of query-only
// connections that WAL lets run while the writer commits; a read sees
// every write committed before it started, by this Store or any other
// handle or process on the file. Several Stores and processes may share a
// file: their writers wait for each other up to the busy timeout.
//
// # Group commit
//
// AppendStep, CreateRun and CloseRun join one queue per Store. The write
// at its front takes every write waiting at that moment (at most 256)
// and writes them, in queue order, in one BEGIN IMMEDIATE transaction
// with one commit; meanwhile the next writes queue, and the first of them
// leads the next batch. A write that finds the queue empty is written at
// once, alone, exactly as without batching: one run never waits for a
// batch to fill. A write refused in the batch (its record does not extend
// the head, a constraint refuses it) fails alone and the others commit:
// SQLite undoes a refused statement by itself, and CreateRun and CloseRun
// run inside a savepoint. A write whose error loses the transaction (I/O,
// a full disk) fails, and the others are written again in a new one; a
// failed BEGIN or COMMIT fails every write of its batch. A write whose
// context ends while it waits leaves the queue unwritten; once its batch
// has begun, it waits for that batch. With 8 runs at once a commit holds
// about 4 steps, with 32 about 16 (BenchmarkConcurrentRuns).
//
// # The chain head is kept in memory
//
// AppendStep is one INSERT (committed alone when nothing else waits,
// unless the step also starts a queued run). Before it, the Store checks that the record extends the
// run's chain head, which it keeps in memory for every open run it has
// written or read (reading it from the file the first time, with the
// run's status): its seq is the next and its prev_hash the head's hash,
// else governance.ErrChainConflict; an ended run is governance.ErrRunEnded.
// The primary key (tenant_id, run_id, seq) refuses a seq already taken,
// so a head made stale by another handle or process on the same file can
// only make this handle pick a taken seq — refused — and never lets a
// record break the chain. Checking in memory rather than in a trigger
// saves a lookup per step (about 2 µs, measured). The runs row is not
// touched per step: while a run is open, its step count, totals, head hash
// and chain length are read from its last record. CloseRun reads the
// head inside its immediate transaction and writes the blocking step,
// the incident, the run_end record and the run's final fields in one
// transaction (or one savepoint of a batch); it comes after every write
// of its run queued before it. The heads change only when a commit
// succeeded: a batch that rolls back leaves them as they were, and after
// a failed commit the runs it touched are read from the file again.
//
// # Schema
//
// The schema is a series of migrations embedded in the package
// (migrations/NNNN_name.sql), applied by Open and New in one transaction
// each and recorded in schema_migrations. With WithoutMigrate they leave
// the schema to an operator instead, and refuse a file that is not current
// (ErrSchemaOutdated); Migrate, or the stopline migrate command, applies
// the migrations and says which. A file migrated by a newer version of the
// package is refused (ErrSchemaTooNew) rather than written to. Every row
// carries its tenant, and every key and query includes it; times are unix
// nanoseconds. Record bodies are stored as the exact bytes their hash
// covers.
//
// Triggers make the record append-only against any SQL, not only this
// package's: snapshots, policy versions, trace records and the export log
// refuse UPDATE and DELETE; runs and incidents are never deleted; an ended
// run never changes; an incident changes only its lifecycle columns, and
// only forward. A writer who drops the triggers and rewrites a chain
// consistently is caught by signed checkpoints, kept outside the database.
//
// # Shared with the PostgreSQL store
//
// What does not depend on the database — validation, the columns each
// value is stored in, the mapping of constraint violations to the
// governance errors, the reads, the export log, checkpoints, the ledger's
// calendar windows, the migrations runner — is internal/sqlstore's, and
// store/postgres runs the same code. This package holds what SQLite needs
// of its own: the connections and their pragmas, the chain heads kept in
// memory and the step's INSERT (insertStep, the one place it runs), the
// rolling ledger windows, and the SQL SQLite says otherwise
// (querier.go).
//
// The Store is also a governance.HoldStore and a governance.KillStore
// (approval holds and kill switches, tables holds and kill_switches): a
// hold is answered by one conditional UPDATE, and triggers refuse any
// other change and every deletion. Changes made through a handle wake the
// runners waiting on it at once (governance.Changes); another process's
// are seen at the runner's next poll (WithHolds, WithKillSwitch: 250 ms
// by default).
package sqlite
