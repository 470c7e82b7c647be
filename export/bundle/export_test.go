package bundle

// Encode is the bundle encoder, for the external tests.
var Encode = encode

// WriteStep and WriteChainRecord are the element writers, for the
// external tests.
func WriteStep(s *TraceStepEvidence) ([]byte, error) {
	w := &jsonWriter{}
	err := w.step(s)
	return w.buf, err
}

func WriteChainRecord(cr *ChainRecord) ([]byte, error) {
	w := &jsonWriter{}
	err := w.chainRecord(cr, false)
	return w.buf, err
}
