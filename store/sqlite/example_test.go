package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/sqlite"
)

// A runner recording into a SQLite file: three steps pass, the fourth is
// stopped by the step limit, and the file holds the stop.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "stopline")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	st, err := sqlite.Open(ctx, filepath.Join(dir, "stopline.db"))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()

	snap, err := snapshot.New("acme", []snapshot.Policy{
		{ID: "step-limit", Kind: "budget", Params: []byte(`{"metric": "steps", "threshold": "max_steps"}`)},
	}, snapshot.Thresholds{"max_steps": 3}, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	runner, err := governance.NewRunner(st)
	if err != nil {
		log.Fatal(err)
	}
	run, err := runner.Start(ctx, governance.StartOptions{Snapshot: snap, RunID: "run-1"})
	if err != nil {
		log.Fatal(err)
	}
	for {
		_, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 100})
		var v *governance.Violation
		if errors.As(err, &v) {
			break
		} else if err != nil {
			log.Fatal(err)
		}
	}

	rec, err := st.Run(ctx, "acme", "run-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rec.Status, rec.TerminationReason, *rec.StoppedAtStep, rec.ViolationPolicyID)
	// Output: failed_policy budget_exceeded 3 step-limit
}

// Open with the defaults (WAL, synchronous=FULL, migrations applied) or
// with options; a bad option is refused here.
func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "stopline")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	st, err := sqlite.Open(ctx, filepath.Join(dir, "stopline.db"), sqlite.WithSynchronous(sqlite.Normal))
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	_, err = sqlite.Open(ctx, filepath.Join(dir, "other.db"), sqlite.WithBusyTimeout(-time.Second))
	fmt.Println(err)
	// Output: sqlite: WithBusyTimeout(-1s): want 0 to 596h31m23.647s
}

// New records through the application's own *sql.DB, which must be set
// up as a Store's write connection: one connection, WAL, synchronous=FULL,
// foreign keys, BEGIN IMMEDIATE transactions. Close leaves it open.
func ExampleNew() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "stopline")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "app.db")+
		"?_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_txlock=immediate&_busy_timeout=5000")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)

	st, err := sqlite.New(ctx, db)
	if err != nil {
		log.Fatal(err)
	}
	runner, err := governance.NewRunner(st)
	if err != nil {
		log.Fatal(err)
	}
	snap, err := snapshot.New("acme", []snapshot.Policy{
		{ID: "step-limit", Kind: "budget", Params: []byte(`{"metric": "steps", "threshold": "max_steps"}`)},
	}, snapshot.Thresholds{"max_steps": 10}, time.Now())
	if err != nil {
		log.Fatal(err)
	}
	run, err := runner.Start(ctx, governance.StartOptions{Snapshot: snap, RunID: "run-1"})
	if err != nil {
		log.Fatal(err)
	}
	if _, err := run.Step(ctx, governance.StepInput{Type: prevention.StepLLMResponse, Tokens: 10}); err != nil {
		log.Fatal(err)
	}
	st.Close()

	// The application's connection is still open, and sees the run.
	var steps int
	if err := db.QueryRow(`SELECT COUNT(*) FROM records WHERE run_id = 'run-1' AND kind = 'step'`).Scan(&steps); err != nil {
		log.Fatal(err)
	}
	fmt.Println(steps, "step recorded")

	// A pool of connections cannot be the single writer.
	db.SetMaxOpenConns(4)
	_, err = sqlite.New(ctx, db)
	fmt.Println(err)
	// Output:
	// 1 step recorded
	// sqlite: New: the *sql.DB may open 4 connections; the Store writes through exactly one: call SetMaxOpenConns(1)
}

// Where an operator migrates the schema, applications open the file with
// WithoutMigrate: an outdated file is refused until Migrate (or stopline
// migrate) brings it up to date.
func ExampleMigrate() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "stopline")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "stopline.db")

	_, err = sqlite.Open(ctx, path, sqlite.WithoutMigrate())
	fmt.Println(errors.Is(err, sqlite.ErrSchemaOutdated))

	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	from, to, err := sqlite.Migrate(ctx, db)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("migrated from version %d to the latest: %v\n", from, to > from)

	st, err := sqlite.Open(ctx, path, sqlite.WithoutMigrate())
	if err != nil {
		log.Fatal(err)
	}
	defer st.Close()
	fmt.Println("opened")
	// Output:
	// true
	// migrated from version 0 to the latest: true
	// opened
}
