package governance_test

import (
	"bufio"
	"bytes"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/sqlite"
)

// Real full disks, two ways: a tiny tmpfs mounted by the test (needs
// root, which CI has), and a file-size limit (RLIMIT_FSIZE, any user) set
// in a child process. Either way SQLite's write fails for lack of space in
// the middle of a run; the runner must fail closed, nothing it
// acknowledged may be lost, and once space is back RecoverRun closes the
// run and every chain and checkpoint verifies.

const diskPolicy = `{"tenant_id":"acme","thresholds":{"max_steps":100000},"policies":[
	{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}}]}`

// bigStep is a step whose content fills a disk quickly.
var bigStep = governance.StepInput{Type: prevention.StepLLMResponse, Model: "m",
	Input: strings.Repeat("question ", 400), Output: strings.Repeat("answer ", 1200), Tokens: 5, CostCents: 0.25}

// fillUntilFull runs steps on new runs until the store fails, writing one
// line per acknowledgement to w: "start RUN HASH", "step RUN SEQ HASH",
// then "fail RECORDFAILED ERROR" and "after STOPPED". It gives up after
// maxSteps.
func fillUntilFull(st governance.Store, snap *snapshot.PolicySnapshot, signer note.Signer, w io.Writer, maxSteps int) error {
	r, err := governance.NewRunner(st, governance.WithCheckpoints(signer, 5))
	if err != nil {
		return err
	}
	steps := 0
	for steps < maxSteps {
		run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap})
		if err != nil {
			fmt.Fprintf(w, "fail %v %s\n", errors.Is(err, governance.ErrRecordFailed), oneLine(err))
			fmt.Fprintf(w, "after true\n") // no run: nothing to step
			return nil
		}
		fmt.Fprintf(w, "start %s %s\n", run.ID(), run.Record().HeadHash)
		for i := 0; i < 20 && steps < maxSteps; i++ {
			steps++
			res, err := run.Step(ctx, bigStep)
			if res.Recorded {
				fmt.Fprintf(w, "step %s %d %s\n", run.ID(), res.Index+1, res.Hash)
			}
			if err != nil && res.Recorded && errors.Is(err, governance.ErrRecordFailed) && strings.Contains(err.Error(), "checkpoint") {
				// The step is recorded; only its checkpoint is missing, and
				// the run goes on (GUARANTEES.md): fill on.
				continue
			}
			if err != nil {
				fmt.Fprintf(w, "fail %v %s\n", errors.Is(err, governance.ErrRecordFailed), oneLine(err))
				_, err2 := run.Step(ctx, bigStep)
				fmt.Fprintf(w, "after %v\n", errors.Is(err2, governance.ErrRunStopped))
				return nil
			}
		}
		if _, err := run.Finish(ctx); err != nil {
			fmt.Fprintf(w, "fail %v %s\n", errors.Is(err, governance.ErrRecordFailed), oneLine(err))
			fmt.Fprintf(w, "after true\n")
			return nil
		}
	}
	return fmt.Errorf("the disk never filled in %d steps", maxSteps)
}

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", " | ") }

// checkDiskOutcome reads fillUntilFull's lines and checks the store at
// path: the failure said ErrRecordFailed, the run took no further step,
// every acknowledged record is there, and after recovery everything
// verifies and SQLite's integrity check passes.
func checkDiskOutcome(t *testing.T, out []byte, st governance.Store, path string, verifiers note.Verifiers) {
	t.Helper()
	var (
		acks   []ack
		failed bool
	)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		switch f[0] {
		case "start":
			acks = append(acks, ack{kind: "start", tenant: "acme", run: f[1], seq: 0, hash: f[2]})
		case "step":
			seq, _ := strconv.Atoi(f[2])
			acks = append(acks, ack{kind: "step", tenant: "acme", run: f[1], seq: seq, hash: f[3]})
		case "fail":
			failed = true
			t.Logf("the disk filled after %d acknowledged records: %s", len(acks), strings.Join(f[1:], " "))
			if f[1] != "true" {
				t.Errorf("the failure does not match ErrRecordFailed: %s", sc.Text())
			}
			if !strings.Contains(sc.Text(), "full") && !strings.Contains(sc.Text(), "I/O") {
				t.Errorf("the failure does not say the disk is full: %s", sc.Text())
			}
		case "after":
			if f[1] != "true" {
				t.Error("the run accepted a step after its record failed")
			}
		}
	}
	if !failed {
		t.Fatalf("the store never failed:\n%s", out)
	}
	if len(acks) < 2 {
		t.Fatalf("too few acknowledgements before the disk filled (%d): make the disk bigger", len(acks))
	}
	checkAcked(t, st, &faultRun{acks: acks}, verifiers)
	integrityOK(t, path)
}

// integrityOK runs PRAGMA integrity_check on the file.
func integrityOK(t *testing.T, path string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Errorf("PRAGMA integrity_check: %q %v", res, err)
	}
}

// TestDiskFullTmpfs fills a 1 MiB tmpfs, as root.
func TestDiskFullTmpfs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs as root); TestDiskFullFileSizeLimit covers a full disk without it")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("running as root but cannot mount a tmpfs (%v: %s)", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v %s", dir, err, out)
		}
	})
	path := filepath.Join(dir, "stopline.db")
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	signer, verifiers := checkpointKeys(t, "stopline-disk")
	var out bytes.Buffer
	if err := fillUntilFull(st, parse(t, diskPolicy), signer, &out, 5000); err != nil {
		t.Fatal(err)
	}
	// Space comes back; the same Store handle goes on.
	if b, err := exec.Command("mount", "-o", "remount,size=16m", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount: %v %s", err, b)
	}
	checkDiskOutcome(t, out.Bytes(), st, path, verifiers)
	// And it still governs new runs.
	r, _ := newRunner(t, st)
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: parse(t, diskPolicy)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := run.Step(ctx, bigStep); err != nil {
		t.Fatalf("a step after space came back: %v", err)
	}
}

const fsizeChildEnv = "STOPLINE_FSIZE_CHILD"

// TestDiskFullFileSizeLimit runs the steps in a child process whose
// files may not grow past a limit (RLIMIT_FSIZE, with SIGXFSZ ignored so
// that writes fail with EFBIG instead of killing it): the WAL hits the
// limit mid-run, as on a full disk. The parent then reopens the file
// without the limit and checks it.
func TestDiskFullFileSizeLimit(t *testing.T) {
	if os.Getenv(fsizeChildEnv) != "" {
		t.Skip("child process")
	}
	skey, vkey, err := governance.GenerateCheckpointKey("stopline-fsize")
	if err != nil {
		t.Fatal(err)
	}
	v, _ := note.NewVerifier(vkey)
	path := filepath.Join(t.TempDir(), "stopline.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestDiskFullChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), fsizeChildEnv+"="+path, "STOPLINE_FSIZE_KEY="+skey)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	checkDiskOutcome(t, out, st, path, note.VerifierList(v))
}

// TestDiskFullChild is the child of TestDiskFullFileSizeLimit.
func TestDiskFullChild(t *testing.T) {
	path := os.Getenv(fsizeChildEnv)
	if path == "" {
		t.Skip("run by TestDiskFullFileSizeLimit")
	}
	signal.Ignore(syscall.SIGXFSZ)
	signer, err := note.NewSigner(os.Getenv("STOPLINE_FSIZE_KEY"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The schema is in place; from now on no file may grow past 256 KiB
	// beyond the largest one.
	var largest int64
	for _, f := range []string{path, path + "-wal"} {
		if fi, err := os.Stat(f); err == nil && fi.Size() > largest {
			largest = fi.Size()
		}
	}
	lim := uint64(largest + 256<<10)
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &syscall.Rlimit{Cur: lim, Max: lim}); err != nil {
		t.Fatal(err)
	}
	if err := fillUntilFull(st, parse(t, diskPolicy), signer, os.Stdout, 5000); err != nil {
		t.Fatal(err)
	}
}
