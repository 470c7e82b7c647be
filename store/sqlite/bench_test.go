package sqlite_test

import (
	"bytes"
	"database/sql"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/sqlstore/sqlstoretest"
	"github.com/stopline/stopline/store/sqlite"
	"github.com/stopline/stopline/trace"
)

// Benchmarks of the write path, on a fresh file in each durability mode.
// Run them with a fixed count so that every mode writes the same number of
// commits into a WAL of the same size:
//
//	go test -run xxx -bench . -benchtime 2000x ./store/sqlite/
//
// BenchmarkRawInsert is the floor: what one committed row of a step
// record's size costs with plain database/sql and the same pragmas.
// BenchmarkAppendStep is the Store's hot path on top of it (validation,
// the chain-check trigger, the foreign key). The difference is the price
// of checking the chain inside the write.

// benchModel pads step records to about 600 bytes, the size of a step
// with a decision, a model name and a content hash in practice.
var benchModel = strings.Repeat("m", 210)

var modes = []struct {
	name string
	sync sqlite.Synchronous
}{
	{"full", sqlite.Full},
	{"normal", sqlite.Normal},
}

// rawInserter inserts and commits one ~600-byte row with the columns of a
// step record, with plain database/sql and the store's pragmas: no
// triggers, no foreign keys, no validation. It is the floor.
type rawInserter struct {
	db   *sql.DB
	ins  *sql.Stmt
	body []byte
	hash string
	i    int
}

func newRawInserter(b *testing.B, sync sqlite.Synchronous) *rawInserter {
	path := filepath.Join(b.TempDir(), "raw.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_journal_mode=WAL&_synchronous="+sync.String()+
		"&_busy_timeout=5000&_foreign_keys=1&_txlock=immediate")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE TABLE records (
		tenant_id TEXT NOT NULL, run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
		step_index INTEGER NOT NULL, at_ns INTEGER, status TEXT, inflection INTEGER NOT NULL,
		policy_id TEXT, total_tokens INTEGER NOT NULL, total_cost_cents REAL NOT NULL,
		body BLOB NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL, content TEXT,
		PRIMARY KEY (tenant_id, run_id, seq)) STRICT;
		CREATE UNIQUE INDEX records_one_inflection ON records (tenant_id, run_id) WHERE inflection = 1`); err != nil {
		b.Fatal(err)
	}
	ins, err := db.Prepare(`INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ins.Close() })
	body := bytes.Repeat([]byte("x"), 600)
	return &rawInserter{db: db, ins: ins, body: body, hash: trace.ComputeHash(trace.GenesisHash, body)}
}

func (r *rawInserter) insert(b *testing.B) {
	if _, err := r.ins.Exec("acme", "RUN-1", r.i, "step", r.i, int64(r.i), "ok", 0, "tools",
		int64(r.i*10), float64(r.i), r.body, r.hash, r.hash, `{"input":"in","output":"out"}`); err != nil {
		b.Fatal(err)
	}
	r.i++
}

// BenchmarkRawInsert is the floor: one committed row of a step record's
// size with plain database/sql and the same pragmas.
func BenchmarkRawInsert(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			r := newRawInserter(b, m.sync)
			b.SetBytes(int64(len(r.body)))
			b.ResetTimer()
			for range b.N {
				r.insert(b)
			}
		})
	}
}

// BenchmarkAppendStep appends (and commits) one step record to an open run
// through the Store: checks in Go, then one INSERT whose trigger checks
// the chain.
func BenchmarkAppendStep(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			s := openStore(b, filepath.Join(b.TempDir(), "store.db"), sqlite.WithSynchronous(m.sync))
			c := startRun(b, s, newSnap(b, "acme"), "RUN-1", governance.StatusRunning)
			c.model = benchModel
			ws := make([]governance.StepWrite, b.N)
			for i := range ws {
				ws[i] = c.next(false)
			}
			b.SetBytes(int64(len(ws[0].Body)))
			b.ResetTimer()
			for i := range ws {
				if err := s.AppendStep(ctx, ws[i]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAppendStepParallel appends steps from GOMAXPROCS goroutines,
// each to a run of its own: the single write connection serializes them,
// one commit each.
func BenchmarkAppendStepParallel(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			s := openStore(b, filepath.Join(b.TempDir(), "store.db"), sqlite.WithSynchronous(m.sync))
			snap := newSnap(b, "acme")
			runs := runtime.GOMAXPROCS(0)
			chains := make([]*chain, runs)
			for i := range chains {
				chains[i] = startRun(b, s, snap, fmt.Sprintf("RUN-%d", i), governance.StatusRunning)
				chains[i].model = benchModel
			}
			var next atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c := chains[next.Add(1)-1] // RunParallel starts GOMAXPROCS goroutines
				for pb.Next() {
					if err := s.AppendStep(ctx, c.next(false)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkGovernedStep is one step through governance.Runner on the
// SQLite store: evaluate 20 built-in non-text policies, seal the record
// into the chain, and commit it durably before returning. Compare with
// BenchmarkRawInsert in the same run (see BENCHMARKS.md); the goal is
// ≤ 1.15× in full mode and ≤ 1.25× in normal mode.
func BenchmarkGovernedStep(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			s := openStore(b, filepath.Join(b.TempDir(), "store.db"), sqlite.WithSynchronous(m.sync))
			run, in := sqlstoretest.StartBenchRun(b, s), sqlstoretest.BenchStep
			b.ResetTimer()
			for range b.N {
				if _, err := run.Step(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkGovernedStepVsRaw alternates, in each iteration, one raw insert
// (on its own file) and one governed step (on the store's file), timing
// each, so that both see the same disk, page cache and WAL growth. It
// reports raw-ns/op, governed-ns/op and their ratio: the goal is ≤ 1.15
// in full mode and ≤ 1.25 in normal mode.
func BenchmarkGovernedStepVsRaw(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			raw := newRawInserter(b, m.sync)
			s := openStore(b, filepath.Join(b.TempDir(), "store.db"), sqlite.WithSynchronous(m.sync))
			sqlstoretest.StepVsRaw(b, raw.insert, sqlstoretest.StartBenchRun(b, s))
		})
	}
}

// BenchmarkConcurrentRuns governs 1, 8 and 32 runs at once on one file in
// FULL mode (the default), each stepping from a goroutine of its own
// through governance.Runner with the 20 policies: with group commit, and,
// in the same process, on a file of its own, with every step committed
// alone (the writer before group commit: one commit, one fsync, per
// step). It reports steps/s of each, their ratio (x-alone: goal ≥ 2.5 at
// 8 runs, ≥ 5 at 32), p50 and p99 step latency, p99 against one run's
// (p99-x-1run: goal ≤ 4 at 32 runs) and commits per step:
//
//	go test -run '^$' -bench ConcurrentRuns -benchtime 3x -count 3 ./store/sqlite/
func BenchmarkConcurrentRuns(b *testing.B) {
	for _, n := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("runs=%d", n), func(b *testing.B) {
			s := openStore(b, filepath.Join(b.TempDir(), "group.db"))
			alone := openStore(b, filepath.Join(b.TempDir(), "alone.db"))
			sqlite.CommitAlone(alone, true)
			sqlstoretest.ConcurrentRuns(b, n,
				sqlstoretest.Writer{Store: s, Commits: func() int64 { return sqlite.Commits(s) }},
				sqlstoretest.Writer{Name: "alone", Store: alone, Commits: func() int64 { return sqlite.Commits(alone) }})
		})
	}
}

// BenchmarkTenantLogAppend: what the tenant log's append adds to a run's
// end, against one governed step, in each durability mode, on files of
// their own in one process (sqlstoretest.LogAppendVsStep). Goal: the
// append ≤ 5 % of a step.
//
//	go test -run '^$' -bench TenantLogAppend -benchtime 3000x -count 3 ./store/sqlite/
func BenchmarkTenantLogAppend(b *testing.B) {
	for _, m := range modes {
		b.Run(m.name, func(b *testing.B) {
			dir := b.TempDir()
			step := openStore(b, filepath.Join(dir, "step.db"), sqlite.WithSynchronous(m.sync))
			with := openStore(b, filepath.Join(dir, "with.db"), sqlite.WithSynchronous(m.sync))
			without := openStore(b, filepath.Join(dir, "without.db"), sqlite.WithSynchronous(m.sync))
			sqlite.WithoutTenantLog(without)
			sqlstoretest.LogAppendVsStep(b, sqlstoretest.StartBenchRun(b, step), with, without)
		})
	}
}
