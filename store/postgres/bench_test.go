package postgres_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore/sqlstoretest"
	"github.com/stopline/stopline/store/postgres"
	"github.com/stopline/stopline/store/storetest"
	"github.com/stopline/stopline/trace"
)

// Benchmarks of the write path, each on a database of its own:
//
//	STOPLINE_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//		go test -run xxx -bench . -benchtime 2000x ./store/postgres/
//
// BenchmarkRawInsertPostgres is the floor: one committed row of a step
// record's size, a plain INSERT over the Store's own pool into a table
// with the records table's columns and keys but no trigger.
// BenchmarkGovernedStepPostgres is one step through governance.Runner on
// top of it. BenchmarkGovernedStepVsRawPostgres interleaves the two and
// reports their ratio; the goal is ≤ 1.2.

// rawInserter inserts and commits one ~600-byte row with the columns of a
// step record over pool: no trigger, no chain check. It is the floor.
type rawInserter struct {
	pool *pgxpool.Pool
	body []byte
	hash string
	i    int
}

func newRawInserter(b *testing.B, pool *pgxpool.Pool) *rawInserter {
	if _, err := pool.Exec(ctx, `CREATE TABLE raw_records (
		tenant_id text NOT NULL, run_id text NOT NULL, seq integer NOT NULL, kind text NOT NULL,
		step_index integer NOT NULL, at_ns bigint, status text, inflection boolean NOT NULL,
		policy_id text, total_tokens bigint NOT NULL, total_cost_cents double precision NOT NULL,
		body bytea NOT NULL, prev_hash text NOT NULL, hash text NOT NULL, content text,
		PRIMARY KEY (tenant_id, run_id, seq));
		CREATE UNIQUE INDEX raw_records_one_inflection ON raw_records (tenant_id, run_id) WHERE inflection`); err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 600)
	return &rawInserter{pool: pool, body: body, hash: trace.ComputeHash(trace.GenesisHash, body)}
}

func (r *rawInserter) insert(b *testing.B) {
	if _, err := r.pool.Exec(ctx, `INSERT INTO raw_records VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		"acme", "RUN-1", int32(r.i), "step", int32(r.i), int64(r.i), "ok", false, "tools",
		int64(r.i*10), float64(r.i), r.body, r.hash, r.hash, `{"input":"in","output":"out"}`); err != nil {
		b.Fatal(err)
	}
	r.i++
}

// BenchmarkRawInsertPostgres is the floor: one committed row of a step
// record's size over the Store's pool.
func BenchmarkRawInsertPostgres(b *testing.B) {
	s := openStore(b, newDatabase(b))
	r := newRawInserter(b, s.Pool())
	b.SetBytes(int64(len(r.body)))
	b.ResetTimer()
	for range b.N {
		r.insert(b)
	}
}

// BenchmarkGovernedStepPostgres is one step through governance.Runner on
// the Postgres store: evaluate 20 built-in non-text policies, seal the
// record into the chain, and commit it (one INSERT, checked by the
// records_chain trigger) before returning.
func BenchmarkGovernedStepPostgres(b *testing.B) {
	s := openStore(b, newDatabase(b))
	run := sqlstoretest.StartBenchRun(b, s)
	b.ResetTimer()
	for range b.N {
		if _, err := run.Step(ctx, sqlstoretest.BenchStep); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGovernedStepVsRawPostgres alternates, in each iteration, one
// raw insert and one governed step over the same pool and database,
// timing each, so that both see the same server, WAL and cache. It
// reports raw-ns/op, governed-ns/op and their ratio (goal ≤ 1.2).
func BenchmarkGovernedStepVsRawPostgres(b *testing.B) {
	s := openStore(b, newDatabase(b))
	raw := newRawInserter(b, s.Pool())
	sqlstoretest.StepVsRaw(b, raw.insert, sqlstoretest.StartBenchRun(b, s))
}

// BenchmarkGovernedStepTenantLimitsPostgres is BenchmarkGovernedStepPostgres
// with a limit that spans runs added to the 20 policies: a daily cost
// budget (one conditional upsert per step), or a tenant-wide rate limit
// over a 1 s rolling window (one stopline_ledger_charge call per step,
// which adds up the holds of the last second: a few hundred here). Each is
// its own round trip and commit before the step's record.
func BenchmarkGovernedStepTenantLimitsPostgres(b *testing.B) {
	for _, tc := range []struct{ name, policy string }{
		{"daily-budget", `{"id":"daily-cost","kind":"tenant_budget","params":{"metric":"cost_cents","threshold":"max_cost_cents","period":"day"}}`},
		{"rate-limit-1s", `{"id":"tenant-pace","kind":"tenant_rate_limit","params":{"threshold":"max_steps_per_minute","window_seconds":1}}`},
	} {
		b.Run(tc.name, func(b *testing.B) {
			s := openStore(b, newDatabase(b))
			r, err := governance.NewRunner(s)
			if err != nil {
				b.Fatal(err)
			}
			doc, err := sqlstoretest.TwentyPolicies(b).MarshalJSON()
			if err != nil {
				b.Fatal(err)
			}
			var w struct {
				Policies   []json.RawMessage  `json:"policies"`
				Thresholds map[string]float64 `json:"thresholds"`
			}
			if err := json.Unmarshal(doc, &w); err != nil {
				b.Fatal(err)
			}
			ps := []string{tc.policy}
			for _, p := range w.Policies {
				ps = append(ps, string(p))
			}
			th, _ := json.Marshal(w.Thresholds)
			snap := storetest.TenantSnapshot(b, "acme", string(th), strings.Join(ps, ","))
			run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if _, err := run.Step(ctx, sqlstoretest.BenchStep); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkConcurrentRunsPostgres governs 1, 8 and 32 runs at once, each
// stepping from a goroutine of its own through governance.Runner with the
// 20 policies: as the Store writes (the AppendSteps waiting at one moment
// sent in one round trip as one transaction, group.go), and, in the same
// process, on a database of its own, with every step sent alone over the
// pool (each its own round trip and commit, as before). x-pool is the
// ratio of their steps/s:
//
//	go test -run '^$' -bench ConcurrentRunsPostgres -benchtime 3x -count 3 ./store/postgres/
func BenchmarkConcurrentRunsPostgres(b *testing.B) {
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			batched := openStore(b, newDatabase(b))
			pooled := openStore(b, newDatabase(b))
			postgres.BatchAppends(pooled, false)
			sqlstoretest.ConcurrentRuns(b, n, sqlstoretest.Writer{Store: batched}, sqlstoretest.Writer{Name: "pool", Store: pooled})
		})
	}
}

// unpipelined is a Store whose CloseRun takes a round trip per statement.
type unpipelined struct{ *postgres.Store }

func (u unpipelined) CloseRun(ctx context.Context, c governance.Close) error {
	return postgres.CloseRunUnpipelined(u.Store, ctx, c)
}

// BenchmarkFinishPostgres times Run.Finish (CloseRun: the run_end record
// and the run's final fields in one transaction that first locks the
// run's row) as the Store makes it, in two round trips, and as it did
// before, in four, alternating in each iteration on one database. It
// reports both and their ratio.
func BenchmarkFinishPostgres(b *testing.B) {
	s := openStore(b, newDatabase(b))
	snap := sqlstoretest.TwentyPolicies(b)
	piped, err := governance.NewRunner(s)
	if err != nil {
		b.Fatal(err)
	}
	plain, err := governance.NewRunner(unpipelined{s})
	if err != nil {
		b.Fatal(err)
	}
	var pipedNS, plainNS []time.Duration
	finish := func(r *governance.Runner) time.Duration {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := run.Step(ctx, sqlstoretest.BenchStep); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if _, err := run.Finish(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	b.ResetTimer()
	for i := range b.N {
		if i%2 == 0 {
			pipedNS, plainNS = append(pipedNS, finish(piped)), append(plainNS, finish(plain))
		} else {
			plainNS, pipedNS = append(plainNS, finish(plain)), append(pipedNS, finish(piped))
		}
	}
	p50, old50 := sqlstoretest.Percentile(pipedNS, 50), sqlstoretest.Percentile(plainNS, 50)
	b.ReportMetric(float64(p50.Microseconds()), "finish-p50-µs")
	b.ReportMetric(float64(old50.Microseconds()), "unpipelined-p50-µs")
	b.ReportMetric(float64(p50)/float64(old50), "ratio-p50")
}

// BenchmarkTenantLogAppendPostgres: what the tenant log's append adds to
// a run's end, against one governed step, over one database
// (sqlstoretest.LogAppendVsStep; the store without the log is a second
// handle on the same database). Goal: the append ≤ 5 % of a step.
func BenchmarkTenantLogAppendPostgres(b *testing.B) {
	url := newDatabase(b)
	step, with, without := openStore(b, url), openStore(b, url), openStore(b, url)
	postgres.WithoutTenantLog(without)
	sqlstoretest.LogAppendVsStep(b, sqlstoretest.StartBenchRun(b, step), with, without)
}
