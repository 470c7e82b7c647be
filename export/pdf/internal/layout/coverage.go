package layout

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"codeberg.org/go-pdf/fpdf"
)

// Coverage is the set of Basic Multilingual Plane characters a font has
// glyphs for.
type Coverage [0x10000 / 64]uint64

// Has reports whether the font has a glyph for r.
func (c *Coverage) Has(r rune) bool {
	return r >= 0 && r < 0x10000 && c[r>>6]&(1<<(uint(r)&63)) != 0
}

func (c *Coverage) set(r uint32) {
	if r < 0x10000 {
		c[r>>6] |= 1 << (r & 63)
	}
}

var errNoCmap = errors.New("no usable Unicode cmap (want format 4 or 12)")

// CoverageOf reads a TrueType font's Unicode character map (format 12
// or format 4 subtables) and returns the BMP characters it maps to a
// glyph.
func CoverageOf(ttf []byte) (*Coverage, error) {
	be := binary.BigEndian
	u16 := func(off int) (int, bool) {
		if off < 0 || off+2 > len(ttf) {
			return 0, false
		}
		return int(be.Uint16(ttf[off:])), true
	}
	u32 := func(off int) (uint32, bool) {
		if off < 0 || off+4 > len(ttf) {
			return 0, false
		}
		return be.Uint32(ttf[off:]), true
	}
	numTables, ok := u16(4)
	if !ok {
		return nil, errors.New("not a TrueType font")
	}
	cmap := -1
	for i := 0; i < numTables; i++ {
		rec := 12 + 16*i
		if rec+16 > len(ttf) {
			return nil, errors.New("truncated table directory")
		}
		if string(ttf[rec:rec+4]) == "cmap" {
			off, _ := u32(rec + 8)
			cmap = int(off)
		}
	}
	if cmap < 0 {
		return nil, errors.New("no cmap table")
	}
	n, ok := u16(cmap + 2)
	if !ok {
		return nil, errors.New("truncated cmap")
	}
	best, bestRank := -1, 0
	for i := 0; i < n; i++ {
		rec := cmap + 4 + 8*i
		platform, ok1 := u16(rec)
		encoding, ok2 := u16(rec + 2)
		off, ok3 := u32(rec + 4)
		if !ok1 || !ok2 || !ok3 {
			return nil, errors.New("truncated cmap")
		}
		sub := cmap + int(off)
		format, ok := u16(sub)
		if !ok {
			continue
		}
		rank := 0
		switch {
		case format == 12 && (platform == 3 && encoding == 10 || platform == 0):
			rank = 3
		case format == 4 && (platform == 3 && encoding == 1 || platform == 0):
			rank = 2
		}
		if rank > bestRank {
			best, bestRank = sub, rank
		}
	}
	if best < 0 {
		return nil, errNoCmap
	}
	cov := new(Coverage)
	format, _ := u16(best)
	if format == 12 {
		groups, ok := u32(best + 12)
		if !ok {
			return nil, errors.New("truncated cmap format 12")
		}
		for g := 0; g < int(groups); g++ {
			rec := best + 16 + 12*g
			start, ok1 := u32(rec)
			end, ok2 := u32(rec + 4)
			glyph, ok3 := u32(rec + 8)
			if !ok1 || !ok2 || !ok3 {
				return nil, errors.New("truncated cmap format 12")
			}
			for c := start; c <= end && c < 0x10000; c++ {
				if glyph+(c-start) != 0 {
					cov.set(c)
				}
			}
		}
		return cov, nil
	}
	segX2, ok := u16(best + 6)
	if !ok {
		return nil, errors.New("truncated cmap format 4")
	}
	ends, starts := best+14, best+16+segX2
	deltas, ranges := starts+segX2, starts+2*segX2
	for s := 0; s < segX2/2; s++ {
		end, ok1 := u16(ends + 2*s)
		start, ok2 := u16(starts + 2*s)
		delta, ok3 := u16(deltas + 2*s)
		ro, ok4 := u16(ranges + 2*s)
		if !ok1 || !ok2 || !ok3 || !ok4 {
			return nil, errors.New("truncated cmap format 4")
		}
		for c := start; c <= end && c <= 0xFFFF; c++ {
			var glyph int
			if ro == 0 {
				glyph = (c + delta) & 0xFFFF
			} else {
				g, ok := u16(ranges + 2*s + ro + 2*(c-start))
				if !ok {
					return nil, fmt.Errorf("cmap format 4: glyph index of U+%04X out of bounds", c)
				}
				if g != 0 {
					glyph = (g + delta) & 0xFFFF
				}
			}
			if glyph != 0 {
				cov.set(uint32(c))
			}
		}
	}
	return cov, nil
}

// CheckFallback loads ttf as a fallback font into a throwaway document,
// so that a font fpdf cannot use fails when it is given, never on first
// use.
func CheckFallback(ttf []byte) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("fpdf cannot load the font: %v", p)
		}
	}()
	f := fpdf.New("P", "mm", "A4", "")
	f.AddUTF8FontFromBytes(fallbackFamily, "", bytes.Clone(ttf)) // fpdf writes into it
	f.AddPage()
	f.SetFont(fallbackFamily, "", 10)
	f.CellFormat(10, 5, "A", "", 0, "L", false, 0, "")
	if err := f.Error(); err != nil {
		return fmt.Errorf("fpdf cannot load the font: %w", err)
	}
	return nil
}
