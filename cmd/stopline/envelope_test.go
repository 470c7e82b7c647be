package main_test

import (
	"encoding/base64"
	"encoding/json"
	"testing"
)

// envelope is an exported JSON bundle: a DSSE envelope whose payload is
// the bundle's canonical JSON.
type envelope struct {
	Payload     string            `json:"payload"`
	PayloadType string            `json:"payloadType"`
	Signatures  []json.RawMessage `json:"signatures"`
}

func readEnvelope(t *testing.T, data []byte) (envelope, []byte) {
	t.Helper()
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatalf("not a DSSE envelope: %v\n%.300s", err, data)
	}
	payload, err := base64.StdEncoding.DecodeString(e.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return e, payload
}

// withPayload returns the envelope with another payload and the same
// signatures, as anyone can write it.
func withPayload(t *testing.T, e envelope, payload []byte) []byte {
	t.Helper()
	e.Payload = base64.StdEncoding.EncodeToString(payload)
	out, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return out
}
