package trace_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stopline/stopline/prevention"
	"github.com/stopline/stopline/trace"
)

// shadowChain is chain(n) with a shadow snapshot and a retention stated
// in run_start and a shadow decision on every step, sealed again.
func shadowChain(n int, edit func(recs []trace.Record)) []trace.Record {
	recs := chain(n)
	recs[0].ShadowSnapshotID, recs[0].ShadowSnapshotHash = "SNAP-shadow", strings.Repeat("cd", 32)
	recs[0].Retention = trace.RetentionRedacted
	for i := range recs {
		if recs[i].Kind == trace.KindStep {
			d := prevention.Decision{Action: prevention.Block, PolicyID: "strict", Source: prevention.SourcePolicy, Reason: prevention.ReasonBudgetExceeded}
			recs[i].ShadowDecision, recs[i].ShadowFindings = &d, []prevention.Decision{d}
			recs[i].ContentHash = strings.Repeat("01", 32)
		}
	}
	recs[1].KeptContentHash = strings.Repeat("02", 32)
	if edit != nil {
		edit(recs)
	}
	prev := trace.GenesisHash
	for i := range recs {
		trace.Seal(&recs[i], prev, nil)
		prev = recs[i].Hash
	}
	return recs
}

func TestShadowAndRetentionAreHashed(t *testing.T) {
	recs := shadowChain(3, nil)
	if _, err := trace.Verify(recs); err != nil {
		t.Fatalf("a chain with a shadow snapshot and redacted content: %v", err)
	}
	// The fields are covered by the hash: changing one breaks the chain.
	for _, tc := range []struct {
		name string
		edit func(r []trace.Record)
		seq  int
	}{
		{"shadow decision", func(r []trace.Record) { r[2].ShadowDecision.Action = prevention.Allow }, 2},
		{"shadow findings", func(r []trace.Record) { r[2].ShadowFindings = nil }, 2},
		{"retention", func(r []trace.Record) { r[0].Retention = trace.RetentionHashes }, 0},
		{"shadow snapshot", func(r []trace.Record) { r[0].ShadowSnapshotHash = strings.Repeat("ee", 32) }, 0},
		{"kept hash", func(r []trace.Record) { r[1].KeptContentHash = strings.Repeat("03", 32) }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bad := shadowChain(3, nil)
			tc.edit(bad)
			_, err := trace.Verify(bad)
			var ce *trace.ChainError
			if !errors.As(err, &ce) || ce.Seq != tc.seq {
				t.Fatalf("Verify = %v, want a ChainError at record %d", err, tc.seq)
			}
		})
	}
}

func TestVerifyRefusesMisplacedShadowAndRetention(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(r []trace.Record)
		seq  int
	}{
		{"step without shadow decision", func(r []trace.Record) { r[2].ShadowDecision, r[2].ShadowFindings = nil, nil }, 2},
		{"shadow decision without shadow snapshot", func(r []trace.Record) { r[0].ShadowSnapshotID, r[0].ShadowSnapshotHash = "", "" }, 1},
		{"shadow id without hash", func(r []trace.Record) { r[0].ShadowSnapshotHash = "" }, 0},
		{"unknown retention", func(r []trace.Record) { r[0].Retention = "full" }, 0},
		{"retention on a step", func(r []trace.Record) { r[2].Retention = trace.RetentionHashes }, 2},
		{"shadow snapshot on run_end", func(r []trace.Record) { r[len(r)-1].ShadowSnapshotID = "x" }, 4},
		{"shadow decision on run_end", func(r []trace.Record) { d := prevention.Allowed(); r[len(r)-1].ShadowDecision = &d }, 4},
		{"kept hash in a run kept in full", func(r []trace.Record) { r[0].Retention = "" }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := trace.Verify(shadowChain(3, tc.edit))
			var ce *trace.ChainError
			if !errors.As(err, &ce) || ce.Seq != tc.seq {
				t.Fatalf("Verify = %v, want a ChainError at record %d", err, tc.seq)
			}
		})
	}
}

func TestRecordWithoutShadowHashesAsBefore(t *testing.T) {
	// A record written before shadows and retention existed: its body
	// and hash are what they were.
	r := chain(1)[1]
	body := string(trace.Encode(nil, &r))
	if strings.Contains(body, "shadow") || strings.Contains(body, "retention") || strings.Contains(body, "redacted") {
		t.Fatalf("a record without shadow or retention encodes their fields: %s", body)
	}
}

func TestParseRetention(t *testing.T) {
	for _, s := range []string{"full", "redacted", "hashes"} {
		if r, err := trace.ParseRetention(s); err != nil || string(r) != s {
			t.Errorf("ParseRetention(%q) = %q, %v", s, r, err)
		}
	}
	if _, err := trace.ParseRetention("none"); err == nil {
		t.Error("ParseRetention(none) succeeded")
	}
	if !trace.RetentionFull.Keeps(trace.RetentionRedacted) || trace.RetentionHashes.Keeps(trace.RetentionRedacted) || !trace.Retention("").Keeps(trace.RetentionFull) {
		t.Error("Keeps does not order full > redacted > hashes")
	}
}
