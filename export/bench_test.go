package export_test

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"

	"github.com/stopline/stopline/export"
	"github.com/stopline/stopline/export/internal/fixture"
	"github.com/stopline/stopline/governance"
	"github.com/stopline/stopline/store/sqlite"
)

// BenchmarkEvidencePDF10k builds the evidence bundle of a 10,000-step
// run from the SQLite store (the run is recorded once, outside the
// timer), seals it and renders its PDF. Besides time and allocations it
// reports the PDF's size and the peak heap in use while exporting
// (runtime/metrics, sampled every millisecond; the heap holds the
// recorded run's setup too). /usr/bin/time -v on the test binary gives
// the whole process's peak RSS.
func BenchmarkEvidencePDF10k(b *testing.B) {
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), sqlite.WithSynchronous(sqlite.Normal))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	_, incID := fixture.LongRun(b, st, 10_000)
	renderer := fixture.Renderer(b)
	exp, err := export.New(st, export.WithClock(governance.NewFakeClock(fixture.T0)), export.WithSigner(fixture.Key("bench")), export.WithRenderer(renderer))
	if err != nil {
		b.Fatal(err)
	}
	req := export.Request{TenantID: "acme", IncidentID: incID, ExportedBy: "bench"}
	runtime.GC()
	// Peak heap in use during the exports, sampled every millisecond.
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
	var (
		size int
		last []byte
	)
	b.ReportAllocs()
	cpu := reportCPU(b)
	for i := 0; i < b.N; i++ {
		bundle, err := exp.Evidence(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		s, err := exp.Seal(bundle)
		if err != nil {
			b.Fatal(err)
		}
		var pdf bytes.Buffer
		if err := renderer.Render(&pdf, s); err != nil {
			b.Fatal(err)
		}
		size, last = pdf.Len(), pdf.Bytes()
	}
	cpu()
	if dir := os.Getenv("STOPLINE_PDF_DIR"); dir != "" {
		os.WriteFile(filepath.Join(dir, "evidence-10k.pdf"), last, 0o644)
	}
	b.ReportMetric(float64(size)/1e6, "MB-pdf")
	close(stop)
	b.ReportMetric(float64(<-peak)/1e6, "MB-peak-heap")
}
