package tenantlog_test

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	_ "github.com/mattn/go-sqlite3"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/internal/translog"
	"github.com/stopline/stopline/store/sqlite"
	"github.com/stopline/stopline/tenantlog"
)

// millionRuns is the size of the benchmarks' tenant log.
const millionRuns = 1 << 20

var (
	fixtureOnce sync.Once
	fixturePath string
	fixtureErr  error
)

// millionRunLog returns a SQLite file whose tenant acme has a log of
// millionRuns run_end leaves (runs RUN-0000000, ...), built once: the leaves and stored hashes computed in memory with the
// store's own append (translog.Frontier) and written with plain SQL in
// one transaction; the runs themselves are not stored (a proof does not
// read them).
func millionRunLog(b *testing.B) string {
	fixtureOnce.Do(func() {
		// Kept between runs (it takes a while to build): remove the
		// directory after a schema change.
		dir := filepath.Join(os.TempDir(), "stopline-tenantlog-bench-v1")
		fixturePath = filepath.Join(dir, "million.db")
		if _, err := os.Stat(fixturePath); err == nil {
			return
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			fixtureErr = err
			return
		}
		if fixtureErr = buildLog(b, fixturePath+".tmp", millionRuns); fixtureErr == nil {
			fixtureErr = os.Rename(fixturePath+".tmp", fixturePath)
		}
	})
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixturePath
}

func buildLog(b *testing.B, path string, n int) error {
	st, err := sqlite.Open(ctx, path, sqlite.WithSynchronous(sqlite.Normal))
	if err != nil {
		return err
	}
	st.Close()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000&_synchronous=OFF")
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	insLeaf, err := tx.Prepare(`INSERT INTO tenant_log_leaves (tenant_id, idx, run_id, kind, seq, head_hash, key_name, note_hash)
		VALUES ('acme', ?, ?, 'run_end', 3, ?, '', '')`)
	if err != nil {
		return err
	}
	insHash, err := tx.Prepare(`INSERT INTO tenant_log_hashes (tenant_id, idx, hash) VALUES ('acme', ?, ?)`)
	if err != nil {
		return err
	}
	var f translog.Frontier
	var idx int64
	for i := range n {
		sum := sha256.Sum256([]byte(fmt.Sprint(i)))
		l := translog.Leaf{TenantID: "acme", RunID: fmt.Sprintf("RUN-%07d", i), Kind: translog.KindRunEnd, Seq: 3, Head: hex.EncodeToString(sum[:])}
		h, err := l.Hash()
		if err != nil {
			return err
		}
		var stored []tlog.Hash
		if stored, f, err = f.Append(int64(i), h); err != nil {
			return err
		}
		if _, err := insLeaf.Exec(i, l.RunID, l.Head); err != nil {
			return err
		}
		for _, s := range stored {
			if _, err := insHash.Exec(idx, s[:]); err != nil {
				return err
			}
			idx++
		}
	}
	if _, err := tx.Exec(`INSERT INTO tenant_logs (tenant_id, size, frontier) VALUES ('acme', ?, ?)`, n, f.Bytes()); err != nil {
		return err
	}
	return tx.Commit()
}

// BenchmarkInclusionProofMillionRuns: the inclusion proof of one run in a
// tenant log of 2^20 runs on a SQLite file, as an export makes it: the
// run's leaves (by run id), the current tree head, the proof from the
// stored hashes, checked. Goal: ≤ 1 ms. "check" is the offline check of
// a proof alone (bundle.Verify's share), in the same process.
//
//	go test -run '^$' -bench InclusionProof -benchtime 2000x -count 3 ./tenantlog/
func BenchmarkInclusionProofMillionRuns(b *testing.B) {
	path := millionRunLog(b)
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	var last tenantlog.Proof
	b.Run("prove", func(b *testing.B) {
		for range b.N {
			run := fmt.Sprintf("RUN-%07d", rng.IntN(millionRuns))
			leaves, err := tenantlog.RunLeaves(ctx, st, "acme", run)
			if err != nil || len(leaves) != 1 {
				b.Fatalf("leaves of %s: %v %v", run, leaves, err)
			}
			head, err := tenantlog.Current(ctx, st, "acme")
			if err != nil {
				b.Fatal(err)
			}
			if last, err = tenantlog.Prove(ctx, st, head, leaves[0]); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(last.Hashes)), "proof-hashes")
	})
	b.Run("check", func(b *testing.B) {
		for range b.N {
			if err := tenantlog.CheckProof(last); err != nil {
				b.Fatal(err)
			}
		}
	})
}

var _ governance.Store = (*sqlite.Store)(nil)
