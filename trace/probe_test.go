package trace_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/stopline/stopline/trace"
)

// The adversarial probes transparency logs feed their verifiers, fed to
// the chain verifier: every element removed, every element duplicated or
// forged in at every position, garbage before and after, the chain cut
// one short and made one longer, the stored head and every link with one
// bit flipped, and every byte of every stored body with one bit flipped.
// Each must fail with a ChainError naming the record and saying what is
// wrong, distinct from the others; or, for a flip, the record must decode
// to exactly the original (the flip touched nothing the record says).

// probeError checks err is a *ChainError naming record seq, and returns
// its message.
func probeError(t *testing.T, probe string, err error, seq int) string {
	t.Helper()
	var ce *trace.ChainError
	if !errors.As(err, &ce) || !errors.Is(err, trace.ErrChainBroken) {
		t.Errorf("%s: got %v, want a *ChainError", probe, err)
		return ""
	}
	if ce.Seq != seq || ce.Problem == "" || ce.RunID != "RUN-1" {
		t.Errorf("%s: error names run %q record %d (%q), want RUN-1 record %d", probe, ce.RunID, ce.Seq, ce.Problem, seq)
	}
	return err.Error()
}

func TestChainProbes(t *testing.T) {
	orig := chain(4) // run_start, 4 steps (the last blocked), run_end: 6 records
	n := len(orig)
	seen := map[string]string{}
	distinct := func(probe, msg string) {
		if msg == "" {
			return
		}
		if other, dup := seen[msg]; dup {
			t.Errorf("%s and %s fail with the same error %q", probe, other, msg)
		}
		seen[msg] = probe
	}

	for i := 0; i < n; i++ {
		// Remove element i.
		recs := append(append([]trace.Record{}, orig[:i]...), orig[i+1:]...)
		_, err := trace.Verify(recs)
		if i == n-1 {
			// A chain one short is a sound chain of a run still open:
			// the chain alone cannot tell (the run row, for an ended
			// run, and signed checkpoints can; see governance).
			if err != nil {
				t.Errorf("chain cut one short: %v", err)
			}
		} else {
			distinct(fmt.Sprintf("remove %d", i), probeError(t, fmt.Sprintf("remove %d", i), err, i))
		}

		// Insert a copy of element i before it (a replayed record).
		recs = append(append(append([]trace.Record{}, orig[:i]...), orig[i]), orig[i:]...)
		_, err = trace.Verify(recs)
		distinct(fmt.Sprintf("duplicate %d", i), probeError(t, fmt.Sprintf("duplicate %d", i), err, i+1))

		// Insert a forged record at i, sealed onto the record before it
		// and numbered in place: the records after no longer link.
		if i > 0 && i < n-1 {
			forged := orig[i]
			forged.Tokens += 1000
			trace.Seal(&forged, orig[i-1].Hash, nil)
			recs = append(append(append([]trace.Record{}, orig[:i]...), forged), orig[i:]...)
			for j := i + 1; j < len(recs); j++ {
				recs[j].Seq = j
			}
			_, err = trace.Verify(recs)
			distinct(fmt.Sprintf("forge at %d", i), probeError(t, fmt.Sprintf("forge at %d", i), err, i+1))
		}

		// Flip one bit of the record's hash, and of its prev_hash.
		recs = append([]trace.Record{}, orig...)
		recs[i].Hash = flipHex(recs[i].Hash, i)
		_, err = trace.Verify(recs)
		distinct(fmt.Sprintf("hash %d flipped", i), probeError(t, fmt.Sprintf("hash %d flipped", i), err, i))
		recs = append([]trace.Record{}, orig...)
		recs[i].PrevHash = flipHex(recs[i].PrevHash, i)
		_, err = trace.Verify(recs)
		distinct(fmt.Sprintf("prev_hash %d flipped", i), probeError(t, fmt.Sprintf("prev_hash %d flipped", i), err, i))
	}

	// Garbage before: a record ahead of run_start.
	before := orig[1]
	before.Seq = 0
	_, err := trace.Verify(append([]trace.Record{before}, orig...))
	distinct("garbage before", probeError(t, "garbage before", err, 0))
	// Garbage after: a record after run_end (one longer), and a record
	// of another run after it.
	after := orig[n-2]
	after.Seq = n
	trace.Seal(&after, orig[n-1].Hash, nil)
	_, err = trace.Verify(append(append([]trace.Record{}, orig...), after))
	distinct("one longer", probeError(t, "one longer", err, n))
	other := chain(2)
	other[1].RunID, other[1].Seq = "RUN-2", n-1
	_, err = trace.Verify(append(append([]trace.Record{}, orig[:n-1]...), other[1]))
	distinct("record of another run", probeError(t, "record of another run", err, n-1))
	// No records at all.
	if _, err := trace.Verify(nil); !errors.Is(err, trace.ErrChainBroken) {
		t.Errorf("empty chain: %v", err)
	}
	// The head Verify returns is the last record's hash, and a wrong
	// head is told apart by the caller comparing it.
	head, err := trace.Verify(orig)
	if err != nil || head != orig[n-1].Hash || head == flipHex(head, 0) {
		t.Errorf("head %s, %v", head, err)
	}
}

// flipHex flips the lowest bit of the hex digit at position i%len(h),
// keeping it a hex digit.
func flipHex(h string, i int) string {
	b := []byte(h)
	k := (i*7 + 3) % len(b)
	switch c := b[k]; {
	case c == '0':
		b[k] = '1'
	case c == 'f':
		b[k] = 'e'
	case c == '9':
		b[k] = '8'
	default:
		b[k] ^= 1
	}
	return string(b)
}

// TestChainBodyBitFlips flips one bit in every byte of every stored body
// (as a store keeps it) and decodes and verifies the chain again: each
// flip is refused by the decoder, or caught by Verify at that record, or
// decodes to exactly the original record (a bit that changes nothing the
// record says, such as the case of a JSON key, which encoding/json
// matches case-insensitively).
func TestChainBodyBitFlips(t *testing.T) {
	orig := chain(4)
	var refused, caught, same int
	for i := range orig {
		body := trace.Encode(nil, &orig[i])
		for off := range body {
			for _, bit := range []byte{0x01, 0x20} {
				b := append([]byte{}, body...)
				b[off] ^= bit
				r, err := trace.DecodeRecord(b, orig[i].PrevHash, orig[i].Hash)
				if err != nil {
					refused++
					continue
				}
				recs := append([]trace.Record{}, orig...)
				recs[i] = r
				if _, err := trace.Verify(recs); err != nil {
					var ce *trace.ChainError
					if !errors.As(err, &ce) || ce.Seq != i {
						t.Errorf("record %d byte %d ^ %#x: error names record %d: %v", i, off, bit, ce.Seq, err)
					}
					caught++
					continue
				}
				if d := cmp.Diff(orig[i], r); d != "" {
					t.Errorf("record %d byte %d ^ %#x (%q): verified but changed:\n%s", i, off, bit, b, d)
				}
				same++
			}
		}
	}
	t.Logf("%d flips: %d refused by the decoder, %d caught by Verify, %d changed nothing", refused+caught+same, refused, caught, same)
}

// TestDecodeGarbageAroundBody puts garbage before and after a stored body:
// the decoder refuses all of it (white space aside, which JSON ignores).
func TestDecodeGarbageAroundBody(t *testing.T) {
	good := trace.Encode(nil, &chain(1)[1])
	for _, g := range []string{"}", "]", "{}", "[]", "x", "0", `""`, "null", "\x00", "\xff"} {
		if _, err := trace.DecodeRecord([]byte(g+string(good)), "p", "h"); err == nil {
			t.Errorf("garbage %q before the body decoded", g)
		}
		if _, err := trace.DecodeRecord([]byte(string(good)+g), "p", "h"); err == nil || !strings.Contains(err.Error(), "trace: decoding record") {
			t.Errorf("garbage %q after the body: %v", g, err)
		}
	}
	if _, err := trace.DecodeRecord([]byte(" "+string(good)+"\n"), "p", "h"); err != nil {
		t.Errorf("white space around the body: %v", err)
	}
}

// TestDecodeDeepNesting: a stored body nested far deeper than any record
// (in the decision, in the findings, or as the whole body, up to the size
// limit) is refused with an error, never a stack overflow.
func TestDecodeDeepNesting(t *testing.T) {
	good := string(trace.Encode(nil, &chain(1)[1]))
	for _, depth := range []int{100, 10_001, 400_000} {
		for name, body := range map[string]string{
			"decision": strings.Replace(good, `"decision":{`, `"decision":`+strings.Repeat(`{"message":`, depth)+`"x"`+strings.Repeat("}", depth)+`,"x":{`, 1),
			"findings": strings.Replace(good, `"findings":[`, `"findings":`+strings.Repeat("[", depth)+strings.Repeat("]", depth)+`,"y":[`, 1),
			"body":     strings.Repeat("[", depth) + strings.Repeat("]", depth),
		} {
			if _, err := trace.DecodeRecord([]byte(body), "p", "h"); err == nil {
				t.Errorf("%s nested %d deep decoded", name, depth)
			}
		}
	}
}

// FuzzRecordRoundTrip: whatever DecodeRecord accepts has one canonical
// encoding — encoding it, decoding that and encoding again gives the same
// bytes and the same record — so a record that was stored verifies when
// it is read back, whatever its text and numbers.
func FuzzRecordRoundTrip(f *testing.F) {
	for _, r := range chain(2) {
		f.Add(trace.Encode(nil, &r))
	}
	f.Add([]byte(`{"at":"2026-01-01T00:00:00Z","kind":"step","message":"\u2028\ufffd\u0001","run_id":"r","seq":1,"snapshot_id":"s","step_index":0,"tenant_id":"t","total_cost_cents":1e-7,"cost_cents":0.1}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := trace.DecodeRecord(body, trace.GenesisHash, "")
		if err != nil {
			return
		}
		enc := trace.Encode(nil, &r)
		back, err := trace.DecodeRecord(enc, trace.GenesisHash, "")
		if err != nil {
			t.Fatalf("the encoding of a decoded record does not decode: %v\n%s", err, enc)
		}
		if again := trace.Encode(nil, &back); string(again) != string(enc) {
			t.Fatalf("encoding is not a fixed point:\n%s\n%s", enc, again)
		}
		if d := cmp.Diff(r, back, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("round trip changed the record: %s", d)
		}
	})
}
