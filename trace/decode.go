package trace

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// MaxRecordSize bounds a record body accepted by DecodeRecord.
const MaxRecordSize = 1 << 20

// DecodeRecord decodes a record body, as Encode writes it, and sets the
// record's prev_hash and hash to the given values (stores keep them in
// their own columns). It rejects unknown fields, trailing data and bodies
// over MaxRecordSize, but does not verify the hash: Verify does.
//
// A body in the form Encode writes is read by a parser made for it (see
// Decoder), any other by encoding/json; both read every body alike. To
// decode a chain, a Decoder also shares the strings its records repeat.
func DecodeRecord(body []byte, prevHash, hash string) (Record, error) {
	return (*Decoder)(nil).Decode(body, prevHash, hash)
}

// decodeGeneric is DecodeRecord with encoding/json.
func decodeGeneric(body []byte, prevHash, hash string) (Record, error) {
	var r Record
	if len(body) > MaxRecordSize {
		return r, fmt.Errorf("trace: record body of %d bytes exceeds %d", len(body), MaxRecordSize)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	r.StepIndex = -1
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("trace: decoding record: %w", err)
	}
	// dec.More would miss a trailing ']' or '}': ask for the next token.
	if _, err := dec.Token(); err != io.EOF {
		return Record{}, fmt.Errorf("trace: decoding record: trailing data")
	}
	if r.PrevHash != "" || r.Hash != "" {
		return Record{}, fmt.Errorf("trace: decoding record: body must not carry prev_hash or hash")
	}
	r.PrevHash, r.Hash = prevHash, hash
	return r, nil
}
