package main_test

import (
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/stopline/stopline/internal/translog"
)

// forkLog rewrites tenant acme's log in the database file without the
// leaves of run, as a writer who dropped the triggers can: a sound tree of
// the remaining leaves.
func forkLog(t *testing.T, path, run string) {
	t.Helper()
	tamperAll(t, path) // drops the triggers
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT run_id, kind, seq, head_hash, key_name, note_hash FROM tenant_log_leaves
		WHERE tenant_id = 'acme' AND run_id != ? ORDER BY idx`, run)
	if err != nil {
		t.Fatal(err)
	}
	var leaves []translog.Leaf
	for rows.Next() {
		l := translog.Leaf{TenantID: "acme"}
		if err := rows.Scan(&l.RunID, &l.Kind, &l.Seq, &l.Head, &l.KeyName, &l.NoteHash); err != nil {
			t.Fatal(err)
		}
		leaves = append(leaves, l)
	}
	rows.Close()
	exec := func(q string, args ...any) {
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec(`DELETE FROM tenant_log_leaves WHERE tenant_id = 'acme'`)
	exec(`DELETE FROM tenant_log_hashes WHERE tenant_id = 'acme'`)
	var f translog.Frontier
	var idx int64
	for i, l := range leaves {
		h, err := l.Hash()
		if err != nil {
			t.Fatal(err)
		}
		var stored []tlog.Hash
		if stored, f, err = f.Append(int64(i), h); err != nil {
			t.Fatal(err)
		}
		exec(`INSERT INTO tenant_log_leaves (tenant_id, idx, run_id, kind, seq, head_hash, key_name, note_hash)
			VALUES ('acme', ?, ?, ?, ?, ?, ?, ?)`, i, l.RunID, string(l.Kind), l.Seq, l.Head, l.KeyName, l.NoteHash)
		for _, s := range stored {
			exec(`INSERT INTO tenant_log_hashes (tenant_id, idx, hash) VALUES ('acme', ?, ?)`, idx, s[:])
			idx++
		}
	}
	exec(`UPDATE tenant_logs SET size = ?, frontier = ? WHERE tenant_id = 'acme'`, len(leaves), f.Bytes())
}

// TestVerifyLogHead: a signed tree head verifies the tenant's runs and
// the log's growth; a run deleted with everything it left, which verify
// alone cannot see, fails it naming the run; so does a log rewritten
// without the run.
func TestVerifyLogHead(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	key := filepath.Join(c.dir, "log.key")
	c.ok("keygen", "-o", key, "--checkpoint", "log-key")
	var runs []runResult
	for _, kind := range []string{"budget_steps", "budget_tokens", "budget_steps"} {
		runs = append(runs, c.runSteps(kind, kind))
	}
	head := filepath.Join(c.dir, "acme.loghead")
	out := c.ok("log", "head", "--key", key, "-o", head)
	if !strings.Contains(out, "tenant acme, 3 leaves") {
		t.Errorf("log head output:\n%s", out)
	}
	if out := c.ok("log", "head", "--key", key, "--tenant", "acme"); !strings.HasPrefix(out, "stopline/tenant-log/v1\nacme\n3\n") {
		t.Errorf("log head to stdout:\n%s", out)
	}
	if out := c.ok("verify", "--log-head", head, "--log-key", key+".pub"); !strings.Contains(out, "3 leaves verified (3 runs") {
		t.Errorf("verify --log-head: %q", out)
	}
	// The log grows: the older head still verifies, consistently.
	runs = append(runs, c.runSteps("budget_tokens", "budget_tokens"))
	var res struct {
		OK          bool   `json:"ok"`
		HeadSize    int64  `json:"head_size"`
		Runs        int    `json:"runs"`
		CurrentSize int64  `json:"current_size"`
		CurrentRoot string `json:"current_root_hash"`
	}
	c.okJSON(&res, "verify", "--log-head", head, "--log-key", key+".pub")
	if !res.OK || res.HeadSize != 3 || res.CurrentSize != 4 || res.Runs != 3 || len(res.CurrentRoot) != 64 {
		t.Errorf("verify --log-head --json after the log grew: %+v", res)
	}

	// Usage.
	c.fails(2, []string{"--log-key"}, "verify", "--log-head", head)
	c.fails(2, []string{"--log-head"}, "verify", runs[0].RunID, "--log-head", head, "--log-key", key+".pub")
	c.fails(2, []string{"--key"}, "log", "head")
	// Another key.
	other := filepath.Join(c.dir, "other.key")
	c.ok("keygen", "-o", other, "--checkpoint", "log-key")
	c.fails(1, []string{"tenantlog"}, "verify", "--log-head", head, "--log-key", other+".pub")

	// Delete run 1 with everything it left: verify alone finds nothing.
	victim := runs[1].RunID
	forked := newCLI(t) // a copy of the database, forked below
	copyFile(t, c.db, forked.db)
	tamperAll(t, c.db,
		fmt.Sprintf(`DELETE FROM incidents WHERE run_id = '%s'`, victim),
		fmt.Sprintf(`DELETE FROM records WHERE run_id = '%s'`, victim),
		fmt.Sprintf(`DELETE FROM runs WHERE run_id = '%s'`, victim))
	c.ok("verify")
	c.fails(1, []string{victim, "leaf 1", "missing from the store"}, "verify", "--log-head", head, "--log-key", key+".pub")

	// The same deletion, and the log rewritten without the run, grown
	// back past the head's size by new runs: the head's root is not the
	// log's.
	tamperAll(t, forked.db,
		fmt.Sprintf(`DELETE FROM incidents WHERE run_id = '%s'`, victim),
		fmt.Sprintf(`DELETE FROM records WHERE run_id = '%s'`, victim),
		fmt.Sprintf(`DELETE FROM runs WHERE run_id = '%s'`, victim))
	forkLog(t, forked.db, victim)
	forked.runSteps("budget_steps", "budget_steps")
	forked.ok("verify")
	forked.fails(1, []string{"forked"}, "verify", "--log-head", head, "--log-key", key+".pub")
}

// copyFile copies a database file (and its WAL, if any is left).
func copyFile(t *testing.T, from, to string) {
	t.Helper()
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(from + suffix)
		if os.IsNotExist(err) && suffix != "" {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to+suffix, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
