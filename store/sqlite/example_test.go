package sqlite_test

import (
	"context"
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
