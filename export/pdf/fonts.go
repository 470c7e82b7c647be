package pdf

import (
	_ "embed" // fonts shipped in the module
	"sync"

	"github.com/stopline/stopline/export/pdf/internal/layout"
)

// The PDFs are set in DejaVu Sans (fonts/LICENSE: the Bitstream Vera
// licence, which allows redistribution), embedded in the binary so that
// no font file is read at run time. It covers Latin, Greek, Cyrillic,
// Armenian, Georgian, Hebrew, Arabic and many symbols (✓ ▶ …), but no CJK.
// Chinese, Japanese and Korean text is set, character by character, in
// Droid Sans Fallback (Apache-2.0, as Debian ships it), also embedded; a
// document loads it only when it has such text, and only the characters
// used are embedded in the PDF. WithFallbackFont replaces it. Only
// programs that import this package carry the fonts (4.9 MB).
var (
	//go:embed fonts/DejaVuSans.ttf
	dejaVuSans []byte
	//go:embed fonts/DejaVuSans-Bold.ttf
	dejaVuSansBold []byte
	//go:embed fonts/DroidSansFallback.ttf
	droidSansFallback []byte
)

// The embedded fonts' coverage is computed once: derived, immutable data.
var (
	dejaVuCoverage = sync.OnceValues(func() (*layout.Coverage, error) { return layout.CoverageOf(dejaVuSans) })
	droidCoverage  = sync.OnceValues(func() (*layout.Coverage, error) { return layout.CoverageOf(droidSansFallback) })
)
