package sqlite_test

import (
	"bufio"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/snapshot"
	"github.com/stopline/stopline/store/sqlite"
	"github.com/stopline/stopline/trace"
)

// The crash suite, after SQLite's own crash tests: a child process (this
// test binary, re-executed) governs crashRuns runs at once on a real file,
// one goroutine each, so that their steps share group commits, and prints
// one acknowledgement line after each call returns; the parent kills it with
// SIGKILL at a random moment, reopens the file and checks every promise:
// every acknowledged record is there with its hash, every acknowledged
// stop has its incident, SQLite's integrity check passes, every chain and
// every signed checkpoint verifies, and a run that was in flight is
// recognisably unfinished (running) until governance.RecoverRun closes it
// as failed / system_failure, after which it verifies too. The same file
// is reused by ten children in a row, so each child but the first starts
// from a file that crashed.
//
// CI runs 50 kills; STOPLINE_LONG=1 runs 500. Odd iterations use
// synchronous=NORMAL, which loses nothing on a crash of the process (only
// on power loss, which this suite cannot simulate).

const (
	crashChildEnv = "STOPLINE_CRASH_CHILD"
	crashKeyEnv   = "STOPLINE_CRASH_KEY"
	crashSyncEnv  = "STOPLINE_CRASH_SYNC"
	crashSeedEnv  = "STOPLINE_CRASH_SEED"
)

// crashRuns is how many runs the child governs at once.
const crashRuns = 16

const crashPolicy = `{"tenant_id":"acme","thresholds":{"max_steps":1000},"policies":[
	{"id":"steps","kind":"budget","params":{"metric":"steps","threshold":"max_steps"}},
	{"id":"tools","kind":"tool_allowlist","params":{"allow":["search"]}}]}`

func long() bool { return os.Getenv("STOPLINE_LONG") == "1" }

// crashAck is one acknowledgement line of the child:
//
//	start RUN 0 HASH
//	step  RUN SEQ HASH
//	block RUN SEQ HASH INCIDENT
//	end   RUN SEQ HASH
type crashAck struct {
	kind, run, hash, incident string
	seq                       int
}

func parseCrashAck(line string) (crashAck, bool) {
	f := strings.Fields(line)
	if len(f) < 4 {
		return crashAck{}, false
	}
	seq, err := strconv.Atoi(f[2])
	if err != nil {
		return crashAck{}, false
	}
	a := crashAck{kind: f[0], run: f[1], seq: seq, hash: f[3]}
	if a.kind == "block" && len(f) == 5 {
		a.incident = f[4]
	}
	switch a.kind {
	case "start", "step", "block", "end":
		return a, true
	}
	return crashAck{}, false
}

func TestCrash(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("child process")
	}
	iterations := 50
	if long() {
		iterations = 500
	}
	skey, vkey, err := governance.GenerateCheckpointKey("stopline-crash")
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	verifiers := note.VerifierList(v)
	dir := t.TempDir()
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (the kill moments are random; the checks are not)", seed)
	rng := rand.New(rand.NewPCG(seed, 7))

	var (
		totalAcks, midFlight, recovered, blocks int
		maxDelay                                = 40 * time.Millisecond
		childTime, checkTime                    time.Duration
	)
	start := time.Now()
	for i := 0; i < iterations; i++ {
		sync := "full"
		if i%2 == 1 {
			sync = "normal"
		}
		// Kill at a random moment after the child has opened the file:
		// sometimes at once (while it starts a run), mostly mid-run.
		delay := time.Duration(rng.Int64N(int64(maxDelay)))
		// Ten children in a row share a file, each starting from the
		// previous one's crash; then a fresh file keeps the checks, which
		// verify the whole file after every kill, fast.
		path := filepath.Join(dir, fmt.Sprintf("crash-%03d.db", i/10))
		t1 := time.Now()
		acks, err := runCrashChild(t, path, skey, sync, seed+uint64(i), delay)
		childTime += time.Since(t1)
		if err != nil {
			t.Fatalf("iteration %d: %v", i, err)
		}
		totalAcks += len(acks)
		t2 := time.Now()
		st := checkAfterCrash(t, i, path, acks, verifiers)
		checkTime += time.Since(t2)
		mf, rec, bl := st.midFlight, st.recovered, st.blocks
		midFlight += mf
		recovered += rec
		blocks += bl
		if t.Failed() {
			t.Fatalf("iteration %d (sync=%s, kill after %v, %d acknowledgements) broke a promise", i, sync, delay, len(acks))
		}
	}
	t.Logf("child %v, checks %v", childTime, checkTime)
	t.Logf("%d kills in %v: %d acknowledgements checked, %d acknowledged stops, %d runs killed mid-flight, %d runs recovered",
		iterations, time.Since(start).Round(time.Millisecond), totalAcks, blocks, midFlight, recovered)
	if midFlight < iterations/10 {
		t.Errorf("only %d of %d kills caught a run mid-flight: the kill moments are not exercising the recovery path", midFlight, iterations)
	}
}

// runCrashChild starts the child on path, waits until it has opened the
// store, lets it work for delay, kills it with SIGKILL, and returns every
// acknowledgement it printed.
func runCrashChild(t *testing.T, path, skey, sync string, seed uint64, delay time.Duration) ([]crashAck, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path, crashKeyEnv+"="+skey, crashSyncEnv+"="+sync,
		crashSeedEnv+"="+strconv.FormatUint(seed, 10))
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	var acks []crashAck
	ready := false
	timeout := time.After(30 * time.Second)
	for !ready {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				return nil, fmt.Errorf("child ended before it was ready: %s", stderr.String())
			}
			ready = l == "ready"
		case <-timeout:
			cmd.Process.Kill()
			cmd.Wait()
			return nil, fmt.Errorf("child not ready after 30s: %s", stderr.String())
		}
	}
	time.Sleep(delay)
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return nil, err
	}
	// Everything the child wrote before it died is in the pipe.
	for l := range lines {
		if a, ok := parseCrashAck(l); ok {
			acks = append(acks, a)
		} else if strings.HasPrefix(l, "error") {
			cmd.Wait()
			return nil, fmt.Errorf("child: %s", l)
		}
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		return nil, fmt.Errorf("child did not die of SIGKILL: %v\n%s", err, stderr.String())
	}
	return acks, nil
}

type crashStats struct{ midFlight, recovered, blocks int }

// checkAfterCrash reopens the file after a kill and checks every promise.
func checkAfterCrash(t *testing.T, iter int, path string, acks []crashAck, verifiers note.Verifiers) crashStats {
	t.Helper()
	var stats crashStats
	// SQLite's own view first, before the store writes anything.
	db, err := sql.Open("sqlite3", "file:"+path+"?_busy_timeout=5000")
	if err != nil {
		t.Fatal(err)
	}
	var res string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&res); err != nil || res != "ok" {
		t.Errorf("iteration %d: PRAGMA integrity_check: %q %v", iter, res, err)
	}
	db.Close()

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("iteration %d: reopen after kill: %v", iter, err)
	}
	defer s.Close()

	ended := map[string]bool{}
	started := map[string]bool{}
	chains := map[string][]trace.Record{} // each run's records, read once
	for _, a := range acks {
		recs, ok := chains[a.run]
		if !ok {
			var err error
			if recs, err = s.Records(ctx, "acme", a.run); err != nil {
				t.Errorf("acknowledged %s of run %s: %v", a.kind, a.run, err)
				continue
			}
			chains[a.run] = recs
		}
		if a.seq >= len(recs) || recs[a.seq].Hash != a.hash {
			t.Errorf("acknowledged %s record %d of run %s lost (the run has %d records)", a.kind, a.seq, a.run, len(recs))
			continue
		}
		switch a.kind {
		case "start":
			started[a.run] = true
		case "block":
			stats.blocks++
			ended[a.run] = true
			inc, err := s.Incident(ctx, "acme", a.incident)
			if err != nil || inc.RunID != a.run || inc.RecordHash != a.hash {
				t.Errorf("acknowledged stop of run %s at record %d: incident %s: %+v %v", a.run, a.seq, a.incident, inc, err)
			}
			run, err := s.Run(ctx, "acme", a.run)
			if err != nil || run.Status != governance.StatusFailedPolicy || run.IncidentID != a.incident ||
				run.StoppedAtStep == nil || *run.StoppedAtStep != a.seq-1 {
				t.Errorf("acknowledged stop of run %s: %+v %v", a.run, run, err)
			}
		case "end":
			ended[a.run] = true
			run, err := s.Run(ctx, "acme", a.run)
			if err != nil || !run.Status.Ended() || run.HeadHash != a.hash {
				t.Errorf("acknowledged end of run %s: %+v %v", a.run, run, err)
			}
		}
	}
	// Runs in flight at the kill are recognisably unfinished: running
	// (or ended, if the end was committed but not yet acknowledged).
	for run := range started {
		if ended[run] {
			continue
		}
		rec, err := s.Run(ctx, "acme", run)
		if err != nil {
			t.Errorf("run %s in flight: %v", run, err)
			continue
		}
		if rec.Status == governance.StatusRunning {
			stats.midFlight++
		} else if !rec.Status.Ended() {
			t.Errorf("run %s in flight at the kill: status %s", run, rec.Status)
		}
	}
	// Recover every unfinished run (including any whose start was
	// committed but not acknowledged), then everything verifies.
	running, err := s.Runs(ctx, governance.RunFilter{TenantID: "acme", Status: governance.StatusRunning})
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range running {
		rec, err := governance.RecoverRun(ctx, s, "acme", run.RunID, "", time.Now())
		if err != nil {
			t.Errorf("RecoverRun %s: %v", run.RunID, err)
			continue
		}
		if rec.Status != governance.StatusFailed || rec.TerminationReason != prevention.ReasonSystemFailure || rec.EndedAt == nil {
			t.Errorf("recovered run %s: %s/%s", run.RunID, rec.Status, rec.TerminationReason)
		}
		stats.recovered++
	}
	if left, _ := s.Runs(ctx, governance.RunFilter{TenantID: "acme", Status: governance.StatusQueued}); len(left) > 0 {
		t.Errorf("queued runs after a crash: %d", len(left))
	}
	rep, err := governance.VerifyStore(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range rep.Failures {
		t.Errorf("iteration %d: VerifyStore: %v", iter, f)
	}
	runs, err := s.Runs(ctx, governance.RunFilter{TenantID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	for _, run := range runs {
		if !run.Status.Ended() {
			t.Errorf("run %s still %s after recovery", run.RunID, run.Status)
		}
		if _, err := governance.VerifyRunCheckpoints(ctx, s, "acme", run.RunID, verifiers); err != nil {
			t.Errorf("checkpoints of run %s: %v", run.RunID, err)
		}
	}
	return stats
}

// TestCrashChild is the child of TestCrash: it governs crashRuns runs at
// once on the file until it is killed, each goroutine starting one run
// after another, printing an acknowledgement after each call that
// returned.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("run by TestCrash")
	}
	var out sync.Mutex
	ack := func(format string, args ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Printf(format, args...)
	}
	fail := func(err error) {
		out.Lock() // nothing is printed after the error
		fmt.Printf("error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(3)
	}
	mode := sqlite.Full
	if os.Getenv(crashSyncEnv) == "normal" {
		mode = sqlite.Normal
	}
	signer, err := note.NewSigner(os.Getenv(crashKeyEnv))
	if err != nil {
		fail(err)
	}
	seed, _ := strconv.ParseUint(os.Getenv(crashSeedEnv), 10, 64)
	s, err := sqlite.Open(ctx, path, sqlite.WithSynchronous(mode))
	if err != nil {
		fail(err)
	}
	r, err := governance.NewRunner(s, governance.WithCheckpoints(signer, 3))
	if err != nil {
		fail(err)
	}
	snap, err := snapshot.Parse("crash.json", []byte(crashPolicy), time.Now(), prevention.Builtin())
	if err != nil {
		fail(err)
	}
	fmt.Println("ready")
	for g := range crashRuns {
		go func() {
			rng := rand.New(rand.NewPCG(seed, 11+uint64(g)))
			for {
				crashRun(r, snap, mode, rng, ack, fail)
			}
		}()
	}
	select {} // until killed
}

// crashRun governs one run of the child from start to end.
func crashRun(r *governance.Runner, snap *snapshot.PolicySnapshot, mode sqlite.Synchronous, rng *rand.Rand,
	ack func(string, ...any), fail func(error)) {
	run, err := r.Start(ctx, governance.StartOptions{Snapshot: snap, Labels: map[string]string{"sync": mode.String()}})
	if err != nil {
		fail(err)
	}
	ack("start %s 0 %s\n", run.ID(), run.Record().HeadHash)
	steps := 1 + rng.IntN(12)
	for i := 0; i < steps; i++ {
		in := governance.StepInput{Type: prevention.StepToolCall, Tool: "search", Input: fmt.Sprintf(`{"q":%d}`, i),
			Output: strings.Repeat("result ", 1+rng.IntN(50)), Tokens: int64(rng.IntN(100)), CostCents: 0.5}
		if rng.IntN(12) == 0 {
			in.Tool = "shell" // the tool allowlist stops the run here
		}
		res, err := run.Step(ctx, in)
		var v *governance.Violation
		switch {
		case err == nil:
			ack("step %s %d %s\n", run.ID(), res.Index+1, res.Hash)
		case errors.As(err, &v) && !errors.Is(err, governance.ErrRecordFailed):
			ack("block %s %d %s %s\n", run.ID(), res.Index+1, res.Hash, v.IncidentID)
			return
		default:
			fail(err)
		}
	}
	var rec governance.RunRecord
	if rng.IntN(4) == 0 {
		rec, err = run.Abort(ctx, prevention.ReasonUserAbort, "user pressed stop")
	} else {
		rec, err = run.Finish(ctx)
	}
	if err != nil {
		fail(err)
	}
	ack("end %s %d %s\n", run.ID(), rec.ChainLength-1, rec.HeadHash)
}
