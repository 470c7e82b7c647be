package export_test

import (
	"bytes"
	"crypto/ed25519"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/bundle"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/sqlite"
)

// longRunFile records, once per n in a process, a run of n steps stopped
// at its last (fixture.LongRun) in a SQLite file, and returns the file and
// the incident id.
func longRunFile(b *testing.B, n int) (file, incID string) {
	b.Helper()
	v, _ := longRuns.LoadOrStore(n, &longRun{})
	lr := v.(*longRun)
	lr.once.Do(func() {
		dir, err := os.MkdirTemp("", "stopline-export-")
		if err != nil {
			lr.err = err
			return
		}
		lr.dir = dir
		lr.file = filepath.Join(dir, "run-"+strconv.Itoa(n)+".db")
		st, err := sqlite.Open(ctx, lr.file, sqlite.WithSynchronous(sqlite.Normal))
		if err != nil {
			lr.err = err
			return
		}
		defer st.Close()
		_, lr.incID = fixture.LongRun(b, st, n)
	})
	if lr.err != nil {
		b.Fatal(lr.err)
	}
	// Kept for the process's other benchmarks; TestMain removes it.
	return lr.file, lr.incID
}

var longRuns sync.Map // n -> *longRun

// TestMain removes the long runs' SQLite files, which the process's
// benchmarks share, when they have all run (69 MB for 100,000 steps).
func TestMain(m *testing.M) {
	code := m.Run()
	longRuns.Range(func(_, v any) bool {
		if dir := v.(*longRun).dir; dir != "" {
			os.RemoveAll(dir)
		}
		return true
	})
	os.Exit(code)
}

type longRun struct {
	once             sync.Once
	dir, file, incID string
	err              error
}

// reportCPU starts counting the process's CPU time (user and system, all
// threads); the function it returns stops the timer and reports it per op
// as cpu-ms/op. On a machine shared with other work, CPU time varies less
// than wall time.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	b.ResetTimer()
	return func() {
		b.StopTimer()
		b.ReportMetric(float64(cpuTime()-start)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// peakHeap samples the heap in use (runtime/metrics) every millisecond
// until the returned function is called, which returns the peak in bytes.
func peakHeap() func() uint64 {
	runtime.GC()
	peak := make(chan uint64)
	stop := make(chan struct{})
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var max uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			if v := sample[0].Value.Uint64(); v > max {
				max = v
			}
			select {
			case <-stop:
				peak <- max
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(stop); return <-peak }
}

func benchmarkExport(b *testing.B, n int) { benchmarkExportFormat(b, n, export.FormatJSON) }

func benchmarkExportFormat(b *testing.B, n int, f export.Format) {
	file, incID := longRunFile(b, n)
	st, err := sqlite.Open(ctx, file)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	exp, err := export.New(st, export.WithClock(governance.NewFakeClock(fixture.T0)), export.WithSigner(fixture.Key("bench")),
		export.WithRenderer(fixture.Renderer(b)))
	if err != nil {
		b.Fatal(err)
	}
	req := export.Request{TenantID: "acme", IncidentID: incID, ExportedBy: "bench"}
	var size int64
	stop := peakHeap()
	b.ReportAllocs()
	cpu := reportCPU(b)
	for i := 0; i < b.N; i++ {
		w, err := exp.ExportTo(ctx, io.Discard, bundle.TypeEvidence, req, f)
		if err != nil {
			b.Fatal(err)
		}
		size = w.Size
	}
	cpu()
	b.ReportMetric(float64(size)/1e6, "MB-"+string(f))
	b.ReportMetric(float64(stop())/1e6, "MB-peak-heap")
}

// BenchmarkExportPDF100k renders the evidence PDF of a run of 100,000
// steps (built in memory, as every PDF is); it runs only with
// STOPLINE_LONG=1.
func BenchmarkExportPDF100k(b *testing.B) {
	if os.Getenv("STOPLINE_LONG") == "" {
		b.Skip("set STOPLINE_LONG=1 to render the PDF of a run of 100,000 steps")
	}
	benchmarkExportFormat(b, 100_000, export.FormatPDF)
}

// BenchmarkExport100k exports the signed evidence bundle (JSON) of a run
// of 100,000 steps from a SQLite file to io.Discard (Exporter.ExportTo),
// and reports the bundle's size and the peak heap in use while exporting.
func BenchmarkExport100k(b *testing.B) { benchmarkExport(b, 100_000) }

// BenchmarkExport1M is BenchmarkExport100k for a run of 1,000,000 steps,
// recorded first (several minutes); it runs only with STOPLINE_LONG=1.
func BenchmarkExport1M(b *testing.B) {
	if os.Getenv("STOPLINE_LONG") == "" {
		b.Skip("set STOPLINE_LONG=1 to record and export a run of 1,000,000 steps")
	}
	benchmarkExport(b, 1_000_000)
}

// BenchmarkVerify100k verifies (bundle.Verify) the signed evidence bundle
// of a run of 100,000 steps, exported once before the timer, and reports
// the peak heap in use while verifying, which includes the envelope
// itself (MB-json): Verify takes the envelope as a byte slice.
func BenchmarkVerify100k(b *testing.B) {
	file, incID := longRunFile(b, 100_000)
	st, err := sqlite.Open(ctx, file)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	key := fixture.Key("bench")
	exp, err := export.New(st, export.WithClock(governance.NewFakeClock(fixture.T0)), export.WithSigner(key))
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := exp.ExportTo(ctx, &buf, bundle.TypeEvidence, export.Request{TenantID: "acme", IncidentID: incID}, export.FormatJSON); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	pub := key.Public().(ed25519.PublicKey)
	stop := peakHeap()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := bundle.Verify(data, pub); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(len(data))/1e6, "MB-json")
	b.ReportMetric(float64(stop())/1e6, "MB-peak-heap")
}
