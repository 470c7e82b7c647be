package sqlstore

import (
	"fmt"
	"io/fs"
)

// Violation is what a driver's error means to a store: which constraint
// or trigger refused a write.
type Violation int

// Violations a Dialect's Classify reports.
const (
	// NoViolation: another error, or none.
	NoViolation Violation = iota
	// PrimaryKeyTaken: a row with the same primary key is stored.
	PrimaryKeyTaken
	// UniqueTaken: another unique index refused the row (for records:
	// the run's one inflection point, or its one run_end).
	UniqueTaken
	// MissingReference: a foreign key names no row.
	MissingReference
	// RunEnded: a trigger refused a write to an ended run.
	RunEnded
	// ChainBroken: a trigger found that a record does not follow the
	// hash stored at seq - 1.
	ChainBroken
	// NoSuchRun: a trigger found no run for a run_start record.
	NoSuchRun
	// IncidentBackwards: a trigger refused to move an incident's status
	// back.
	IncidentBackwards
)

// Dialect is what a database says its own way. The SQL fields use
// numbered placeholders, as everywhere in this package.
type Dialect struct {
	// Name starts every error ("sqlite", "postgres").
	Name string
	// Classify tells which constraint or trigger, if any, refused a
	// write with err.
	Classify func(err error) Violation

	// RunSelect selects a run r (the columns scanRun reads) with the last
	// record l of its chain; WHERE and ORDER BY clauses on r follow it.
	RunSelect string
	// InsertionOrder is the column of runs, incidents and exports that
	// orders rows created at the same instant ("rowid", "ord").
	InsertionOrder string
	// RunStatusForClose reads a run's status ($1 tenant, $2 run) as the
	// first statement of CloseRun's transaction, locking the run's row
	// where other writers could close it meanwhile, and with it the size
	// and frontier of the tenant's log (NULL when the tenant has none),
	// locked as TenantLogForUpdate locks them.
	RunStatusForClose string
	// TenantLogForUpdate reads the size and frontier of a tenant's log
	// ($1 tenant), locking its row until the transaction ends where other
	// writers could append meanwhile.
	TenantLogForUpdate string
	// CheckChainOnClose makes CloseRun read the run's head in its
	// transaction and check that its records extend it, for a database
	// without a trigger that checks every record.
	CheckChainOnClose bool
	// CloseRunSQL stores a run's final fields ($1 tenant, $2 run, $3
	// status, $4 reason, $5 stopped-at step, $6 violating policy, $7
	// incident, $8 message, $9 ended_at, $10 started_at if it was queued,
	// $11 head hash, $12 chain length), with the step count and totals of
	// its last step record.
	CloseRunSQL string
	// ClaimLock ends the subquery that picks the deliveries a claim
	// leases (" FOR UPDATE SKIP LOCKED"), so that concurrent claims skip
	// each other's rows; empty where one writer excludes the others.
	ClaimLock string
	// LockPublish, if not empty, is run ($1 tenant) first in
	// PublishPolicy's transaction, so that concurrent publishes of a
	// tenant number their versions one after the other; empty where the
	// transaction itself excludes other writers.
	LockPublish string

	// Schema holds the migrations, migrations/NNNN_name.sql numbered 1,
	// 2, ... without gaps, each applied once in its own transaction.
	Schema fs.FS
	// SchemaTableExists tells (a boolean) whether
	// schema_migrations exists; CreateSchemaTable creates it if not;
	// LockMigrate, if not empty, is run first in each migration's
	// transaction so that concurrent openers apply it once.
	SchemaTableExists string
	CreateSchemaTable string
	LockMigrate       string
	// ErrSchemaTooNew and ErrSchemaOutdated are the store's sentinels
	// that schema errors wrap.
	ErrSchemaTooNew   error
	ErrSchemaOutdated error
}

// errorf is fmt.Errorf with the dialect's name in front.
func (d *Dialect) errorf(format string, args ...any) error {
	return fmt.Errorf("%s: "+format, append([]any{d.Name}, args...)...)
}
