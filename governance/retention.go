package governance

import (
	"github.com/stopline/stopline/trace"
)

// keep returns what the run keeps of a step's content c, made from in
// (the step as recorded), under its retention, and sets the record's
// KeptContentHash when that is not c. The record's ContentHash is c's
// whatever is kept. The caller holds run.mu.
//
// Redacted: the input and output with every match of the content
// policies of the run's snapshot and of its shadow masked
// (trace.RedactMask), redacted whole and then cut as stored text is;
// metadata as it was. A redaction that fails masks each text whole.
// Hashes: nothing of the text and metadata, but the runner's own mark of
// a withheld step (MetadataWithheld), which says what the record's
// amounts are.
func (run *Run) keep(rec *trace.Record, in *StepInput, c trace.Content) trace.Content {
	switch run.retention {
	case trace.RetentionFull, "":
		return c
	case trace.RetentionRedacted:
		input, output, changed, ok := run.engine.Redact(in.Input, in.Output, trace.RedactMask)
		if ok && run.shadow != nil {
			var more bool
			input, output, more, ok = run.shadow.Redact(input, output, trace.RedactMask)
			changed = changed || more
		}
		if ok && !changed {
			return c
		}
		var kept trace.Content
		if ok {
			kept = run.content(&StepInput{Input: input, Output: output, Metadata: in.Metadata})
		} else {
			// The redaction failed: each text is masked whole.
			kept.Metadata = c.Metadata
			if c.Input != "" {
				kept.Input = trace.RedactMask
			}
			if c.Output != "" {
				kept.Output = trace.RedactMask
			}
		}
		if h := trace.ContentHashOf(kept); h != rec.ContentHash {
			rec.KeptContentHash = h
		}
		return kept
	}
	var kept trace.Content
	if c.Metadata[MetadataWithheld] == "true" {
		kept.Metadata = map[string]string{MetadataWithheld: "true"}
	}
	rec.KeptContentHash = trace.ContentHashOf(kept)
	return kept
}
